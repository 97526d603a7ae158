//! The pid file: created, locked for the agent's life, removed on exit. A
//! second agent with the same pid file refuses to start.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum PidfileError {
    #[error("failed to open pid file {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("Cannot lock pid file {path}: another agent holds it")]
    Locked { path: PathBuf },
    #[error("failed to write pid file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

pub struct Pidfile {
    path: PathBuf,
    _lock: Flock<File>,
}

impl Pidfile {
    pub fn create(path: &Path) -> Result<Pidfile, PidfileError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o644)
            .open(path)
            .map_err(|source| PidfileError::Open {
                path: path.into(),
                source,
            })?;
        let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|_| PidfileError::Locked { path: path.into() })?;
        let write = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            writeln!(file, "{}", std::process::id())?;
            file.sync_all()
        };
        write(&mut lock).map_err(|source| PidfileError::Write {
            path: path.into(),
            source,
        })?;
        Ok(Pidfile {
            path: path.into(),
            _lock: lock,
        })
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
