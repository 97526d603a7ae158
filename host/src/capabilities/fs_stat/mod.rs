//! `qga:agent/fs-stat`: statvfs of a mount point the grant allows.

mod sys;

use std::path::Path;

use super::qga::agent::fs_stat::{FsUsage, Host};
use super::{CallCtx, Capability, Denied, QgaError, io_strerror};

impl Host for CallCtx {
    fn statvfs(&mut self, mountpoint: String) -> wasmtime::Result<Result<FsUsage, QgaError>> {
        self.grant.require(&self.command, Capability::FsStat)?;
        if !self.grant.allows_mount(&mountpoint) {
            // Not a trap: guest-get-fsinfo then omits the sizes, as qemu-ga
            // does when statvfs fails.
            let denied = Denied::Mount {
                command: self.command.to_string(),
                path: mountpoint,
            };
            return Ok(Err(QgaError {
                desc: denied.to_string(),
            }));
        }
        Ok(match sys::statvfs(Path::new(&mountpoint)) {
            Ok((fragment_size, blocks, blocks_free, blocks_available)) => Ok(FsUsage {
                fragment_size,
                blocks,
                blocks_free,
                blocks_available,
            }),
            Err(e) => Err(QgaError {
                desc: format!("statvfs(\"{mountpoint}\"): {}", io_strerror(&e)),
            }),
        })
    }
}
