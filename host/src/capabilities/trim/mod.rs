//! `qga:agent/trim`: FITRIM on a mount point the grant allows.

mod sys;

use std::path::Path;

use super::qga::agent::trim::{Host, TrimError, Trimmed};
use super::view::GrantView;
use super::{Capability, io_strerror, resolve};

impl Host for GrantView<'_> {
    fn trim(&mut self, mountpoint: String, minimum: u64) -> wasmtime::Result<Result<Trimmed, TrimError>> {
        self.grant.require(self.command, Capability::Trim)?;
        let denied = || {
            Ok(Err(TrimError::Denied(format!(
                "permission denied: {} may not use mount point {mountpoint}",
                self.command
            ))))
        };
        // The grant is matched against the resolved path, and FITRIM runs
        // on the very directory that matched.
        let found = match resolve::existing(Path::new(&mountpoint)) {
            Ok(found) => found,
            Err(e) if self.grant.allows_mount_path(&e.at) => {
                return Ok(Err(TrimError::Open(io_strerror(&e.io()))));
            }
            Err(_) => return denied(),
        };
        if !self.grant.allows_mount_path(&found.path) {
            return denied();
        }
        let file = match found.open(resolve::OFlag::O_RDONLY) {
            Ok(f) => f,
            Err(e) => return Ok(Err(TrimError::Open(io_strerror(&e)))),
        };
        // FITRIM runs to completion (on a frozen filesystem it waits for
        // the thaw), out of the call's slot.
        let trimmed = {
            let _out = crate::call_slot::step_out();
            sys::trim(&file, minimum)
        };
        Ok(match trimmed {
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
