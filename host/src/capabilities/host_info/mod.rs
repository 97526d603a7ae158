//! `qga:agent/host-info`: uname(2) and gethostname(2).

mod sys;

use super::qga::agent::host_info::{Host, UnameInfo};
use super::view::GrantView;
use super::{Capability, QgaError};

impl Host for GrantView<'_> {
    fn uname(&mut self) -> wasmtime::Result<Result<UnameInfo, QgaError>> {
        self.grant.require(self.command, Capability::HostInfo)?;
        Ok(sys::uname()
            .map(|u| UnameInfo {
                sysname: u.sysname,
                nodename: u.nodename,
                release: u.release,
                version: u.version,
                machine: u.machine,
            })
            .map_err(|e| QgaError {
                desc: format!("uname failed: {e}"),
            }))
    }

    fn host_name(&mut self) -> wasmtime::Result<Result<String, QgaError>> {
        self.grant.require(self.command, Capability::HostInfo)?;
        Ok(sys::host_name().map_err(|e| QgaError {
            desc: format!("failed to get hostname: {e}"),
        }))
    }
}
