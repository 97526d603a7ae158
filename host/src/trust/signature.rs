//! The signature format: ed25519 by an OpenSSH key over the sha256 of the
//! signed bytes (domain-separated), carried either embedded in a `.wasm` as
//! its last custom section `qga-signature` (signed bytes: the file without
//! that section) or in a detached `X.sig` file (signed bytes: all of X).
//!
//! Payload (97 bytes, the section's content after its name and the whole of
//! a detached file): version `1`, the signer's key id (sha256 of its OpenSSH
//! public key blob, 32 bytes), the ed25519 signature (64 bytes).

use ed25519_dalek::{Signature, Signer as _};
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::keys::{PrivateKey, PublicKey, fingerprint};

/// The custom section's name.
pub const SECTION: &str = "qga-signature";
const VERSION: u8 = 1;
const PAYLOAD_LEN: usize = 1 + 32 + 64;
const DOMAIN: &[u8] = b"qga-signature-v1\0";
const WASM_MAGIC: &[u8] = b"\0asm";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("not a wasm binary (sign it detached)")]
    NotWasm,
    #[error("malformed wasm section at byte {0}")]
    Malformed(usize),
    #[error("a {SECTION} section that is not the last section")]
    Misplaced,
    #[error("malformed signature: {0}")]
    Payload(String),
}

/// A parsed signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: [u8; 32],
    pub signature: [u8; 64],
}

impl Sealed {
    pub fn parse(payload: &[u8]) -> Result<Sealed, SignatureError> {
        if payload.len() != PAYLOAD_LEN {
            return Err(SignatureError::Payload(format!(
                "{} bytes, expected {PAYLOAD_LEN}",
                payload.len()
            )));
        }
        if payload[0] != VERSION {
            return Err(SignatureError::Payload(format!("unknown version {}", payload[0])));
        }
        let mut key_id = [0; 32];
        key_id.copy_from_slice(&payload[1..33]);
        let mut signature = [0; 64];
        signature.copy_from_slice(&payload[33..]);
        Ok(Sealed { key_id, signature })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PAYLOAD_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.signature);
        out
    }

    pub fn key_fingerprint(&self) -> String {
        fingerprint(&self.key_id)
    }

    /// Does `key` (which must have this signature's id) sign `signed`?
    pub fn verify(&self, key: &PublicKey, signed: &[u8]) -> bool {
        key.id == self.key_id
            && key
                .key
                .verify_strict(&message(signed), &Signature::from_bytes(&self.signature))
                .is_ok()
    }
}

fn message(signed: &[u8]) -> Vec<u8> {
    let mut m = DOMAIN.to_vec();
    m.extend_from_slice(&Sha256::digest(signed));
    m
}

/// Sign `bytes` (all of them) for a detached `.sig` file.
pub fn sign_detached(key: &PrivateKey, bytes: &[u8]) -> Vec<u8> {
    Sealed {
        key_id: key.public.id,
        signature: key.key.sign(&message(bytes)).to_bytes(),
    }
    .to_bytes()
}

/// A wasm binary split into what is signed and its embedded signature.
pub struct Embedded<'a> {
    pub signed: &'a [u8],
    pub sealed: Option<Result<Sealed, SignatureError>>,
}

/// Find the embedded signature of a wasm module or component.
pub fn split(bytes: &[u8]) -> Result<Embedded<'_>, SignatureError> {
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(SignatureError::NotWasm);
    }
    let mut at = 8;
    let mut found: Option<(usize, &[u8])> = None;
    while at < bytes.len() {
        let start = at;
        let id = bytes[at];
        let (size, len) = leb_u32(&bytes[at + 1..]).ok_or(SignatureError::Malformed(start))?;
        let body_start = at + 1 + len;
        let end = body_start
            .checked_add(size as usize)
            .filter(|e| *e <= bytes.len())
            .ok_or(SignatureError::Malformed(start))?;
        if found.is_some() {
            return Err(SignatureError::Misplaced);
        }
        if id == 0 {
            let body = &bytes[body_start..end];
            let (name_len, n) = leb_u32(body).ok_or(SignatureError::Malformed(start))?;
            let name = body
                .get(n..n + name_len as usize)
                .ok_or(SignatureError::Malformed(start))?;
            if name == SECTION.as_bytes() {
                found = Some((start, &body[n + name_len as usize..]));
            }
        }
        at = end;
    }
    Ok(match found {
        Some((start, payload)) => Embedded {
            signed: &bytes[..start],
            sealed: Some(Sealed::parse(payload)),
        },
        None => Embedded {
            signed: bytes,
            sealed: None,
        },
    })
}

/// `bytes` with its embedded signature replaced by one from `key`.
pub fn sign_embedded(key: &PrivateKey, bytes: &[u8]) -> Result<Vec<u8>, SignatureError> {
    let signed = split(bytes)?.signed;
    let payload = sign_detached(key, signed);
    let mut body = leb(SECTION.len() as u32);
    body.extend_from_slice(SECTION.as_bytes());
    body.extend_from_slice(&payload);
    let mut out = signed.to_vec();
    out.push(0);
    out.extend_from_slice(&leb(body.len() as u32));
    out.extend_from_slice(&body);
    Ok(out)
}

fn leb(mut v: u32) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// An unsigned LEB128 u32 and how many bytes it took.
fn leb_u32(bytes: &[u8]) -> Option<(u32, usize)> {
    let mut value: u64 = 0;
    for (i, b) in bytes.iter().take(5).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(value).ok().map(|v| (v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb_round_trips() {
        for v in [0, 1, 127, 128, 300, 16384, u32::MAX] {
            assert_eq!(leb_u32(&leb(v)), Some((v, leb(v).len())));
        }
    }

    #[test]
    fn truncated_section_is_malformed() {
        let bytes = b"\0asm\x0d\0\x01\0\x00\x10abc";
        assert_eq!(split(bytes).err(), Some(SignatureError::Malformed(8)));
    }
}
