//! Syscalls of the sysfs capability: open, getdents, pread, pwrite.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};

/// strerror(3) text of an errno, as glibc words it.
pub fn strerror(errno: i32) -> String {
    crate::capabilities::strerror(errno)
}

pub fn open_dir(path: &str) -> std::io::Result<()> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(path)
        .map(drop)
}

/// Entries in getdents order (std keeps it), without "." and "..".
pub fn list_dir(path: &str) -> std::io::Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        // file_type() comes from d_type (no stat) on Linux.
        let is_dir = entry
            .file_type()
            .map(|t| t.is_dir() && !t.is_symlink())
            .unwrap_or(false);
        out.push((entry.file_name().to_string_lossy().into_owned(), is_dir));
    }
    Ok(out)
}

pub fn read(path: &str, max: usize) -> std::io::Result<Vec<u8>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut buf = vec![0u8; max];
    let n = file.read_at(&mut buf, 0)?;
    buf.truncate(n);
    Ok(buf)
}

pub fn write(path: &str, data: &[u8]) -> std::io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    file.write_at(data, 0).map(drop)
}
