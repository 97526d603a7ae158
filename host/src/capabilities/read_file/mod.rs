//! `qga:agent/read-file`: whole files, exactly those the grant names.

pub mod settings;
mod sys;

use std::path::Path;

use super::qga::agent::read_file::{Host, ReadError};
use super::view::GrantView;
use super::{Capability, Denied};

impl Host for GrantView<'_> {
    fn read(&mut self, path: String) -> wasmtime::Result<Result<Vec<u8>, ReadError>> {
        self.grant.require(self.command, Capability::ReadFile)?;
        if !self.grant.read_files.iter().any(|p| p == Path::new(&path)) {
            return Err(Denied::Path {
                command: self.command.to_string(),
                path,
            }
            .into());
        }
        Ok(match sys::read(Path::new(&path), self.grant.read_limit) {
            Ok(bytes) => Ok(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ReadError::NotFound),
            Err(e) => Err(ReadError::Other(e.to_string())),
        })
    }
}
