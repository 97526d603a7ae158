//! `qga:agent/clock-set`: settimeofday(2). Only guest-set-time is granted it.

mod sys;

use super::Capability;
use super::qga::agent::clock_set::Host;
use super::qga::agent::sysfs::OsError;
use super::view::GrantView;

impl Host for GrantView<'_> {
    fn set_realtime(&mut self, seconds: i64, microseconds: i64) -> wasmtime::Result<Result<(), OsError>> {
        self.grant.require(self.command, Capability::ClockSet)?;
        Ok(sys::settimeofday(seconds, microseconds).map_err(|errno| OsError {
            errno,
            message: super::strerror(errno),
        }))
    }
}
