//! `qga:agent/fs-stat`: statvfs of a mount point the grant allows.

mod sys;

use std::path::Path;

use super::qga::agent::fs_stat::{FsUsage, Host};
use super::view::GrantView;
use super::{Capability, Denied, QgaError, io_strerror, resolve};

impl Host for GrantView<'_> {
    fn statvfs(&mut self, mountpoint: String) -> wasmtime::Result<Result<FsUsage, QgaError>> {
        self.grant.require(self.command, Capability::FsStat)?;
        // Not a trap: guest-get-fsinfo then omits the sizes, as qemu-ga
        // does when statvfs fails.
        let denied = |path: String| {
            let denied = Denied::Mount {
                command: self.command.to_string(),
                path,
            };
            Ok(Err(QgaError {
                desc: denied.to_string(),
            }))
        };
        // The grant is matched against the resolved path, and fstatvfs
        // runs on the very directory that matched.
        let found = match resolve::existing(Path::new(&mountpoint)) {
            Ok(found) => found,
            Err(e) if self.grant.allows_mount_path(&e.at) => {
                return Ok(Err(QgaError {
                    desc: format!("statvfs(\"{mountpoint}\"): {}", io_strerror(&e.io())),
                }));
            }
            Err(_) => return denied(mountpoint),
        };
        if !self.grant.allows_mount_path(&found.path) {
            return denied(mountpoint);
        }
        Ok(match sys::fstatvfs(&found.fd) {
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
