//! `qga:agent/read-file`: whole files, exactly those the grant names.

pub mod settings;
mod sys;

use std::path::Path;

use super::qga::agent::read_file::{Host, ReadError};
use super::view::GrantView;
use super::{Capability, Denied};

/// What a command may read through read-file.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadFileGrant {
    /// The exact paths it may read.
    pub paths: Vec<std::path::PathBuf>,
    /// At most this many bytes per read.
    pub limit: u64,
}

impl ReadFileGrant {
    /// No path (and the default cap of 1 MiB per read).
    pub fn nothing() -> ReadFileGrant {
        ReadFileGrant {
            paths: Vec::new(),
            limit: 1 << 20,
        }
    }
}

impl Host for GrantView<'_> {
    fn read(&mut self, path: String) -> wasmtime::Result<Result<Vec<u8>, ReadError>> {
        self.grant.require(self.command, Capability::ReadFile)?;
        if !self.grant.read_file.paths.iter().any(|p| p == Path::new(&path)) {
            return Err(Denied::Path {
                command: self.command.to_string(),
                path,
            }
            .into());
        }
        Ok(match sys::read(Path::new(&path), self.grant.read_file.limit) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ReadError::NotFound),
            Err(e) => Err(ReadError::Other(e.to_string())),
        })
    }
}
