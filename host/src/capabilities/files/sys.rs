//! Syscalls of the files capability (std and nix, no `unsafe`).

use std::fs::File;
use std::io::{Read, Write};

/// Mode of files guest-file-open creates, before the umask. qemu-ga 7.2
/// fchmods them to exactly 0666, world-writable whatever the umask; qga
/// lets the agent's umask apply (0644 under the packaged unit's UMask=0022),
/// so a file the host creates as root cannot be rewritten by any guest user.
pub const NEW_FILE_MODE: u32 = 0o666;

/// Read until `count` bytes or end of file; `(bytes, eof)`. Like stdio's
/// fread, any error (EAGAIN on an empty pipe too) fails the whole read.
pub fn read(mut file: &File, count: u64) -> std::io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::with_capacity(usize::try_from(count).unwrap_or(usize::MAX).min(64 << 20));
    (&mut file).take(count).read_to_end(&mut buf)?;
    let eof = (buf.len() as u64) < count;
    Ok((buf, eof))
}

pub fn write(mut file: &File, data: &[u8]) -> std::io::Result<()> {
    file.write_all(data)
}

#[derive(Debug, Clone, Copy)]
pub enum Whence {
    Set,
    Cur,
    End,
}

/// lseek(2), with negative absolute offsets passed through (EINVAL).
pub fn seek(file: &File, offset: i64, whence: Whence) -> std::io::Result<u64> {
    use std::os::fd::AsFd;
    let whence = match whence {
        Whence::Set => nix::unistd::Whence::SeekSet,
        Whence::Cur => nix::unistd::Whence::SeekCur,
        Whence::End => nix::unistd::Whence::SeekEnd,
    };
    let pos = nix::unistd::lseek(file.as_fd(), offset, whence).map_err(std::io::Error::from)?;
    Ok(pos as u64)
}
