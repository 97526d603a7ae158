//! Process spawning of the helper capability.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// g_find_program_in_path: a name with a '/' is taken as is (if it is an
/// executable file); otherwise the first executable regular file in PATH
/// (GLib's default "/bin:/usr/bin:." when PATH is unset).
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        return is_executable_file(p).then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin:.".into());
    std::env::split_paths(&path)
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

/// Run and wait. `input`, if any, is written to the child's stdin (a pipe)
/// and the pipe closed.
pub fn run(program: &str, args: &[String], input: Option<&[u8]>) -> Result<Status, Failure> {
    let resolved = if program.contains('/') {
        PathBuf::from(program)
    } else {
        find_program(program).ok_or(Failure::NotFound)?
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
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        // A child that exits without reading gives EPIPE: what counts is its
        // exit status, as in qemu-ga (which reports the write error, though).
        let written = stdin.write_all(data);
        drop(stdin);
        if let Err(e) = written {
            let _ = child.wait();
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            return Err(Failure::Input(crate::capabilities::strerror(errno)));
        }
    }
    let status = child.wait()?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => Status::Exited(code),
        (None, Some(sig)) => Status::Signaled(sig),
        (None, None) => Status::Exited(-1),
    })
}
