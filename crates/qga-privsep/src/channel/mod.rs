//! The broker channel: one `AF_UNIX`/`SOCK_SEQPACKET` socketpair, one frame
//! per datagram, fds passed with `SCM_RIGHTS`.
//!
//! Receiving fails closed: a datagram larger than a frame (`MSG_TRUNC`),
//! truncated control data (`MSG_CTRUNC`), a control message other than
//! `SCM_RIGHTS`, a frame that does not decode or a number of fds other than
//! the message announces is refused, and every fd that came with it is closed
//! before the error returns.

#[allow(unsafe_code)] // the syscalls; every unsafe block has a SAFETY line
mod sys;

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::wire::{DecodeError, EncodeError, MAX_FDS, MAX_FRAME, Message, Reply, Request};

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("broker channel: the peer has gone away")]
    Closed,
    #[error("broker channel I/O: {0}")]
    Io(#[from] io::Error),
    #[error("broker channel fd is not an AF_UNIX SOCK_SEQPACKET socket (domain {domain}, type {kind})")]
    NotSeqpacket { domain: i32, kind: i32 },
    #[error("broker message needs {expected} fds, {given} given")]
    FdCountToSend { expected: usize, given: usize },
    #[error("broker datagram is larger than the {MAX_FRAME}-byte frame limit")]
    Oversized,
    #[error("broker message's control data was truncated (more than {MAX_FDS} fds?)")]
    ControlTruncated,
    #[error("broker message carries a control message other than SCM_RIGHTS")]
    ForeignControl,
    #[error("broker message carries {received} fds, its kind carries {expected}")]
    FdCountReceived { expected: usize, received: usize },
    #[error("broker message was sent short ({sent} of {len} bytes)")]
    ShortSend { sent: usize, len: usize },
    #[error("undecodable broker message: {0}")]
    Decode(#[from] DecodeError),
    #[error("unencodable broker message: {0}")]
    Encode(#[from] EncodeError),
}

/// One end of the channel, sending `Out` and receiving `In`.
pub struct Channel<Out, In> {
    fd: OwnedFd,
    messages: PhantomData<fn(Out) -> In>,
}

/// The main (unprivileged) process's end: sends requests, receives replies.
pub type MainEnd = Channel<Request, Reply>;
/// The broker's end: receives requests, sends replies.
pub type BrokerEnd = Channel<Reply, Request>;

/// A message that passed every check, with the fds it announced.
#[derive(Debug)]
pub struct Received<M> {
    pub message: M,
    pub fds: Vec<OwnedFd>,
}

/// A fresh connected pair (both ends close-on-exec).
pub fn pair() -> Result<(MainEnd, BrokerEnd), ChannelError> {
    let (main, broker) = sys::socketpair_seqpacket()?;
    Ok((Channel::wrap(main), Channel::wrap(broker)))
}

impl<Out: Message, In: Message> Channel<Out, In> {
    fn wrap(fd: OwnedFd) -> Self {
        Self {
            fd,
            messages: PhantomData,
        }
    }

    /// Adopts an inherited fd, after checking it is a seqpacket unix socket.
    pub fn from_fd(fd: OwnedFd) -> Result<Self, ChannelError> {
        let (domain, kind) = sys::socket_kind(fd.as_fd())?;
        if domain != libc::AF_UNIX || kind != libc::SOCK_SEQPACKET {
            return Err(ChannelError::NotSeqpacket { domain, kind });
        }
        Ok(Self::wrap(fd))
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Sends `message` with exactly the fds it announces.
    pub fn send(&self, message: &Out, fds: &[BorrowedFd<'_>]) -> Result<(), ChannelError> {
        let expected = message.fd_count();
        if fds.len() != expected {
            return Err(ChannelError::FdCountToSend {
                expected,
                given: fds.len(),
            });
        }
        self.send_raw(&message.encode()?, fds)
    }

    /// Sends bytes as one datagram, unchecked: what a hostile peer can do.
    /// For tests of the receiving side; the agent uses [`Channel::send`].
    pub fn send_raw(&self, frame: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), ChannelError> {
        let sent = sys::send(self.fd.as_fd(), frame, fds)?;
        if sent != frame.len() {
            return Err(ChannelError::ShortSend { sent, len: frame.len() });
        }
        Ok(())
    }

    /// Blocks for the next message. `Closed` once the peer has gone.
    pub fn recv(&self) -> Result<Received<In>, ChannelError> {
        let mut buf = vec![0u8; MAX_FRAME];
        let received = sys::recv(self.fd.as_fd(), &mut buf, MAX_FDS)?;
        // From here on every early return drops `received.fds`: closed.
        if received.len == 0
            && received.fds.is_empty()
            && !received.data_truncated
            && sys::peer_closed(self.fd.as_fd())?
        {
            return Err(ChannelError::Closed);
        }
        if received.data_truncated {
            return Err(ChannelError::Oversized);
        }
        if received.control_truncated {
            return Err(ChannelError::ControlTruncated);
        }
        if received.foreign_control {
            return Err(ChannelError::ForeignControl);
        }
        let message = In::decode(&buf[..received.len])?;
        let expected = message.fd_count();
        if received.fds.len() != expected {
            return Err(ChannelError::FdCountReceived {
                expected,
                received: received.fds.len(),
            });
        }
        Ok(Received {
            message,
            fds: received.fds,
        })
    }
}

impl<Out, In> AsFd for Channel<Out, In> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
