//! `qga:agent/clock`: real time and the local time zone.

mod sys;

use super::qga::agent::clock::{Host, Timezone};
use super::view::GrantView;
use super::{Capability, QgaError};

/// The real time (ns since the epoch) and the local zone's offset east
/// of UTC in seconds (0 when unknown), for the agent's own messages.
pub fn local_now() -> (i64, i32) {
    let offset = sys::local_timezone().map_or(0, |(_, offset)| offset);
    (sys::realtime_ns(), offset)
}

impl Host for GrantView<'_> {
    fn now_ns(&mut self) -> wasmtime::Result<i64> {
        self.grant.require(self.command, Capability::Clock)?;
        Ok(sys::realtime_ns())
    }

    fn local_timezone(&mut self) -> wasmtime::Result<Result<Timezone, QgaError>> {
        self.grant.require(self.command, Capability::Clock)?;
        Ok(match sys::local_timezone() {
            Ok((abbreviation, offset_seconds)) => Ok(Timezone {
                abbreviation,
                offset_seconds,
            }),
            Err(e) => Err(QgaError {
                desc: format!("failed to get local time zone: {e}"),
            }),
        })
    }
}
