//! Whether a handler component from the operator's directory may load: the
//! directory's ownership and modes ([`handlers_dir`]), and its signature
//! ([`signature`]) by a key the policy trusts ([`keys`]). Embedded families
//! are trusted as part of the binary and never come here.

pub mod handlers_dir;
pub mod keys;
pub mod signature;
pub mod tool;

use std::path::{Path, PathBuf};

use thiserror::Error;

use keys::PublicKey;
use signature::{Sealed, SignatureError};

#[derive(Debug, Error)]
pub enum TrustError {
    #[error(transparent)]
    Dir(#[from] handlers_dir::DirError),
    #[error("trusted key: {0}")]
    Key(#[from] keys::KeyError),
}

/// `[handlers]` in the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandlersTrust {
    pub trusted_keys: Vec<PathBuf>,
    pub require_signature: bool,
}

/// Who vouches for a component's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// Built into the binary.
    Embedded,
    /// A valid signature by a trusted key (its fingerprint).
    Trusted(String),
    /// No signature at all.
    Unsigned,
    /// A signature that does not verify or whose key is not trusted; the
    /// key's fingerprint when the signature names one, and why.
    Invalid { key: Option<String>, reason: String },
}

impl Signer {
    /// For `qga policy audit` and the audit log.
    pub fn describe(&self) -> String {
        match self {
            Signer::Embedded => "embedded in the binary".into(),
            Signer::Trusted(key) => format!("trusted key {key}"),
            Signer::Unsigned => "unsigned".into(),
            Signer::Invalid { reason, .. } => format!("invalid: {reason}"),
        }
    }

    pub fn key_id(&self) -> Option<&str> {
        match self {
            Signer::Trusted(key) | Signer::Invalid { key: Some(key), .. } => Some(key),
            Signer::Embedded | Signer::Unsigned | Signer::Invalid { key: None, .. } => None,
        }
    }
}

/// A component file's verdict under the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Where it came from (a path, or "embedded").
    pub origin: String,
    pub signer: Signer,
    /// Why it must not load (`require-signature = true` and no trusted
    /// signature); None when it may.
    pub refusal: Option<String>,
}

impl Verdict {
    pub fn embedded() -> Verdict {
        Verdict {
            origin: "embedded".into(),
            signer: Signer::Embedded,
            refusal: None,
        }
    }

    /// A warning to log and audit when it loads anyway.
    pub fn warning(&self) -> Option<String> {
        match (&self.signer, &self.refusal) {
            (Signer::Invalid { reason, .. }, None) => Some(format!(
                "{}: {reason}; loaded because require-signature = false",
                self.origin
            )),
            _ => None,
        }
    }
}

/// The policy's trusted keys, read.
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
    require: bool,
}

impl TrustedKeys {
    pub fn load(policy: &HandlersTrust) -> Result<TrustedKeys, TrustError> {
        let keys = policy
            .trusted_keys
            .iter()
            .map(|p| PublicKey::load(p))
            .collect::<Result<_, _>>()?;
        Ok(TrustedKeys {
            keys,
            require: policy.require_signature,
        })
    }

    /// Judge one file: an embedded signature in a `.wasm` first, else its
    /// detached `<file>.sig` over all its bytes.
    pub fn judge(&self, path: &Path, bytes: &[u8], detached: Option<&[u8]>) -> Verdict {
        let signer = self.signer(bytes, detached);
        let origin = path.display().to_string();
        let refusal = match &signer {
            Signer::Trusted(_) | Signer::Embedded => None,
            Signer::Unsigned if self.require => Some(format!(
                "{origin}: no signature, and the policy requires a signature by a trusted key"
            )),
            Signer::Invalid { reason, .. } if self.require => Some(format!("{origin}: {reason}")),
            Signer::Unsigned | Signer::Invalid { .. } => None,
        };
        Verdict {
            origin,
            signer,
            refusal,
        }
    }

    fn signer(&self, bytes: &[u8], detached: Option<&[u8]>) -> Signer {
        let embedded = signature::split(bytes);
        let (signed, sealed) = match (&embedded, detached) {
            (Ok(e), _) if e.sealed.is_some() => (e.signed, e.sealed.clone()),
            (Err(SignatureError::NotWasm) | Ok(_), Some(sig)) => (bytes, Some(Sealed::parse(sig))),
            (Err(SignatureError::NotWasm) | Ok(_), None) => (bytes, None),
            (Err(e), _) => {
                return Signer::Invalid {
                    key: None,
                    reason: e.to_string(),
                };
            }
        };
        match sealed {
            None => Signer::Unsigned,
            Some(Err(e)) => Signer::Invalid {
                key: None,
                reason: e.to_string(),
            },
            Some(Ok(sealed)) => self.check(&sealed, signed),
        }
    }

    fn check(&self, sealed: &Sealed, signed: &[u8]) -> Signer {
        let key = sealed.key_fingerprint();
        match self.keys.iter().find(|k| k.id == sealed.key_id) {
            None => Signer::Invalid {
                reason: format!("signed by key {key}, which is not in trusted-keys"),
                key: Some(key),
            },
            Some(trusted) if sealed.verify(trusted, signed) => Signer::Trusted(key),
            Some(_) => Signer::Invalid {
                reason: format!("the signature by key {key} does not match the file's bytes"),
                key: Some(key),
            },
        }
    }
}

/// `qga verify`: is `bytes` (with its detached signature, if any) signed by
/// `key`? The reason when not.
pub fn verify_with(key: &PublicKey, bytes: &[u8], detached: Option<&[u8]>) -> Result<String, String> {
    let keys = TrustedKeys {
        keys: vec![key.clone()],
        require: true,
    };
    match keys.signer(bytes, detached) {
        Signer::Trusted(id) => Ok(id),
        Signer::Unsigned => Err("no signature".into()),
        Signer::Invalid { reason, .. } => Err(reason.replace("is not in trusted-keys", "is not the given key")),
        Signer::Embedded => Err("no signature".into()),
    }
}
