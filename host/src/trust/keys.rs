//! OpenSSH ed25519 keys, as `ssh-keygen -t ed25519 -N ''` writes them: the
//! private key file (`openssh-key-v1`, unencrypted) and the `.pub` line.
//! A key's id is its OpenSSH fingerprint (`ssh-keygen -lf KEY.pub`).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use thiserror::Error;

const KEY_TYPE: &str = "ssh-ed25519";
const PRIVATE_MAGIC: &[u8] = b"openssh-key-v1\0";
const PEM_BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const PEM_END: &str = "-----END OPENSSH PRIVATE KEY-----";

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("cannot read key file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("key file {0} is not an OpenSSH ed25519 {1} key: {2}")]
    Format(PathBuf, &'static str, String),
}

/// A public key and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub key: VerifyingKey,
    /// sha256 of the OpenSSH public key blob: the raw form of [`Self::fingerprint`].
    pub id: [u8; 32],
}

impl PublicKey {
    pub fn from_bytes(raw: [u8; 32]) -> Result<PublicKey, String> {
        let key = VerifyingKey::from_bytes(&raw).map_err(|e| format!("bad ed25519 point: {e}"))?;
        Ok(PublicKey {
            key,
            id: Sha256::digest(blob(&raw)).into(),
        })
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.id)
    }

    /// Read a `.pub` file: `ssh-ed25519 BASE64 [comment]`.
    pub fn load(path: &Path) -> Result<PublicKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::Read(path.to_owned(), e))?;
        PublicKey::parse(&text).map_err(|reason| KeyError::Format(path.to_owned(), "public", reason))
    }

    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let mut words = text.split_whitespace();
        match words.next() {
            Some(KEY_TYPE) => {}
            Some(other) => return Err(format!("key type is {other}, expected {KEY_TYPE}")),
            None => return Err("the file is empty".into()),
        }
        let b64 = words.next().ok_or("no key after the key type")?;
        let raw = STANDARD.decode(b64).map_err(|e| format!("bad base64: {e}"))?;
        let mut r = Reader(&raw);
        if r.string()? != KEY_TYPE.as_bytes() {
            return Err(format!("the key blob is not {KEY_TYPE}"));
        }
        let point = r.key32()?;
        if !r.0.is_empty() {
            return Err("trailing bytes after the key".into());
        }
        PublicKey::from_bytes(point)
    }
}

/// `SHA256:…` for a raw key id.
pub fn fingerprint(id: &[u8; 32]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(id))
}

/// A private key and its public half.
pub struct PrivateKey {
    pub key: SigningKey,
    pub public: PublicKey,
}

impl PrivateKey {
    pub fn load(path: &Path) -> Result<PrivateKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::Read(path.to_owned(), e))?;
        PrivateKey::parse(&text).map_err(|reason| KeyError::Format(path.to_owned(), "private", reason))
    }

    pub fn parse(text: &str) -> Result<PrivateKey, String> {
        let body = text
            .trim()
            .strip_prefix(PEM_BEGIN)
            .and_then(|t| t.strip_suffix(PEM_END))
            .ok_or_else(|| format!("expected {PEM_BEGIN} … {PEM_END}"))?;
        let b64: String = body.split_whitespace().collect();
        let raw = STANDARD.decode(b64).map_err(|e| format!("bad base64: {e}"))?;
        let rest = raw.strip_prefix(PRIVATE_MAGIC).ok_or("not an openssh-key-v1 key")?;
        let mut r = Reader(rest);
        let cipher = r.string()?;
        let kdf = r.string()?;
        let _kdf_options = r.string()?;
        if cipher != b"none" || kdf != b"none" {
            return Err("the key is encrypted (use a key written with -N '')".into());
        }
        if r.u32()? != 1 {
            return Err("the file holds more than one key".into());
        }
        let _public_blob = r.string()?;
        let mut private = Reader(r.string()?);
        if private.u32()? != private.u32()? {
            return Err("check words differ (corrupt key)".into());
        }
        if private.string()? != KEY_TYPE.as_bytes() {
            return Err(format!("the key is not {KEY_TYPE}"));
        }
        let point = private.key32()?;
        let pair = private.string()?;
        let pair: [u8; 64] = pair.try_into().map_err(|_| "private key is not 64 bytes")?;
        let seed: [u8; 32] = pair[..32].try_into().map_err(|_| "private key is not 64 bytes")?;
        let key = SigningKey::from_bytes(&seed);
        if key.verifying_key().to_bytes() != point || pair[32..] != point {
            return Err("the private and public halves do not match".into());
        }
        let public = PublicKey::from_bytes(point)?;
        Ok(PrivateKey { key, public })
    }
}

/// The OpenSSH wire blob of an ed25519 public key.
fn blob(point: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(51);
    for part in [KEY_TYPE.as_bytes(), point.as_slice()] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// SSH wire-format reader (RFC 4251 `uint32` and `string`).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Result<u32, String> {
        let (head, rest) = self.0.split_first_chunk::<4>().ok_or("truncated key")?;
        self.0 = rest;
        Ok(u32::from_be_bytes(*head))
    }

    fn string(&mut self) -> Result<&'a [u8], String> {
        let len = self.u32()? as usize;
        if len > self.0.len() {
            return Err("truncated key".into());
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(s)
    }

    fn key32(&mut self) -> Result<[u8; 32], String> {
        self.string()?
            .try_into()
            .map_err(|_| "ed25519 public key is not 32 bytes".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // ssh-keygen -t ed25519 -N '' -C test (a throwaway key).
    const PUBLIC: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHTeBu/8+6LitXn6xYlGwZ1D//xWy/WZJ/tG7GLWbFr9 test";

    #[test]
    fn a_public_key_line_parses_and_has_an_openssh_fingerprint() {
        let key = PublicKey::parse(PUBLIC).unwrap();
        // As `ssh-keygen -lf` prints it for this key.
        assert_eq!(key.fingerprint(), "SHA256:RS/5dct6JCHWGuJ+GRfRcWrn6hMqiEXShScfFNfF1aI");
    }

    #[test]
    fn other_key_types_and_damaged_keys_are_refused() {
        assert_eq!(
            PublicKey::parse("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ test").unwrap_err(),
            "key type is ssh-rsa, expected ssh-ed25519"
        );
        assert_eq!(PublicKey::parse("").unwrap_err(), "the file is empty");
        assert_eq!(
            PublicKey::parse("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHvl").unwrap_err(),
            "truncated key"
        );
        assert!(
            PrivateKey::parse(PUBLIC)
                .err()
                .unwrap()
                .starts_with("expected -----BEGIN")
        );
    }
}
