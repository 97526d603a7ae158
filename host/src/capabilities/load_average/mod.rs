//! `qga:agent/load-average`: the kernel's load averages, nothing else.

mod sys;

use super::qga::agent::load_average::{Host, LoadAverages};
use super::view::GrantView;
use super::{Capability, QgaError, io_strerror};

impl Host for GrantView<'_> {
    fn get(&mut self) -> wasmtime::Result<Result<LoadAverages, QgaError>> {
        self.grant.require(self.command, Capability::LoadAverage)?;
        Ok(sys::load_averages()
            .map(|(one, five, fifteen)| LoadAverages { one, five, fifteen })
            .map_err(|e| QgaError {
                // qemu-ga 10.0's error_setg_errno text for getloadavg
                desc: format!("cannot query load average: {}", io_strerror(&e)),
            }))
    }
}
