//! `qga:agent/helper`: run the exact argument vectors the grant lists, the
//! way qemu-ga runs its helpers (new session, stdout/stderr to /dev/null,
//! stdin from a pipe or /dev/null, wait). The input bytes (a password for
//! chpasswd) go only into the pipe: never into argv, the environment or a
//! log line.
//!
//! A program named without '/' is found in PATH once ([`resolve_at_start`]
//! for every helper a grant names) and run by that absolute path from then
//! on. A helper runs at most the command's deadline; then its session is
//! killed and the call fails, so a hung helper cannot hold a call slot.

pub mod settings;
mod sys;

use super::qga::agent::helper::{ExitStatus, Host, SpawnError};
use super::view::GrantView;
use super::{Capability, Denied, Grant};

/// Find every program `grants` name in PATH now, and log those missing
/// (their commands will answer as qemu-ga does when it is not installed).
pub fn resolve_at_start<'a>(grants: impl IntoIterator<Item = &'a Grant>) {
    let mut programs: Vec<&str> = grants
        .into_iter()
        .flat_map(|g| g.helper.argvs.iter().filter_map(|argv| argv.first()))
        .map(String::as_str)
        .filter(|p| !p.contains('/'))
        .collect();
    programs.sort_unstable();
    programs.dedup();
    for program in programs {
        match sys::resolve(program) {
            Some(path) => tracing::debug!("helper {program}: {}", path.display()),
            None => tracing::warn!("helper {program} not found in PATH: commands that run it will fail"),
        }
    }
}

/// May the grant run `program` with `args`?
pub fn may_run(grant: &Grant, program: &str, args: &[String]) -> bool {
    grant
        .helper
        .argvs
        .iter()
        .any(|argv| argv.first().is_some_and(|p| p == program) && argv[1..] == *args)
}

/// May the grant look up `program` (it runs it with some arguments)?
fn may_find(grant: &Grant, program: &str) -> bool {
    grant
        .helper
        .argvs
        .iter()
        .any(|argv| argv.first().is_some_and(|p| p == program))
}

fn denied(ctx: &GrantView<'_>, program: &str, args: &[String]) -> Denied {
    let mut argv = program.to_owned();
    for a in args {
        argv.push(' ');
        argv.push_str(a);
    }
    Denied::Helper {
        command: ctx.command.to_string(),
        argv,
    }
}

/// Which helper programs a command may run.
#[derive(Debug, Clone, PartialEq)]
pub struct HelperGrant {
    /// The exact argument vectors (program first) it may run.
    pub argvs: Vec<Vec<String>>,
}

impl HelperGrant {
    /// No program.
    pub fn nothing() -> HelperGrant {
        HelperGrant { argvs: Vec::new() }
    }
}

impl Host for GrantView<'_> {
    fn find_program(&mut self, program: String) -> wasmtime::Result<Option<String>> {
        self.grant.require(self.command, Capability::Helper)?;
        if !may_find(self.grant, &program) {
            return Err(denied(self, &program, &[]).into());
        }
        Ok(sys::find_program(&program).map(|p| p.to_string_lossy().into_owned()))
    }

    fn is_executable(&mut self, program: String) -> wasmtime::Result<bool> {
        self.grant.require(self.command, Capability::Helper)?;
        if !may_find(self.grant, &program) {
            return Err(denied(self, &program, &[]).into());
        }
        Ok(sys::is_executable(&program))
    }

    fn run(
        &mut self,
        program: String,
        args: Vec<String>,
        input: Option<Vec<u8>>,
    ) -> wasmtime::Result<Result<ExitStatus, SpawnError>> {
        self.grant.require(self.command, Capability::Helper)?;
        if !may_run(self.grant, &program, &args) {
            return Err(denied(self, &program, &args).into());
        }
        Ok(match sys::run(&program, &args, input.as_deref(), self.grant.deadline) {
            Ok(sys::Status::Exited(code)) => Ok(ExitStatus::Exited(code)),
            Ok(sys::Status::Signaled(sig)) => Ok(ExitStatus::Signaled(sig)),
            Err(sys::Failure::NotFound) => Err(SpawnError::NotFound),
            Err(sys::Failure::Input(e)) => Err(SpawnError::InputFailed(e)),
            Err(sys::Failure::Other(e)) => Err(SpawnError::Other(e)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_vectors_run() {
        let env = |_: &str| None;
        let g = crate::policy::manifests::builtin("guest-set-user-password", &env);
        assert!(may_run(&g, "chpasswd", &[]));
        assert!(may_run(&g, "chpasswd", &["-e".to_owned()]));
        assert!(!may_run(&g, "chpasswd", &["-c".to_owned(), "x".to_owned()]));
        assert!(!may_run(&g, "/bin/sh", &[]));
        let g = crate::policy::manifests::builtin("guest-shutdown", &env);
        let args = |f: &str| {
            ["-h", f, "+0", "hypervisor initiated shutdown"]
                .map(str::to_owned)
                .to_vec()
        };
        assert!(may_run(&g, "/sbin/shutdown", &args("-P")));
        assert!(may_run(&g, "/sbin/shutdown", &args("-r")));
        assert!(!may_run(&g, "/sbin/shutdown", &args("-c")));
        assert!(!may_run(&g, "chpasswd", &[]));
        assert!(
            crate::policy::manifests::builtin("guest-network-get-interfaces", &env)
                .helper
                .argvs
                .is_empty()
        );
    }
}
