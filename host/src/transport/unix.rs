//! `-m unix-listen`: any number of clients at once, each with its own parser.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::sync::Semaphore;

use super::stream::{self, StreamEnd};
use crate::dispatch::Dispatcher;
use crate::protocol::StreamParser;

/// Most clients served at once; more wait in the listen backlog.
pub const MAX_CLIENTS: usize = 1024;

/// The socket file, removed when the listener is dropped.
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

/// Accept and serve clients until the task is cancelled.
pub async fn serve(listener: UnixListener, dispatcher: Arc<Dispatcher>) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    let mut next_client = 0u64;
    loop {
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        let (conn, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_transient_accept_error(&e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        next_client += 1;
        let client = next_client;
        let dispatcher = dispatcher.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let (mut reader, mut writer) = conn.into_split();
            let mut parser = StreamParser::new();
            tracing::debug!(client, "client connected");
            match stream::serve(&mut reader, &mut writer, &mut parser, &dispatcher).await {
                StreamEnd::Eof => tracing::debug!(client, "client disconnected"),
                StreamEnd::ReadError(e) => tracing::debug!(client, "client read failed: {e}"),
                StreamEnd::WriteFailed(e) => tracing::info!(client, "client dropped: {e}"),
            }
        });
    }
}

/// Errors after which accepting can go on (out of fds, aborted handshakes).
pub fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EMFILE
                | libc::ENFILE
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::ECONNABORTED
                | libc::EINTR
                | libc::EPROTO
        )
    )
}
