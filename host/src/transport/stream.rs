//! Serving one byte stream: read, parse, dispatch, reply, in order. Every
//! transport ends up here with its own parser, so no state crosses from one
//! client to the next.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::dispatch::Dispatcher;
use crate::protocol::{Parsed, StreamParser};

/// How long a reply may make no progress before its client counts as gone.
pub const WRITE_STALL: Duration = Duration::from_secs(10);

const READ_CHUNK: usize = 64 * 1024;

/// Why a stream stopped being served.
#[derive(Debug)]
pub enum StreamEnd {
    /// The peer closed its side.
    Eof,
    /// Reading failed.
    ReadError(io::Error),
    /// A reply could not be written (the peer is gone or stopped reading).
    WriteFailed(io::Error),
}

/// Serve requests from `reader` until it ends, writing replies to `writer`.
/// `channel` names the stream in the audit log (`unix:3`, `virtio-serial`).
pub async fn serve<R, W>(
    reader: &mut R,
    writer: &mut W,
    parser: &mut StreamParser,
    dispatcher: &Dispatcher,
    channel: &str,
) -> StreamEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; READ_CHUNK];
    let mut messages = Vec::new();
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) => return StreamEnd::Eof,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return StreamEnd::ReadError(e),
        };
        buf = feed(parser, buf, n, &mut messages).await;
        for message in messages.drain(..) {
            if let Some(reply) = dispatcher.handle_on(message, channel).await
                && let Err(e) = write_reply(writer, &reply).await
            {
                return StreamEnd::WriteFailed(e);
            }
        }
    }
}

/// Feed the first `n` bytes of `buf` to the parser without holding the
/// event loop: a read that may complete a big message (whose parse costs
/// its whole token count) is parsed on a blocking thread, and the event
/// loop is yielded after every read of a message in progress, so other
/// clients and the signal handlers are served between two reads of a
/// client that streams without pause. Returns the buffer.
async fn feed(parser: &mut StreamParser, buf: Vec<u8>, n: usize, messages: &mut Vec<Parsed>) -> Vec<u8> {
    if !parser.may_be_slow(n) {
        parser.feed(&buf[..n], messages);
        if parser.is_mid_message() {
            tokio::task::yield_now().await;
        }
        return buf;
    }
    let mut moved = std::mem::take(parser);
    let mut out = std::mem::take(messages);
    let worker = tokio::task::spawn_blocking(move || {
        moved.feed(&buf[..n], &mut out);
        (moved, buf, out)
    });
    match worker.await {
        Ok((back, buf, out)) => {
            *parser = back;
            *messages = out;
            buf
        }
        // The closure does not panic (the parser answers any bytes); if it
        // ever did, this client starts over with a fresh parser.
        Err(e) => {
            tracing::error!("parser worker failed: {e}");
            vec![0u8; READ_CHUNK]
        }
    }
}

/// Write a whole reply, giving up when the peer makes no progress for
/// [`WRITE_STALL`].
pub async fn write_reply<W: AsyncWrite + Unpin>(writer: &mut W, mut reply: &[u8]) -> io::Result<()> {
    while !reply.is_empty() {
        match tokio::time::timeout(WRITE_STALL, writer.write(reply)).await {
            Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => reply = &reply[n..],
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "peer stopped reading"));
            }
        }
    }
    writer.flush().await
}
