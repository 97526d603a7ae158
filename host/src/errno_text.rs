//! The C library's words for an errno, as qemu-ga prints them.

/// strerror(3) as glibc words it ("Success" for 0): std's text without
/// its " (os error N)" suffix. (nix's `Errno::desc` uses different words
/// for some errors, e.g. ELOOP.)
pub fn strerror(errno: i32) -> String {
    if errno == 0 {
        return "Success".to_owned();
    }
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.strip_suffix(&format!(" (os error {errno})")) {
        Some(t) => t.to_owned(),
        None => text,
    }
}

/// strerror(3) text of an I/O error, without Rust's " (os error N)".
pub fn io_strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => strerror(code),
        None => e.to_string(),
    }
}
