//! The broker protocol: a small typed message set in a fixed, bounded binary
//! format. No JSON crosses this boundary; the broker never parses the wire.
//!
//! A frame is one `SOCK_SEQPACKET` datagram:
//!
//! ```text
//! u32 LE   length of what follows (must equal the datagram's size - 4)
//! u8       tag (requests 0x01.., replies 0x81..; anything else is refused)
//! ...      the tag's fields, in order, nothing after them
//! ```
//!
//! Fields: integers little-endian; byte strings as `u32 length + bytes`,
//! each kind with its own bound; lists as `u16 count + items`, bounded;
//! options and booleans as one byte `0`/`1`; enums as one byte. Every value
//! is validated on decode by the same constructor the sender used, so a frame
//! that decodes is a frame the sender could have built.
//!
//! Fds travel beside the frame (`SCM_RIGHTS`); each message says how many it
//! carries ([`Message::fd_count`]) and the channel refuses any other number.

mod codec;
mod fields;
mod reply;
mod request;

pub use codec::{DecodeError, Decoder, EncodeError, Encoder};
pub use fields::{
    ByteString, EnvVar, FieldError, KeysOp, OpenMode, Password, Path, PowerMode, SshKey, StdioMode, UserName,
};
pub use reply::{Reply, SpawnedStdio};
pub use request::{Operation, Request, SpawnRequest};

/// Largest frame on the channel, header included.
pub const MAX_FRAME: usize = 64 * 1024;
/// Most fds one message may carry (a spawn's stdin, stdout and stderr).
pub const MAX_FDS: usize = 3;

/// A message of the broker protocol.
pub trait Message: Sized {
    /// Appends the tag and fields (not the length header).
    fn encode_body(&self, out: &mut Encoder) -> Result<(), EncodeError>;
    /// Reads the tag and fields; the decoder checks nothing is left over.
    fn decode_body(input: &mut Decoder<'_>) -> Result<Self, DecodeError>;
    /// How many fds travel with this message.
    fn fd_count(&self) -> usize;

    /// The whole frame, length header included.
    fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Encoder::new();
        self.encode_body(&mut out)?;
        out.finish()
    }

    /// Decodes one whole frame; any length mismatch, unknown tag, out-of-bound
    /// field or trailing byte is an error.
    fn decode(frame: &[u8]) -> Result<Self, DecodeError> {
        let mut input = Decoder::frame(frame)?;
        let message = Self::decode_body(&mut input)?;
        input.end()?;
        Ok(message)
    }
}
