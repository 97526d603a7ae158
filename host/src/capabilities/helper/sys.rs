//! Process spawning of the helper capability.

#![allow(unsafe_code)] // the syscalls this module wraps

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

pub enum Failure {
    NotFound,
    Input(String),
    Other(String),
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        if e.kind() == std::io::ErrorKind::NotFound {
            Failure::NotFound
        } else {
            Failure::Other(e.to_string())
        }
    }
}

pub enum Status {
    Exited(i32),
    Signaled(i32),
}

/// Programs found in PATH, each resolved once (at start-up, by
/// [`resolve`], or at its first use) and never searched again: a directory
/// of PATH that changes later cannot swap the program the agent runs as
/// root.
static RESOLVED: Mutex<BTreeMap<String, Option<PathBuf>>> = Mutex::new(BTreeMap::new());

/// Resolve `program` now (if not yet) and remember the answer.
pub fn resolve(program: &str) -> Option<PathBuf> {
    let mut resolved = RESOLVED.lock().unwrap_or_else(|p| p.into_inner());
    resolved
        .entry(program.to_owned())
        .or_insert_with(|| search(program))
        .clone()
}

/// g_find_program_in_path: a name with a '/' is taken as is (if it is an
/// executable file); otherwise the first executable regular file in PATH
/// (GLib's default "/bin:/usr/bin:." when PATH is unset). Only absolute
/// directories of PATH are searched: `.` or a relative entry would make the
/// program depend on the agent's working directory.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        return is_executable_file(p).then(|| p.to_path_buf());
    }
    resolve(program)
}

fn search(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin:.".into());
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable_file(candidate))
}

fn is_executable_file(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// access(path, X_OK) == 0.
pub fn is_executable(program: &str) -> bool {
    nix::unistd::access(program, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// Run and wait, at most `deadline`: after it the child's session (it runs
/// in a new one) is killed with SIGKILL and reaped, and the run fails.
/// `input`, if any, is written to the child's stdin (a pipe) from a thread
/// of its own and the pipe closed, so a child that does not read cannot
/// block the wait either.
pub fn run(program: &str, args: &[String], input: Option<&[u8]>, deadline: Duration) -> Result<Status, Failure> {
    let resolved = if program.contains('/') {
        PathBuf::from(program)
    } else {
        resolve(program).ok_or(Failure::NotFound)?
    };
    let argv0 = Path::new(program)
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| program.into());
    let mut cmd = Command::new(&resolved);
    cmd.arg0(argv0)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the forked child before exec and only
    // calls setsid(2), which is async-signal-safe and touches no memory of
    // the parent.
    unsafe {
        cmd.pre_exec(|| nix::unistd::setsid().map(drop).map_err(std::io::Error::from));
    }
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let writer = match (input, child.stdin.take()) {
        (Some(data), Some(mut stdin)) => {
            let data = data.to_vec();
            // A child that exits without reading gives EPIPE: what counts is
            // its exit status, as in qemu-ga (which reports the write error,
            // though).
            Some(std::thread::spawn(move || stdin.write_all(&data)))
        }
        _ => None,
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let waited = match rx.recv_timeout(deadline) {
        Ok(status) => Ok(status),
        Err(_) => {
            // The child leads its own session and process group.
            if let Ok(pgid) = i32::try_from(pid) {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::SIGKILL);
            }
            let _ = rx.recv();
            Err(Failure::Other(format!(
                "{} did not finish within {} s and was killed",
                resolved.display(),
                deadline.as_secs_f64()
            )))
        }
    };
    let written = writer.map(|w| w.join().unwrap_or(Ok(())));
    let status = waited?.map_err(Failure::from)?;
    if let Some(Err(e)) = written {
        let errno = e.raw_os_error().unwrap_or(libc::EIO);
        return Err(Failure::Input(crate::capabilities::strerror(errno)));
    }
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => Status::Exited(code),
        (None, Some(sig)) => Status::Signaled(sig),
        (None, None) => Status::Exited(-1),
    })
}
