//! Compiled-component artifacts on disk, keyed by the component's sha256 and
//! the engine's compatibility hash. A file is `MAGIC`, the sha256 of the
//! payload, then the payload (`Engine::precompile_component` output). A
//! corrupt, stale or foreign file is ignored (and replaced when this build
//! can compile); files are written to a temporary name and renamed.
//! Loading goes through `runtime::sys::deserialize`, the one `unsafe` step.

use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 10] = b"QGACWASM1\n";
const HEADER: usize = MAGIC.len() + 32;

/// Bump when `runtime::engine()` changes its configuration.
const ENGINE_CONFIG_VERSION: u32 = 1;

/// The engine part of cache keys: wasmtime's version, the target and our
/// engine configuration's version. Not `Engine::precompile_compatibility_hash`:
/// that exists only in builds with a compiler, and a build without one must
/// find what `qga compile` wrote. Wasmtime still checks full compatibility
/// when deserializing; a mismatch is an ignored artifact, not a crash.
pub fn engine_key(_engine: &Engine) -> String {
    // DefaultHasher::new() uses fixed keys: the same value in every run.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (
        WASMTIME_VERSION,
        std::env::consts::ARCH,
        std::env::consts::OS,
        ENGINE_CONFIG_VERSION,
    )
        .hash(&mut h);
    format!("{:016x}", h.finish())
}

/// The wasmtime the runtime is built on (pinned in host/Cargo.toml).
const WASMTIME_VERSION: &str = "48.0.8";

/// The artifact file for a component digest under `dir`.
pub fn artifact_path(dir: &Path, family: &str, digest: &str, engine_key: &str) -> PathBuf {
    dir.join(format!("{family}-{digest}-{engine_key}.cwasm"))
}

/// Whether `name` is an artifact file name as [`artifact_path`] makes them:
/// `<family>-<64 hex digits>-<16 hex digits>.cwasm`.
pub fn is_artifact_name(name: &str) -> bool {
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let Some(stem) = name.strip_suffix(".cwasm") else {
        return false;
    };
    let Some((rest, key)) = stem.rsplit_once('-') else {
        return false;
    };
    let Some((family, digest)) = rest.rsplit_once('-') else {
        return false;
    };
    !family.is_empty() && !family.starts_with('.') && hex(digest, 64) && hex(key, 16)
}

/// Remove the artifacts in `dir` that are not in `keep`: builds swapped
/// out, and builds of another engine. Only files named as artifacts are
/// touched (not temporary files of a store in progress, not anything
/// else). Returns how many went.
pub fn prune(dir: &Path, keep: &[PathBuf]) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(text) = name.to_str() else {
            continue;
        };
        if !is_artifact_name(text) {
            continue;
        }
        let path = entry.path();
        if keep.contains(&path) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) => tracing::warn!("cannot remove the stale artifact {}: {e}", path.display()),
        }
    }
    removed
}

/// Why an artifact was not used.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0} is not a qga artifact or is corrupt")]
    Corrupt(PathBuf),
    #[error("{0} does not fit this engine: {1}")]
    Incompatible(PathBuf, String),
}

/// Load an artifact written by [`store`].
pub fn load(engine: &Engine, path: &Path) -> Result<Component, ArtifactError> {
    let bytes = read_intact(path)?;
    super::sys::deserialize(engine, &bytes[HEADER..])
        .map_err(|e| ArtifactError::Incompatible(path.to_owned(), e.to_string()))
}

/// Whether the artifact at `path` is whole (magic and checksum), without
/// loading it.
pub fn is_intact(path: &Path) -> bool {
    read_intact(path).is_ok()
}

/// The artifact's bytes, once its magic and checksum are right.
fn read_intact(path: &Path) -> Result<Vec<u8>, ArtifactError> {
    let bytes = std::fs::read(path).map_err(|e| ArtifactError::Read(path.to_owned(), e))?;
    if bytes.len() < HEADER || &bytes[..MAGIC.len()] != MAGIC {
        return Err(ArtifactError::Corrupt(path.to_owned()));
    }
    if Sha256::digest(&bytes[HEADER..]).as_slice() != &bytes[MAGIC.len()..HEADER] {
        return Err(ArtifactError::Corrupt(path.to_owned()));
    }
    Ok(bytes)
}

/// Write `payload` (from `Engine::precompile_component`) atomically. A
/// failed write (a full or read-only state directory) leaves no temporary
/// file behind: each start would otherwise add one more.
pub fn store(path: &Path, payload: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("artifact"),
        std::process::id()
    ));
    let written = write_artifact(&tmp, payload).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn write_artifact(tmp: &Path, payload: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(tmp)?;
    f.write_all(MAGIC)?;
    f.write_all(&Sha256::digest(payload))?;
    f.write_all(payload)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_artifact_names_are_pruned() {
        let digest = "ab".repeat(32);
        let key = "0123456789abcdef";
        let dir = std::env::temp_dir().join(format!("qga-cache-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let keep = artifact_path(&dir, "system-info", &digest, key);
        let stale = artifact_path(&dir, "system-info", &"cd".repeat(32), key);
        let other_engine = artifact_path(&dir, "file", &digest, "fedcba9876543210");
        let foreign = dir.join("notes.cwasm");
        let in_progress = dir.join(format!(".file-{digest}-{key}.cwasm.tmp42"));
        for f in [&keep, &stale, &other_engine, &foreign, &in_progress] {
            std::fs::write(f, b"x").unwrap();
        }
        assert_eq!(prune(&dir, std::slice::from_ref(&keep)), 2);
        assert!(keep.exists() && foreign.exists() && in_progress.exists());
        assert!(!stale.exists() && !other_engine.exists());
        assert!(!is_artifact_name(&format!("-{digest}-{key}.cwasm")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
