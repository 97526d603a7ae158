//! Bounded reading and writing of frame fields.

use super::MAX_FRAME;
use super::fields::FieldError;

const HEADER: usize = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("broker message of {0} bytes exceeds the {MAX_FRAME}-byte frame limit")]
    TooLarge(usize),
    #[error("broker message list of {count} items exceeds its limit of {limit}")]
    TooMany { count: usize, limit: usize },
    #[error("invalid {what} value {value} in a broker message")]
    BadValue { what: &'static str, value: i64 },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("broker frame of {0} bytes is shorter than its header")]
    ShortHeader(usize),
    #[error("broker frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("broker frame announces {announced} bytes but carries {actual}")]
    LengthMismatch { announced: usize, actual: usize },
    #[error("broker frame ends inside a field ({needed} more bytes needed)")]
    Truncated { needed: usize },
    #[error("broker frame has {0} bytes after its last field")]
    Trailing(usize),
    #[error("unknown broker message tag {0:#04x}")]
    UnknownTag(u8),
    #[error("invalid {what} value {value}")]
    BadValue { what: &'static str, value: u64 },
    #[error("broker {what} is {len} bytes, limit {limit}")]
    FieldTooLong {
        what: &'static str,
        len: usize,
        limit: usize,
    },
    #[error("broker {what} list has {count} items, limit {limit}")]
    ListTooLong {
        what: &'static str,
        count: usize,
        limit: usize,
    },
    #[error(transparent)]
    Field(#[from] FieldError),
}

/// Builds one frame; the length header is filled in by [`Encoder::finish`].
pub struct Encoder {
    buf: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        Self { buf: vec![0; HEADER] }
    }

    pub fn u8(&mut self, value: u8) {
        self.buf.push(value);
    }

    pub fn bool(&mut self, value: bool) {
        self.u8(u8::from(value));
    }

    pub fn u16(&mut self, value: u16) {
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    pub fn u32(&mut self, value: u32) {
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    pub fn i32(&mut self, value: i32) {
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    pub fn u64(&mut self, value: u64) {
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    pub fn i64(&mut self, value: i64) {
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    /// A byte string; its bound was checked when the value was built, the
    /// frame bound is checked by `finish`.
    pub fn bytes(&mut self, value: &[u8]) -> Result<(), EncodeError> {
        let len = u32::try_from(value.len()).map_err(|_| EncodeError::TooLarge(value.len()))?;
        self.u32(len);
        self.buf.extend_from_slice(value);
        if self.buf.len() > MAX_FRAME {
            return Err(EncodeError::TooLarge(self.buf.len()));
        }
        Ok(())
    }

    /// A list's count prefix.
    pub fn count(&mut self, count: usize, limit: usize) -> Result<(), EncodeError> {
        if count > limit {
            return Err(EncodeError::TooMany { count, limit });
        }
        let count = u16::try_from(count).map_err(|_| EncodeError::TooMany { count, limit })?;
        self.u16(count);
        Ok(())
    }

    pub fn finish(mut self) -> Result<Vec<u8>, EncodeError> {
        if self.buf.len() > MAX_FRAME {
            return Err(EncodeError::TooLarge(self.buf.len()));
        }
        let body = u32::try_from(self.buf.len() - HEADER).map_err(|_| EncodeError::TooLarge(self.buf.len()))?;
        self.buf[..HEADER].copy_from_slice(&body.to_le_bytes());
        Ok(self.buf)
    }
}

/// Reads one frame's fields, never past its end.
pub struct Decoder<'a> {
    rest: &'a [u8],
}

impl<'a> Decoder<'a> {
    /// Checks the header against the datagram's real size.
    pub fn frame(frame: &'a [u8]) -> Result<Self, DecodeError> {
        if frame.len() > MAX_FRAME {
            return Err(DecodeError::TooLarge(frame.len()));
        }
        let Some((header, body)) = frame.split_first_chunk::<HEADER>() else {
            return Err(DecodeError::ShortHeader(frame.len()));
        };
        let announced = u32::from_le_bytes(*header) as usize;
        if announced != body.len() {
            return Err(DecodeError::LengthMismatch {
                announced,
                actual: body.len(),
            });
        }
        Ok(Self { rest: body })
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if len > self.rest.len() {
            return Err(DecodeError::Truncated {
                needed: len - self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(len);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError::BadValue {
                what,
                value: u64::from(other),
            }),
        }
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A byte string of at most `limit` bytes; the length is checked before
    /// anything is copied.
    pub fn bytes(&mut self, what: &'static str, limit: usize) -> Result<Vec<u8>, DecodeError> {
        let len = self.u32()? as usize;
        if len > limit {
            return Err(DecodeError::FieldTooLong { what, len, limit });
        }
        Ok(self.take(len)?.to_vec())
    }

    /// A list's count, at most `limit`.
    pub fn count(&mut self, what: &'static str, limit: usize) -> Result<usize, DecodeError> {
        let count = usize::from(self.u16()?);
        if count > limit {
            return Err(DecodeError::ListTooLong { what, count, limit });
        }
        Ok(count)
    }

    /// Refuses bytes after the last field.
    pub fn end(self) -> Result<(), DecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing(self.rest.len()))
        }
    }
}
