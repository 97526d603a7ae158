//! What the main process asks of the broker. Requests carry no fds: the
//! broker never acts on an fd the unprivileged side chose.

use super::Message;
use super::codec::{DecodeError, Decoder, EncodeError, Encoder};
use super::fields::{ByteString, EnvVar, KeysOp, OpenMode, Password, Path, PowerMode, SshKey, StdioMode, UserName};

/// Most argv entries in a spawn.
pub const MAX_ARGS: usize = 256;
/// Most environment entries in a spawn.
pub const MAX_ENV: usize = 256;
/// Most keys in one authorized_keys edit.
pub const MAX_KEYS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnRequest {
    pub program: Path,
    pub argv: Vec<ByteString>,
    pub env: Vec<EnvVar>,
    pub stdin: StdioMode,
    pub stdout: StdioMode,
    pub stderr: StdioMode,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Open a file (checked against the grants); reply `Opened` with its fd.
    OpenFile { path: Path, mode: OpenMode },
    /// Reopen the agent's channel after a hang-up; reply `Opened`.
    ReopenChannel,
    /// Spawn a program; reply `Spawned` with the pipes asked for.
    Spawn(SpawnRequest),
    /// FIFREEZE one mount point.
    Freeze { mountpoint: Path },
    /// FITHAW one mount point.
    Thaw { mountpoint: Path },
    /// FITRIM one mount point; reply `Trimmed`.
    Trim { mountpoint: Path, minimum: u64 },
    /// Set the system clock to `nanoseconds` since the epoch, or from the RTC.
    SetTime { nanoseconds: Option<i64> },
    /// Write one sysfs attribute (CPU/memory block online state).
    WriteSysfs { path: Path, value: ByteString },
    /// Edit a user's `~/.ssh/authorized_keys`.
    AuthorizedKeys {
        user: UserName,
        op: KeysOp,
        keys: Vec<SshKey>,
    },
    /// Set a user's password through chpasswd.
    Chpasswd {
        user: UserName,
        password: Password,
        crypted: bool,
    },
    /// Halt, power down or reboot the guest.
    Shutdown { mode: PowerMode },
}

/// The kind of a request, without its arguments: what grants, capability
/// needs and the audit speak of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    OpenFile,
    ReopenChannel,
    Spawn,
    Freeze,
    Thaw,
    Trim,
    SetTime,
    WriteSysfs,
    AuthorizedKeys,
    Chpasswd,
    Shutdown,
}

impl Operation {
    pub const ALL: &[Operation] = &[
        Operation::OpenFile,
        Operation::ReopenChannel,
        Operation::Spawn,
        Operation::Freeze,
        Operation::Thaw,
        Operation::Trim,
        Operation::SetTime,
        Operation::WriteSysfs,
        Operation::AuthorizedKeys,
        Operation::Chpasswd,
        Operation::Shutdown,
    ];
}

impl Request {
    pub fn operation(&self) -> Operation {
        match self {
            Request::OpenFile { .. } => Operation::OpenFile,
            Request::ReopenChannel => Operation::ReopenChannel,
            Request::Spawn(_) => Operation::Spawn,
            Request::Freeze { .. } => Operation::Freeze,
            Request::Thaw { .. } => Operation::Thaw,
            Request::Trim { .. } => Operation::Trim,
            Request::SetTime { .. } => Operation::SetTime,
            Request::WriteSysfs { .. } => Operation::WriteSysfs,
            Request::AuthorizedKeys { .. } => Operation::AuthorizedKeys,
            Request::Chpasswd { .. } => Operation::Chpasswd,
            Request::Shutdown { .. } => Operation::Shutdown,
        }
    }
}

mod tag {
    pub const OPEN_FILE: u8 = 0x01;
    pub const REOPEN_CHANNEL: u8 = 0x02;
    pub const SPAWN: u8 = 0x03;
    pub const FREEZE: u8 = 0x04;
    pub const THAW: u8 = 0x05;
    pub const TRIM: u8 = 0x06;
    pub const SET_TIME: u8 = 0x07;
    pub const WRITE_SYSFS: u8 = 0x08;
    pub const AUTHORIZED_KEYS: u8 = 0x09;
    pub const CHPASSWD: u8 = 0x0a;
    pub const SHUTDOWN: u8 = 0x0b;
}

impl Message for Request {
    fn encode_body(&self, out: &mut Encoder) -> Result<(), EncodeError> {
        match self {
            Request::OpenFile { path, mode } => {
                out.u8(tag::OPEN_FILE);
                path.encode(out)?;
                mode.encode(out);
            }
            Request::ReopenChannel => out.u8(tag::REOPEN_CHANNEL),
            Request::Spawn(spawn) => {
                out.u8(tag::SPAWN);
                spawn.program.encode(out)?;
                out.count(spawn.argv.len(), MAX_ARGS)?;
                for arg in &spawn.argv {
                    arg.encode(out)?;
                }
                out.count(spawn.env.len(), MAX_ENV)?;
                for var in &spawn.env {
                    var.encode(out)?;
                }
                spawn.stdin.encode(out);
                spawn.stdout.encode(out);
                spawn.stderr.encode(out);
            }
            Request::Freeze { mountpoint } => {
                out.u8(tag::FREEZE);
                mountpoint.encode(out)?;
            }
            Request::Thaw { mountpoint } => {
                out.u8(tag::THAW);
                mountpoint.encode(out)?;
            }
            Request::Trim { mountpoint, minimum } => {
                out.u8(tag::TRIM);
                mountpoint.encode(out)?;
                out.u64(*minimum);
            }
            Request::SetTime { nanoseconds } => {
                out.u8(tag::SET_TIME);
                out.bool(nanoseconds.is_some());
                if let Some(ns) = nanoseconds {
                    out.i64(*ns);
                }
            }
            Request::WriteSysfs { path, value } => {
                out.u8(tag::WRITE_SYSFS);
                path.encode(out)?;
                value.encode(out)?;
            }
            Request::AuthorizedKeys { user, op, keys } => {
                out.u8(tag::AUTHORIZED_KEYS);
                user.encode(out)?;
                op.encode(out);
                out.count(keys.len(), MAX_KEYS)?;
                for key in keys {
                    key.encode(out)?;
                }
            }
            Request::Chpasswd {
                user,
                password,
                crypted,
            } => {
                out.u8(tag::CHPASSWD);
                user.encode(out)?;
                password.encode(out)?;
                out.bool(*crypted);
            }
            Request::Shutdown { mode } => {
                out.u8(tag::SHUTDOWN);
                mode.encode(out);
            }
        }
        Ok(())
    }

    fn decode_body(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(match input.u8()? {
            tag::OPEN_FILE => Request::OpenFile {
                path: Path::decode(input)?,
                mode: OpenMode::decode(input)?,
            },
            tag::REOPEN_CHANNEL => Request::ReopenChannel,
            tag::SPAWN => {
                let program = Path::decode(input)?;
                let argv = (0..input.count("argv", MAX_ARGS)?)
                    .map(|_| ByteString::decode(input))
                    .collect::<Result<_, _>>()?;
                let env = (0..input.count("environment", MAX_ENV)?)
                    .map(|_| EnvVar::decode(input))
                    .collect::<Result<_, _>>()?;
                Request::Spawn(SpawnRequest {
                    program,
                    argv,
                    env,
                    stdin: StdioMode::decode(input)?,
                    stdout: StdioMode::decode(input)?,
                    stderr: StdioMode::decode(input)?,
                })
            }
            tag::FREEZE => Request::Freeze {
                mountpoint: Path::decode(input)?,
            },
            tag::THAW => Request::Thaw {
                mountpoint: Path::decode(input)?,
            },
            tag::TRIM => Request::Trim {
                mountpoint: Path::decode(input)?,
                minimum: input.u64()?,
            },
            tag::SET_TIME => {
                let nanoseconds = if input.bool("time present")? {
                    Some(input.i64()?)
                } else {
                    None
                };
                Request::SetTime { nanoseconds }
            }
            tag::WRITE_SYSFS => Request::WriteSysfs {
                path: Path::decode(input)?,
                value: ByteString::decode(input)?,
            },
            tag::AUTHORIZED_KEYS => {
                let user = UserName::decode(input)?;
                let op = KeysOp::decode(input)?;
                let keys = (0..input.count("keys", MAX_KEYS)?)
                    .map(|_| SshKey::decode(input))
                    .collect::<Result<_, _>>()?;
                Request::AuthorizedKeys { user, op, keys }
            }
            tag::CHPASSWD => Request::Chpasswd {
                user: UserName::decode(input)?,
                password: Password::decode(input)?,
                crypted: input.bool("crypted")?,
            },
            tag::SHUTDOWN => Request::Shutdown {
                mode: PowerMode::decode(input)?,
            },
            other => return Err(DecodeError::UnknownTag(other)),
        })
    }

    fn fd_count(&self) -> usize {
        0
    }
}
