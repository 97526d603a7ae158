//! Serving one byte stream: read, parse, dispatch, reply, in order. Every
//! transport ends up here with its own parser, so no state crosses from one
//! client to the next.

use std::io;
use std::sync::Arc;
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
    dispatcher: &Arc<Dispatcher>,
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
        let slow;
        (buf, slow) = feed(parser, buf, n, &mut messages).await;
        if slow {
            // A message that was slow to parse is slow to check, convert
            // and free too: all of that happens off the event loop.
            for reply in handle_off_loop(dispatcher, std::mem::take(&mut messages), channel).await {
                if let Err(e) = write_reply(writer, &reply).await {
                    return StreamEnd::WriteFailed(e);
                }
            }
        }
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
/// Also says whether the bytes went to a blocking thread.
async fn feed(parser: &mut StreamParser, buf: Vec<u8>, n: usize, messages: &mut Vec<Parsed>) -> (Vec<u8>, bool) {
    if !parser.may_be_slow(n) {
        parser.feed(&buf[..n], messages);
        if parser.is_mid_message() {
            tokio::task::yield_now().await;
        }
        return (buf, false);
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
            (buf, true)
        }
        // The closure does not panic (the parser answers any bytes); if it
        // ever did, this client starts over with a fresh parser.
        Err(e) => {
            tracing::error!("parser worker failed: {e}");
            (vec![0u8; READ_CHUNK], false)
        }
    }
}

/// Answer `messages` in order on a blocking thread (the envelope check,
/// the converter's checks and freeing a huge value cost as much as its
/// parse); the replies, in the same order.
async fn handle_off_loop(dispatcher: &Arc<Dispatcher>, messages: Vec<Parsed>, channel: &str) -> Vec<Vec<u8>> {
    let dispatcher = dispatcher.clone();
    let channel = channel.to_owned();
    let runtime = tokio::runtime::Handle::current();
    let worker = tokio::task::spawn_blocking(move || {
        messages
            .into_iter()
            .filter_map(|m| runtime.block_on(dispatcher.handle_on(m, &channel)))
            .collect()
    });
    worker.await.unwrap_or_else(|e| {
        tracing::error!("request worker failed: {e}");
        Vec::new()
    })
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
