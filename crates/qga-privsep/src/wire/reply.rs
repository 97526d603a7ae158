//! What the broker answers: success, an errno with a reason, or fds.

use super::Message;
use super::codec::{DecodeError, Decoder, EncodeError, Encoder};

/// Longest refusal or failure message.
pub const MAX_MESSAGE: usize = 1024;
/// The largest errno value Linux uses (`MAX_ERRNO`).
pub const MAX_ERRNO: i32 = 4095;

/// Which of a spawned child's stdio are pipes, passed in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnedStdio {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl SpawnedStdio {
    fn count(self) -> usize {
        usize::from(self.stdin) + usize::from(self.stdout) + usize::from(self.stderr)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The operation succeeded and has nothing to return.
    Done,
    /// The operation failed (`errno` in 1..=4095) or was refused by policy
    /// (`EPERM` or `EACCES` with the reason in `message`).
    Failed { errno: i32, message: String },
    /// One fd follows: the opened file or channel.
    Opened,
    /// The child's pid; its pipes follow as fds.
    Spawned { pid: i32, stdio: SpawnedStdio },
    /// FITRIM's result: bytes trimmed.
    Trimmed { bytes: u64 },
}

/// `message` cut to at most `MAX_MESSAGE` bytes on a character boundary.
fn truncated(message: &str) -> &str {
    let mut end = message.len().min(MAX_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

mod tag {
    pub const DONE: u8 = 0x81;
    pub const FAILED: u8 = 0x82;
    pub const OPENED: u8 = 0x83;
    pub const SPAWNED: u8 = 0x84;
    pub const TRIMMED: u8 = 0x85;
}

impl Message for Reply {
    fn encode_body(&self, out: &mut Encoder) -> Result<(), EncodeError> {
        match self {
            Reply::Done => out.u8(tag::DONE),
            Reply::Failed { errno, message } => {
                if !(1..=MAX_ERRNO).contains(errno) {
                    return Err(EncodeError::BadValue {
                        what: "errno",
                        value: i64::from(*errno),
                    });
                }
                out.u8(tag::FAILED);
                out.i32(*errno);
                out.bytes(truncated(message).as_bytes())?;
            }
            Reply::Opened => out.u8(tag::OPENED),
            Reply::Spawned { pid, stdio } => {
                if *pid <= 0 {
                    return Err(EncodeError::BadValue {
                        what: "pid",
                        value: i64::from(*pid),
                    });
                }
                out.u8(tag::SPAWNED);
                out.i32(*pid);
                out.bool(stdio.stdin);
                out.bool(stdio.stdout);
                out.bool(stdio.stderr);
            }
            Reply::Trimmed { bytes } => {
                out.u8(tag::TRIMMED);
                out.u64(*bytes);
            }
        }
        Ok(())
    }

    fn decode_body(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(match input.u8()? {
            tag::DONE => Reply::Done,
            tag::FAILED => {
                let errno = input.i32()?;
                if !(1..=MAX_ERRNO).contains(&errno) {
                    return Err(DecodeError::BadValue {
                        what: "errno",
                        value: errno as u64,
                    });
                }
                let message = input.bytes("message", MAX_MESSAGE)?;
                let message = String::from_utf8(message).map_err(|e| DecodeError::BadValue {
                    what: "message byte",
                    value: e.utf8_error().valid_up_to() as u64,
                })?;
                Reply::Failed { errno, message }
            }
            tag::OPENED => Reply::Opened,
            tag::SPAWNED => {
                let pid = input.i32()?;
                if pid <= 0 {
                    return Err(DecodeError::BadValue {
                        what: "pid",
                        value: pid as u64,
                    });
                }
                let stdio = SpawnedStdio {
                    stdin: input.bool("stdin pipe")?,
                    stdout: input.bool("stdout pipe")?,
                    stderr: input.bool("stderr pipe")?,
                };
                Reply::Spawned { pid, stdio }
            }
            tag::TRIMMED => Reply::Trimmed { bytes: input.u64()? },
            other => return Err(DecodeError::UnknownTag(other)),
        })
    }

    fn fd_count(&self) -> usize {
        match self {
            Reply::Done | Reply::Failed { .. } | Reply::Trimmed { .. } => 0,
            Reply::Opened => 1,
            Reply::Spawned { stdio, .. } => stdio.count(),
        }
    }
}
