//! statvfs(3) (nix, no `unsafe`).

use std::path::Path;

/// (f_frsize, f_blocks, f_bfree, f_bavail)
pub fn statvfs(path: &Path) -> std::io::Result<(u64, u64, u64, u64)> {
    let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    Ok((s.fragment_size(), s.blocks(), s.blocks_free(), s.blocks_available()))
}
