//! File reads of the read-file capability (std, no `unsafe`).

use std::io::Read;
use std::path::Path;

/// What a read starts with: the files this capability reads (os-release,
/// /proc and /sys files) fit, so a read is one `read` and the one that
/// says end of file — not a run of small probes growing from 32 bytes.
const FIRST_READ: u64 = 4096;

/// The file's first `limit` bytes.
pub fn read(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(limit.min(FIRST_READ) as usize);
    std::fs::File::open(path)?.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_whole_files_and_stops_at_the_limit() {
        let dir = std::env::temp_dir().join(format!("qga-read-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &bytes).unwrap();
        assert_eq!(read(&file, 1 << 20).unwrap(), bytes);
        assert_eq!(read(&file, 5000).unwrap(), bytes[..5000]);
        assert_eq!(read(&file, 0).unwrap(), b"");
        std::fs::write(&file, b"").unwrap();
        assert_eq!(read(&file, 1 << 20).unwrap(), b"");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
