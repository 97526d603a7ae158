//! Process syscalls of the process capability (std and nix; `unsafe` only
//! to mark inherited descriptors close-on-exec).

#![allow(unsafe_code)] // the syscalls this module wraps

use std::ffi::{OsStr, OsString};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::capabilities::c_string;
use crate::capabilities::qga::agent::process::CaptureMode;

/// GLib's search path when PATH is unset.
pub const DEFAULT_PATH: &str = "/bin:/usr/bin:.";

/// Where g_spawn (G_SPAWN_SEARCH_PATH) would find `program`: as given when it
/// contains a '/', else the first executable regular file in `path_var`'s
/// directories (an empty entry is the current directory). `Err(errno)` as
/// g_spawn reports it: EACCES if some candidate existed but could not be
/// executed, else ENOENT.
pub fn search(program: &str, path_var: &str) -> Result<PathBuf, nix::errno::Errno> {
    use nix::errno::Errno;
    if program.contains('/') {
        return Ok(PathBuf::from(c_string(program)));
    }
    if program.is_empty() {
        return Err(Errno::ENOENT);
    }
    let mut eacces = false;
    for dir in path_var.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(c_string(program));
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() && nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok() => {
                return Ok(candidate);
            }
            Ok(_) => eacces = true,
            Err(_) => {}
        }
    }
    Err(if eacces { Errno::EACCES } else { Errno::ENOENT })
}

/// What to start.
pub struct Spawn<'a> {
    pub file: &'a Path,
    pub argv0: &'a OsStr,
    pub args: &'a [OsString],
    /// The whole environment ("K=V" entries), or None to inherit.
    pub env: Option<&'a [String]>,
    pub stdin: bool,
    pub capture: CaptureMode,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// A descriptor the child keeps open across exec (the checked
    /// program, run as /proc/self/fd/N: a `#!` script's interpreter opens
    /// it by that name after the exec).
    pub keep_fd: Option<std::os::fd::RawFd>,
}

/// A started child, and in [`CaptureMode::Merged`] the read end of the
/// one pipe its stdout and stderr share (the child's `stdout` and `stderr`
/// are then `None`).
pub struct Started {
    pub child: Child,
    pub merged: Option<std::io::PipeReader>,
}

/// Start a child. std resets SIGPIPE to its default in the child, as
/// qemu-ga's guest_exec_child_setup does; descriptors other than the
/// three standard ones are close-on-exec.
pub fn spawn(s: &Spawn<'_>) -> std::io::Result<Started> {
    let mut cmd = Command::new(s.file);
    cmd.arg0(s.argv0).args(s.args);
    if let Some(env) = s.env {
        cmd.env_clear();
        for entry in env {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            if !k.is_empty() {
                cmd.env(c_string(k), c_string(v));
            }
        }
    }
    cmd.stdin(if s.stdin { Stdio::piped() } else { Stdio::null() });
    let piped = |yes: bool| if yes { Stdio::piped() } else { Stdio::null() };
    let mut merged = None;
    match s.capture {
        CaptureMode::None => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        CaptureMode::Stdout | CaptureMode::Stderr | CaptureMode::Separated => {
            let out = matches!(s.capture, CaptureMode::Stdout | CaptureMode::Separated);
            let err = matches!(s.capture, CaptureMode::Stderr | CaptureMode::Separated);
            cmd.stdout(piped(out)).stderr(piped(err));
        }
        CaptureMode::Merged => {
            // One pipe (both ends close-on-exec); the child gets its write
            // end as fd 1 and fd 2. The parent's write ends close with
            // `cmd`, at the end of this function.
            let (reader, writer) = std::io::pipe()?;
            cmd.stdout(Stdio::from(writer.try_clone()?)).stderr(Stdio::from(writer));
            merged = Some(reader);
        }
    }
    if let Some(gid) = s.gid {
        cmd.gid(gid);
    }
    if let Some(uid) = s.uid {
        cmd.uid(uid);
    }
    if let Some(fd) = s.keep_fd {
        // SAFETY: the closure runs in the forked child before exec and
        // only calls fcntl(2), which is async-signal-safe, on a descriptor
        // number the parent holds open for the whole spawn (the program's
        // O_PATH descriptor); it allocates nothing and takes no lock.
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let child = cmd.spawn()?;
    Ok(Started { child, merged })
}

/// Mark every descriptor above 2 close-on-exec, once at start-up.
/// Descriptors the agent inherited from whoever started it (a shell, a
/// service manager, a leaky parent) would otherwise pass on to every
/// guest-exec child, helper and fsfreeze hook; qemu-ga's g_spawn closes
/// them in the child. Everything the agent opens itself is close-on-exec
/// already.
pub fn close_inherited_on_exec() -> std::io::Result<()> {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC closes nothing: it
    // only sets the close-on-exec flag of the open descriptors in the range;
    // it takes no pointers.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if !matches!(err.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL)) {
        return Err(err);
    }
    // Before Linux 5.11: one fcntl per open descriptor.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: fcntl(F_SETFD) on a plain descriptor number takes no
        // pointers and closes nothing; a number that is no longer open (the
        // directory listing's own) fails with EBADF, which is ignored, and
        // one reused meanwhile by the agent is close-on-exec already.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}
