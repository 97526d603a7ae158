//! The raw syscalls the tests need: forking a child to run privilege
//! changes in, and the forbidden operations the sandbox must refuse.

#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `fork`: `None` in the child. The child runs only the test's closure and
/// `_exit`s; glibc makes malloc usable after fork.
pub fn fork() -> io::Result<Option<libc::pid_t>> {
    // SAFETY: the child only runs the test closure and then `_exit`s.
    let pid = check(unsafe { libc::fork() } as libc::c_long)? as libc::pid_t;
    Ok((pid != 0).then_some(pid))
}

pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` never returns.
    unsafe { libc::_exit(code) }
}

/// `waitpid`: `Ok(Ok(code))` for an exit, `Ok(Err(signal))` for a kill.
pub fn wait(pid: libc::pid_t) -> io::Result<Result<i32, i32>> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid int to write.
        let rc = unsafe { libc::waitpid(pid, &raw mut status, 0) };
        if rc == pid {
            break;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else {
        Err(libc::WTERMSIG(status))
    })
}

pub fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::kill(pid, signal) } as libc::c_long).map(drop)
}

pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits until `fd` is readable, at most `guard_ms` (a hang guard, not a
/// timing assertion). `Ok(false)` if the guard expired.
pub fn wait_readable(fd: BorrowedFd<'_>, guard_ms: i32) -> io::Result<bool> {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&raw mut pollfd, 1, guard_ms) };
        if rc >= 0 {
            return Ok(rc == 1);
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

pub fn ptrace_traceme() -> io::Result<()> {
    // SAFETY: PTRACE_TRACEME takes no pointers.
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_TRACEME,
            0,
            ptr::null_mut::<libc::c_void>(),
            ptr::null_mut::<libc::c_void>(),
        )
    })
    .map(drop)
}

pub fn mount_tmpfs(target: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated strings, no data argument.
    check(unsafe { libc::mount(c"none".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, ptr::null()) } as libc::c_long)
        .map(drop)
}

pub fn socket_inet() -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only.
    let fd = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) } as libc::c_long)?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

pub fn socket_unix() -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only.
    let fd = check(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) } as libc::c_long)?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `execve(path, [path], [])`: returns only on failure.
pub fn execve(path: &CStr) -> io::Error {
    let argv = [path.as_ptr(), ptr::null()];
    let envp = [ptr::null::<libc::c_char>()];
    // SAFETY: NUL-terminated path and NULL-terminated argv/envp arrays.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    io::Error::last_os_error()
}

/// Arms SIGALRM (default action: terminate) in `seconds`: a hang guard for
/// forked children, so a broken sandbox fails a test instead of hanging it.
pub fn alarm(seconds: u32) {
    // SAFETY: integer argument only.
    unsafe { libc::alarm(seconds) };
}
