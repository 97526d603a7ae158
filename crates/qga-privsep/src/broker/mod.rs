//! The broker's request loop: receive, gate, perform, answer. The
//! operations themselves (grant checks, syscalls) are the caller's
//! [`Operations`]; this loop only guarantees the protocol: every request
//! gets one answer, a malformed one an `EINVAL` answer, and nothing the main
//! process sends can stop the loop short of closing its end.

mod gate;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

pub use gate::{FROZEN_ERRNO, FROZEN_MESSAGE, FreezeGate};

use crate::channel::{BrokerEnd, ChannelError};
use crate::wire::{Reply, Request};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Channel(#[from] ChannelError),
}

/// An operation's answer: the reply and the fds it announces.
#[derive(Debug)]
pub struct Answer {
    pub reply: Reply,
    pub fds: Vec<OwnedFd>,
}

impl Answer {
    pub fn reply(reply: Reply) -> Self {
        Self { reply, fds: Vec::new() }
    }

    pub fn failed(errno: i32, message: impl Into<String>) -> Self {
        Self::reply(Reply::Failed {
            errno,
            message: message.into(),
        })
    }
}

/// What the broker does for each admitted request.
pub trait Operations {
    fn perform(&mut self, request: &Request) -> Answer;
}

impl<F: FnMut(&Request) -> Answer> Operations for F {
    fn perform(&mut self, request: &Request) -> Answer {
        self(request)
    }
}

/// Serves `end` until the main process closes it (`Ok`), or the channel
/// itself fails.
pub fn serve(end: &BrokerEnd, gate: &mut FreezeGate, operations: &mut impl Operations) -> Result<(), ServeError> {
    loop {
        let request = match end.recv() {
            Ok(received) => received.message,
            Err(ChannelError::Closed) => return Ok(()),
            Err(ChannelError::Io(e)) => return Err(ChannelError::Io(e).into()),
            Err(refused) => {
                // The refused message's fds are already closed.
                end.send(
                    &Reply::Failed {
                        errno: libc::EINVAL,
                        message: refused.to_string(),
                    },
                    &[],
                )?;
                continue;
            }
        };
        if let Some(refusal) = gate.refuses(&request) {
            end.send(&refusal, &[])?;
            continue;
        }
        let answer = operations.perform(&request);
        gate.record(&request, &answer.reply);
        let fds: Vec<BorrowedFd<'_>> = answer.fds.iter().map(AsFd::as_fd).collect();
        match end.send(&answer.reply, &fds) {
            Ok(()) => {}
            Err(ChannelError::FdCountToSend { expected, given }) => {
                let message = format!("broker bug: reply announces {expected} fds, {given} given");
                end.send(
                    &Reply::Failed {
                        errno: libc::EIO,
                        message,
                    },
                    &[],
                )?;
            }
            Err(ChannelError::Encode(e)) => {
                end.send(
                    &Reply::Failed {
                        errno: libc::EIO,
                        message: e.to_string(),
                    },
                    &[],
                )?;
            }
            Err(other) => return Err(other.into()),
        }
    }
}
