//! `qga sign` and `qga verify`: the operator's side of signed handlers.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::keys::{KeyError, PrivateKey, PublicKey};
use super::signature::{self, SignatureError};

#[derive(Debug, Error)]
pub enum ToolError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: {1}")]
    Signature(PathBuf, SignatureError),
    #[error("{0}: {1}")]
    Invalid(PathBuf, String),
}

/// `<file>.sig`.
pub fn detached_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// Sign `file` with the OpenSSH private key at `key`: in place (an embedded
/// section) for a wasm binary, else (or with `detached`) into `<file>.sig`.
/// Returns what was written.
pub fn sign(key: &Path, file: &Path, detached: bool) -> Result<String, ToolError> {
    let key = PrivateKey::load(key)?;
    let bytes = std::fs::read(file).map_err(|e| ToolError::Io(file.to_owned(), e))?;
    let embedded = !detached && bytes.starts_with(b"\0asm");
    let (target, content) = if embedded {
        let signed = signature::sign_embedded(&key, &bytes).map_err(|e| ToolError::Signature(file.to_owned(), e))?;
        (file.to_owned(), signed)
    } else {
        (detached_path(file), signature::sign_detached(&key, &bytes))
    };
    replace(&target, &content, file)?;
    Ok(format!(
        "{}: signed by key {}{}",
        file.display(),
        key.public.fingerprint(),
        if embedded {
            String::new()
        } else {
            format!(" (signature in {})", target.display())
        }
    ))
}

/// Write `target` whole or not at all: a temporary file beside it with the
/// mode of `like`, then a rename.
fn replace(target: &Path, content: &[u8], like: &Path) -> Result<(), ToolError> {
    let io = |e| ToolError::Io(target.to_owned(), e);
    let mode = std::fs::metadata(like).map_err(io)?.permissions().mode() & 0o7777 & !0o022;
    let mut tmp_name = target.as_os_str().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(content)?;
        f.sync_all()?;
        std::fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Is `file` (embedded, else `<file>.sig`) signed by the key in `key_pub`?
pub fn verify(key_pub: &Path, file: &Path) -> Result<String, ToolError> {
    let key = PublicKey::load(key_pub)?;
    let bytes = std::fs::read(file).map_err(|e| ToolError::Io(file.to_owned(), e))?;
    let sig_path = detached_path(file);
    let detached = match std::fs::read(&sig_path) {
        Ok(sig) => Some(sig),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(ToolError::Io(sig_path, e)),
    };
    super::verify_with(&key, &bytes, detached.as_deref())
        .map(|id| format!("{}: valid signature by key {id}", file.display()))
        .map_err(|reason| ToolError::Invalid(file.to_owned(), reason))
}
