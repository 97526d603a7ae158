//! The `time` family: guest-set-time, as qemu-ga 7.2 does it
//! (settimeofday, then `/sbin/hwclock -w`, or without a time
//! `/sbin/hwclock -s`). guest-get-time stays in the read-only system-info
//! family.

pub mod logic;

// The bindings wit-bindgen generates are `unsafe` glue (exports, the
// canonical ABI); the code written here is safe Rust.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        world: "time-family",
        path: "../../wit",
    });

    use super::logic::{self, Clock, Outcome};
    use exports::qga::agent::time::Guest;
    use qga::agent::helper::{self, ExitStatus, SpawnError};
    use qga::agent::types::QgaError;
    use qga::agent::{clock, clock_set};

    struct Handler;
    struct Host;

    impl Clock for Host {
        fn hwclock_available(&mut self) -> bool {
            helper::is_executable(logic::HWCLOCK)
        }
        fn utc_offset(&mut self) -> i64 {
            clock::local_timezone().map_or(0, |tz| i64::from(tz.offset_seconds))
        }
        fn settimeofday(&mut self, sec: i64, usec: i64) -> Result<(), String> {
            clock_set::set_realtime(sec, usec).map_err(|e| e.message)
        }
        fn hwclock(&mut self, arg: &str) -> Outcome {
            match helper::run(logic::HWCLOCK, &[arg.to_owned()], None) {
                Ok(ExitStatus::Exited(code)) => Outcome::Exited(code),
                Ok(ExitStatus::Signaled(_)) => Outcome::Signaled,
                Err(SpawnError::NotFound) => Outcome::Exited(1),
                Err(SpawnError::InputFailed(e) | SpawnError::Other(e)) => Outcome::SpawnFailed(e),
            }
        }
    }

    impl Guest for Handler {
        fn guest_set_time(time: Option<i64>) -> Result<(), QgaError> {
            logic::set_time(&mut Host, time).map_err(|desc| QgaError { desc })
        }
    }

    export!(Handler);
}
