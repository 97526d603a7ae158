//! `qga:agent/trim`: FITRIM on a mount point the grant allows.

mod sys;

use std::path::Path;

use super::qga::agent::trim::{Host, TrimError, Trimmed};
use super::{CallCtx, Capability, io_strerror};

impl Host for CallCtx {
    fn trim(&mut self, mountpoint: String, minimum: u64) -> wasmtime::Result<Result<Trimmed, TrimError>> {
        self.grant.require(&self.command, Capability::Trim)?;
        if !self.grant.allows_mount(&mountpoint) {
            return Ok(Err(TrimError::Denied(format!(
                "permission denied: {} may not use mount point {mountpoint}",
                self.command
            ))));
        }
        let file = match sys::open_mount(Path::new(&mountpoint)) {
            Ok(f) => f,
            Err(e) => return Ok(Err(TrimError::Open(io_strerror(&e)))),
        };
        Ok(match sys::trim(&file, minimum) {
            Ok(range) => Ok(Trimmed {
                trimmed: range.len,
                minimum: range.minlen,
            }),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTTY) | Some(libc::EOPNOTSUPP)) => {
                Err(TrimError::NotSupported)
            }
            Err(e) => Err(TrimError::Failed(io_strerror(&e))),
        })
    }
}
