//! `-m unix-listen`: a listening unix socket whose file is removed on exit.

use std::io;
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// The socket file, removed when dropped.
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Bind `path`, replacing a stale socket left by a previous run.
pub fn bind(path: &Path) -> io::Result<(UnixListener, SocketFile)> {
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type())
    {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    Ok((listener, SocketFile(path.to_owned())))
}
