//! settimeofday(2).

#![allow(unsafe_code)] // the syscalls this module wraps

/// Set CLOCK_REALTIME; the error is the errno.
pub fn settimeofday(seconds: i64, microseconds: i64) -> Result<(), i32> {
    let tv = libc::timeval {
        tv_sec: seconds as libc::time_t,
        tv_usec: microseconds as libc::suseconds_t,
    };
    // SAFETY: `tv` is a valid timeval for the duration of the call and the
    // time zone argument may be NULL.
    let rc = unsafe { libc::settimeofday(&tv, std::ptr::null()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
    }
}
