//! The field types of broker messages. Each constructor is the one place its
//! bounds are checked: the sender builds values with it and the decoder runs
//! it again on what arrived.

use std::fmt;

use super::codec::{DecodeError, Decoder, EncodeError, Encoder};

/// Longest path (Linux `PATH_MAX`, terminating NUL excluded).
pub const MAX_PATH: usize = 4095;
/// Longest argv entry, environment entry or sysfs value.
pub const MAX_ARG: usize = 4096;
/// Longest user name (useradd's limit).
pub const MAX_USER: usize = 32;
/// Longest password.
pub const MAX_PASSWORD: usize = 1024;
/// Longest authorized_keys line.
pub const MAX_SSH_KEY: usize = 16 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FieldError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is {len} bytes, limit {limit}")]
    TooLong {
        what: &'static str,
        len: usize,
        limit: usize,
    },
    #[error("{what} contains a NUL byte")]
    Nul { what: &'static str },
    #[error("{what} contains a newline")]
    Newline { what: &'static str },
    #[error("path is not absolute")]
    NotAbsolute,
    #[error("environment entry has no '=' after a non-empty name")]
    EnvWithoutName,
    #[error("user name contains a character outside [A-Za-z0-9._-] or starts with '-'")]
    BadUserName,
}

fn check(what: &'static str, bytes: &[u8], limit: usize) -> Result<(), FieldError> {
    if bytes.len() > limit {
        return Err(FieldError::TooLong {
            what,
            len: bytes.len(),
            limit,
        });
    }
    if bytes.contains(&0) {
        return Err(FieldError::Nul { what });
    }
    Ok(())
}

macro_rules! byte_field {
    ($(#[$doc:meta])* $name:ident, $what:literal, $limit:expr, $extra:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(Vec<u8>);

        impl $name {
            pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, FieldError> {
                let bytes = bytes.into();
                check($what, &bytes, $limit)?;
                let extra: fn(&[u8]) -> Result<(), FieldError> = $extra;
                extra(&bytes)?;
                Ok(Self(bytes))
            }

            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            pub(crate) fn encode(&self, out: &mut Encoder) -> Result<(), EncodeError> {
                out.bytes(&self.0)
            }

            pub(crate) fn decode(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
                Ok(Self::new(input.bytes($what, $limit)?)?)
            }
        }
    };
}

byte_field!(
    /// An absolute path without NUL bytes.
    Path, "path", MAX_PATH, |b| match b.first() {
        None => Err(FieldError::Empty { what: "path" }),
        Some(b'/') => Ok(()),
        Some(_) => Err(FieldError::NotAbsolute),
    }
);
byte_field!(
    /// A bounded byte string without NUL bytes (an argv entry, a sysfs value).
    ByteString, "byte string", MAX_ARG, |_| Ok(())
);
byte_field!(
    /// `NAME=value`, NAME non-empty.
    EnvVar, "environment entry", MAX_ARG, |b| match b.iter().position(|&c| c == b'=') {
        Some(0) | None => Err(FieldError::EnvWithoutName),
        Some(_) => Ok(()),
    }
);
byte_field!(
    /// A login name: `[A-Za-z0-9._-]`, not starting with `-`.
    UserName, "user name", MAX_USER, |b| {
        let valid = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-');
        match b.first() {
            None => Err(FieldError::Empty { what: "user name" }),
            Some(b'-') => Err(FieldError::BadUserName),
            Some(_) if b.iter().all(valid) => Ok(()),
            Some(_) => Err(FieldError::BadUserName),
        }
    }
);
byte_field!(
    /// One authorized_keys line (no newline: one key is one line).
    SshKey, "ssh key", MAX_SSH_KEY, |b| if b.contains(&b'\n') {
        Err(FieldError::Newline { what: "ssh key" })
    } else {
        Ok(())
    }
);

/// A password for chpasswd: one line, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(Vec<u8>);

impl Password {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, FieldError> {
        let bytes = bytes.into();
        check("password", &bytes, MAX_PASSWORD)?;
        if bytes.contains(&b'\n') {
            return Err(FieldError::Newline { what: "password" });
        }
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn encode(&self, out: &mut Encoder) -> Result<(), EncodeError> {
        out.bytes(&self.0)
    }

    pub(crate) fn decode(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Self::new(input.bytes("password", MAX_PASSWORD)?)?)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

macro_rules! debug_as_text {
    ($($name:ident),*) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), String::from_utf8_lossy(&self.0))
            }
        }
    )*};
}
debug_as_text!(Path, ByteString, EnvVar, UserName, SshKey);

macro_rules! byte_enum {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($variant:ident = $value:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),*];

            pub(crate) fn encode(self, out: &mut Encoder) {
                out.u8(match self { $($name::$variant => $value),* });
            }

            pub(crate) fn decode(input: &mut Decoder<'_>) -> Result<Self, DecodeError> {
                match input.u8()? {
                    $($value => Ok($name::$variant),)*
                    other => Err(DecodeError::BadValue { what: $what, value: u64::from(other) }),
                }
            }
        }
    };
}

byte_enum!(
    /// qemu-ga's open modes (`r`, `r+`, `w`, `w+`, `a`, `a+`); the broker
    /// computes the open flags from this, never from flags the caller sends.
    OpenMode, "open mode" { Read = 1, ReadPlus = 2, Write = 3, WritePlus = 4, Append = 5, AppendPlus = 6 }
);
byte_enum!(
    /// What a spawned child's stdin, stdout or stderr is connected to.
    StdioMode, "stdio mode" { Null = 1, Pipe = 2 }
);
byte_enum!(
    /// guest-shutdown's modes.
    PowerMode, "power mode" { Halt = 1, Powerdown = 2, Reboot = 3 }
);
byte_enum!(
    /// An authorized_keys edit: add (keeping existing keys), reset (replace
    /// every key) or remove.
    KeysOp, "authorized_keys operation" { Add = 1, Reset = 2, Remove = 3 }
);

impl OpenMode {
    /// The mode's `open(2)` flags, as qemu-ga's `find_open_flag` maps them,
    /// plus the broker's own: `O_CLOEXEC | O_NOCTTY`.
    pub fn flags(self) -> libc::c_int {
        let access = match self {
            OpenMode::Read => libc::O_RDONLY,
            OpenMode::ReadPlus => libc::O_RDWR,
            OpenMode::Write => libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            OpenMode::WritePlus => libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC,
            OpenMode::Append => libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT,
            OpenMode::AppendPlus => libc::O_RDWR | libc::O_APPEND | libc::O_CREAT,
        };
        access | libc::O_CLOEXEC | libc::O_NOCTTY
    }
}
