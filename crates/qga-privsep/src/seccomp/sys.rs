//! Installing a seccomp filter.

use std::io;

pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, TSYNC)`: every thread of the process
/// gets the filter, or none does.
pub fn install_filter(program: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `program`, alive for the call; the kernel
    // copies the program.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &raw const fprog,
        )
    };
    match rc {
        0 => Ok(()),
        rc if rc < 0 => Err(io::Error::last_os_error()),
        tid => Err(io::Error::other(format!("thread {tid} could not be synchronised"))),
    }
}
