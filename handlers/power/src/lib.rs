//! The `power` family: guest-shutdown and guest-suspend-*, as qemu-ga 7.2
//! runs them (qga/commands-posix.c). Helpers run through the helper
//! capability (only the exact argument vectors of the command's grant);
//! /sys/power/state through sysfs.

pub mod logic;

// The bindings wit-bindgen generates are `unsafe` glue (exports, the
// canonical ABI); the code written here is safe Rust.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        world: "power-family",
        path: "../../wit",
    });

    use super::logic::{self, Outcome, Power};
    use exports::qga::agent::power::Guest;
    use qga::agent::helper::{self, ExitStatus, SpawnError};
    use qga::agent::sysfs;
    use qga::agent::types::{NoReply, QgaError};

    struct Handler;
    struct Host;

    impl Power for Host {
        fn run(&mut self, program: &str, args: &[&str]) -> Outcome {
            let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
            match helper::run(program, &args, None) {
                Ok(ExitStatus::Exited(code)) => Outcome::Exited(code),
                Ok(ExitStatus::Signaled(sig)) => Outcome::Signaled(sig),
                Err(SpawnError::NotFound) => Outcome::NotFound,
                Err(SpawnError::InputFailed(e) | SpawnError::Other(e)) => Outcome::SpawnFailed(e),
            }
        }
        fn is_executable(&mut self, program: &str) -> bool {
            helper::is_executable(program)
        }
        fn read_state(&mut self) -> Option<Vec<u8>> {
            sysfs::read(logic::SYS_STATE, 31).ok()
        }
        fn write_state(&mut self, data: &str) -> bool {
            sysfs::write(logic::SYS_STATE, data.as_bytes()).is_ok()
        }
    }

    fn done(r: Result<(), String>) -> Result<NoReply, QgaError> {
        r.map(|()| NoReply::NoReply).map_err(|desc| QgaError { desc })
    }

    impl Guest for Handler {
        fn guest_shutdown(mode: Option<String>) -> Result<NoReply, QgaError> {
            done(logic::shutdown(&mut Host, mode.as_deref()))
        }
        fn guest_suspend_disk() -> Result<NoReply, QgaError> {
            done(logic::suspend(&mut Host, logic::Mode::Disk))
        }
        fn guest_suspend_ram() -> Result<NoReply, QgaError> {
            done(logic::suspend(&mut Host, logic::Mode::Ram))
        }
        fn guest_suspend_hybrid() -> Result<NoReply, QgaError> {
            done(logic::suspend(&mut Host, logic::Mode::Hybrid))
        }
    }

    export!(Handler);
}
