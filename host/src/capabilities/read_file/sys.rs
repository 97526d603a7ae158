//! File reads of the read-file capability (std, no `unsafe`).

use std::io::Read;
use std::path::Path;

/// The file's first `limit` bytes.
pub fn read(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    std::fs::File::open(path)?.take(limit).read_to_end(&mut out)?;
    Ok(out)
}
