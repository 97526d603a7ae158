//! fstatvfs(3) (nix, no `unsafe`).

use std::os::fd::AsFd;

/// (f_frsize, f_blocks, f_bfree, f_bavail) of the filesystem holding `fd`
/// (an O_PATH descriptor will do).
pub fn fstatvfs(fd: &impl AsFd) -> std::io::Result<(u64, u64, u64, u64)> {
    let s = nix::sys::statvfs::fstatvfs(fd.as_fd()).map_err(std::io::Error::from)?;
    Ok((s.fragment_size(), s.blocks(), s.blocks_free(), s.blocks_available()))
}
