//! `qga:agent/helper`: run the exact argument vectors the grant lists, the
//! way qemu-ga runs its helpers (new session, stdout/stderr to /dev/null,
//! stdin from a pipe or /dev/null, wait). The input bytes (a password for
//! chpasswd) go only into the pipe: never into argv, the environment or a
//! log line.

mod sys;

use super::qga::agent::helper::{ExitStatus, Host, SpawnError};
use super::{CallCtx, Capability, Denied, Grant};

/// May the grant run `program` with `args`?
pub fn may_run(grant: &Grant, program: &str, args: &[String]) -> bool {
    grant
        .helpers
        .iter()
        .any(|argv| argv.first().is_some_and(|p| p == program) && argv[1..] == *args)
}

/// May the grant look up `program` (it runs it with some arguments)?
fn may_find(grant: &Grant, program: &str) -> bool {
    grant
        .helpers
        .iter()
        .any(|argv| argv.first().is_some_and(|p| p == program))
}

fn denied(ctx: &CallCtx, program: &str, args: &[String]) -> Denied {
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

impl Host for CallCtx {
    fn find_program(&mut self, program: String) -> wasmtime::Result<Option<String>> {
        self.grant.require(&self.command, Capability::Helper)?;
        if !may_find(&self.grant, &program) {
            return Err(denied(self, &program, &[]).into());
        }
        Ok(sys::find_program(&program).map(|p| p.to_string_lossy().into_owned()))
    }

    fn is_executable(&mut self, program: String) -> wasmtime::Result<bool> {
        self.grant.require(&self.command, Capability::Helper)?;
        if !may_find(&self.grant, &program) {
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
        self.grant.require(&self.command, Capability::Helper)?;
        if !may_run(&self.grant, &program, &args) {
            return Err(denied(self, &program, &args).into());
        }
        Ok(match sys::run(&program, &args, input.as_deref()) {
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
        let g = Grant::builtin("guest-set-user-password", &env);
        assert!(may_run(&g, "chpasswd", &[]));
        assert!(may_run(&g, "chpasswd", &["-e".to_owned()]));
        assert!(!may_run(&g, "chpasswd", &["-c".to_owned(), "x".to_owned()]));
        assert!(!may_run(&g, "/bin/sh", &[]));
        let g = Grant::builtin("guest-shutdown", &env);
        let args = |f: &str| {
            ["-h", f, "+0", "hypervisor initiated shutdown"]
                .map(str::to_owned)
                .to_vec()
        };
        assert!(may_run(&g, "/sbin/shutdown", &args("-P")));
        assert!(may_run(&g, "/sbin/shutdown", &args("-r")));
        assert!(!may_run(&g, "/sbin/shutdown", &args("-c")));
        assert!(!may_run(&g, "chpasswd", &[]));
        assert!(Grant::builtin("guest-network-get-interfaces", &env).helpers.is_empty());
    }
}
