//! FITRIM on a mount point.

#![allow(unsafe_code)] // the syscalls this module wraps

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `struct fstrim_range` of <linux/fs.h>.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct FstrimRange {
    pub start: u64,
    pub len: u64,
    pub minlen: u64,
}

// _IOWR('X', 121, struct fstrim_range)
nix::ioctl_readwrite!(fitrim, b'X', 121, FstrimRange);

/// Trim the whole filesystem of `file`, extents shorter than `minlen`
/// skipped; the range as the kernel updated it.
pub fn trim(file: &File, minlen: u64) -> io::Result<FstrimRange> {
    let mut range = FstrimRange {
        start: 0,
        len: u64::MAX,
        minlen,
    };
    // SAFETY: a valid descriptor and a pointer to a live, properly laid
    // out fstrim_range the kernel reads and writes back.
    unsafe { fitrim(file.as_raw_fd(), &mut range) }.map_err(io::Error::from)?;
    Ok(range)
}
