//! The few syscalls of the transports that hand back raw descriptors.

#![allow(unsafe_code)] // the syscalls this module wraps

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{SockFlag, accept4};

/// Accept one connection, non-blocking and close-on-exec.
pub fn accept(listener: &OwnedFd) -> nix::Result<OwnedFd> {
    let fd = accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK)?;
    // SAFETY: accept4 just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Take ownership of a descriptor passed by systemd socket activation.
/// `fd` must be one of the LISTEN_FDS descriptors meant for this process;
/// the caller takes each at most once, at start-up.
pub fn adopt_inherited(fd: RawFd) -> nix::Result<OwnedFd> {
    nix::fcntl::fcntl(
        // SAFETY: a borrow for the duration of the call of a descriptor that
        // systemd left open for this process (checked by the caller).
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    // SAFETY: systemd passed this descriptor to this process and nothing
    // else in the process has taken ownership of it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Register a non-blocking descriptor with the tokio reactor.
pub fn register(fd: OwnedFd) -> std::io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd takes the OwnedFd by value, so the descriptor stays
    // open and refers to the same file description until the AsyncFd drops
    // it, and OwnedFd::as_raw_fd always returns that same descriptor.
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(std::io::Error::from)
}
