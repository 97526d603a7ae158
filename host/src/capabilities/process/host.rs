//! The process interface as a call sees it: [`ProcessView`], its linking
//! and the WIT host impl (spawn through the checked descriptor, status).

use wasmtime::component::{HasData, Linker};

use super::*;
use crate::capabilities::qga::agent::process::{Host, SpawnRequest};
use crate::capabilities::{CallCtx, Capability};

/// What the process capability sees of a call: the command and its grant
/// and the agent's child table. Nothing of another capability.
pub struct ProcessView<'a> {
    command: &'a str,
    grant: &'a Grant,
    children: &'a Arc<ChildTable>,
}

/// The process capability's store data, as a linker sees it.
pub struct Process;

impl HasData for Process {
    type Data<'a> = ProcessView<'a>;
}

/// Link the process interface: each call sees only [`ProcessView`].
pub fn add_to_linker(linker: &mut Linker<CallCtx>) -> wasmtime::Result<()> {
    crate::capabilities::qga::agent::process::add_to_linker::<CallCtx, Process>(linker, |c| ProcessView {
        command: &c.command,
        grant: &c.grant,
        children: &c.state.process,
    })
}

impl Host for ProcessView<'_> {
    fn spawn(&mut self, req: SpawnRequest) -> wasmtime::Result<Result<i64, String>> {
        self.grant.require(self.command, Capability::Process)?;
        // G_SPAWN_SEARCH_PATH_FROM_ENVP: the given environment's PATH, else
        // the agent's, else GLib's default.
        let path_var = req
            .env
            .as_ref()
            .and_then(|env| env.iter().find_map(|e| e.strip_prefix("PATH=").map(str::to_owned)))
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_else(|| sys::DEFAULT_PATH.to_owned());
        let file: PathBuf = match sys::search(&req.path, &path_var) {
            Ok(f) => f,
            Err(errno) => return Ok(Err(spawn_failed(&req.path, &std::io::Error::from(errno)))),
        };
        // Resolved race-free; the checked descriptor is what runs, as
        // /proc/self/fd/N (execveat semantics, `#!` scripts included).
        let program = match crate::capabilities::resolve::existing(&file) {
            Ok(p) => p,
            Err(e) => {
                // Fail closed: the caller learns why only inside the grant.
                check_program(self.grant, self.command, &e.at)?;
                return Ok(Err(spawn_failed(&req.path, &e.io())));
            }
        };
        if program.kind != crate::capabilities::resolve::Kind::Regular {
            // What execve(2) says of a directory or a device.
            return Ok(Err(spawn_failed(
                &req.path,
                &std::io::Error::from_raw_os_error(libc::EACCES),
            )));
        }
        check_spawn(self.grant, self.command, &program.path, req.env.as_deref())?;
        let file = program.proc_path();
        // Strings reach the child as qemu-ga passes them (see c_string).
        let argv0 = crate::capabilities::c_string(&req.path);
        let argv: Vec<std::ffi::OsString> = req.args.iter().map(|a| crate::capabilities::c_string(a)).collect();
        let spawn = sys::Spawn {
            file: &file,
            argv0: &argv0,
            args: &argv,
            env: req.env.as_deref(),
            stdin: req.input.is_some(),
            capture: req.capture,
            uid: self.grant.process.uid,
            gid: self.grant.process.gid,
            // A `#!` script's interpreter opens /proc/self/fd/N after the
            // exec: only then must the descriptor survive it (which costs
            // a fork instead of posix_spawn).
            keep_fd: is_script(&program).then(|| std::os::fd::AsRawFd::as_raw_fd(&program.fd)),
        };
        let table = self.children;
        let mut input = req.input;
        match table.spawn(&spawn, &mut input) {
            Ok(pid) => Ok(Ok(pid)),
            Err(SpawnFailure::Refused(r)) => Ok(Err(r.to_string())),
            Err(SpawnFailure::Os(e)) if e.raw_os_error() == Some(libc::ENOEXEC) => {
                // g_spawn runs a file without a known format with /bin/sh.
                let mut args = vec![file.clone().into_os_string()];
                args.extend(argv.iter().cloned());
                let sh = sys::Spawn {
                    file: std::path::Path::new("/bin/sh"),
                    argv0: std::ffi::OsStr::new("/bin/sh"),
                    args: &args,
                    keep_fd: Some(std::os::fd::AsRawFd::as_raw_fd(&program.fd)),
                    ..spawn
                };
                Ok(table.spawn(&sh, &mut input).map_err(|e| match e {
                    SpawnFailure::Refused(r) => r.to_string(),
                    SpawnFailure::Os(e) => spawn_failed(&req.path, &e),
                }))
            }
            Err(SpawnFailure::Os(e)) => Ok(Err(spawn_failed(&req.path, &e))),
        }
    }

    fn status(&mut self, pid: i64) -> wasmtime::Result<Option<ChildStatus>> {
        self.grant.require(self.command, Capability::Process)?;
        Ok(self.children.status(pid))
    }
}
