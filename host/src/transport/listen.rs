//! Accepting clients on a listening socket (unix or vsock), each served on
//! its own task with its own parser.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::net::UnixListener;
use tokio::sync::Semaphore;

use super::fd::FdStream;
use super::stream::{self, StreamEnd};
use super::sys;
use crate::dispatch::Dispatcher;
use crate::protocol::StreamParser;

/// Most clients served at once; more wait in the listen backlog.
pub const MAX_CLIENTS: usize = 1024;

pub enum Listener {
    Unix(UnixListener),
    /// A non-blocking listening vsock socket.
    Vsock(AsyncFd<OwnedFd>),
}

enum Connection {
    Unix(tokio::net::UnixStream),
    Fd(FdStream),
}

impl Listener {
    async fn accept(&self) -> io::Result<Connection> {
        match self {
            Listener::Unix(listener) => Ok(Connection::Unix(listener.accept().await?.0)),
            Listener::Vsock(listener) => loop {
                let mut guard = listener.readable().await?;
                match guard.try_io(|fd| sys::accept(fd.get_ref()).map_err(io::Error::from)) {
                    Ok(result) => return FdStream::new(result?).map(Connection::Fd),
                    Err(_would_block) => continue,
                }
            },
        }
    }
}

/// Accept and serve clients until the task is cancelled.
pub async fn serve(listener: Listener, dispatcher: Arc<Dispatcher>) -> io::Result<()> {
    let kind = match &listener {
        Listener::Unix(_) => "unix",
        Listener::Vsock(_) => "vsock",
    };
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    let mut clients = 0u64;
    loop {
        let permit = slots.clone().acquire_owned().await.expect("semaphore never closed");
        let connection = match listener.accept().await {
            Ok(connection) => connection,
            Err(e) if is_transient_accept_error(&e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        clients += 1;
        let client = clients;
        let dispatcher = dispatcher.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut parser = StreamParser::new();
            let channel = format!("{kind}:{client}");
            tracing::debug!(client, "client connected");
            let end = match connection {
                Connection::Unix(conn) => {
                    let (mut reader, mut writer) = conn.into_split();
                    stream::serve(&mut reader, &mut writer, &mut parser, &dispatcher, &channel).await
                }
                Connection::Fd(conn) => {
                    let (mut reader, mut writer) = tokio::io::split(conn);
                    stream::serve(&mut reader, &mut writer, &mut parser, &dispatcher, &channel).await
                }
            };
            match end {
                StreamEnd::Eof => tracing::debug!(client, "client disconnected"),
                StreamEnd::ReadError(e) => tracing::debug!(client, "client read failed: {e}"),
                StreamEnd::WriteFailed(e) => tracing::info!(client, "client dropped: {e}"),
            }
        });
    }
}

/// Errors after which accepting can go on (out of fds, aborted handshakes).
fn is_transient_accept_error(e: &io::Error) -> bool {
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
