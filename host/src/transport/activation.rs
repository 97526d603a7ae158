//! systemd socket activation: a listening socket passed as descriptor 3.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{AddressFamily, SockaddrLike, SockaddrStorage, getsockname};
use tokio::net::UnixListener;

use super::listen::Listener;
use super::sys;

const SD_LISTEN_FDS_START: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("socket activation: {0}")]
    Sys(#[from] nix::Error),
    #[error("socket activation: {0}")]
    Io(#[from] io::Error),
    #[error("socket activation: descriptor 3 is neither a unix nor a vsock socket")]
    Family,
}

/// The activated socket, if systemd passed one to this process. The
/// environment variables are removed so children do not see them.
pub fn inherited_socket() -> Result<Option<OwnedFd>, ActivationError> {
    let for_us = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    if !for_us || count < 1 {
        return Ok(None);
    }
    if count > 1 {
        tracing::warn!("socket activation passed {count} sockets; using the first");
    }
    Ok(Some(sys::adopt_inherited(SD_LISTEN_FDS_START)?))
}

/// Wrap the activated socket as a listener of its own family.
pub fn listener(fd: OwnedFd) -> Result<Listener, ActivationError> {
    let address: SockaddrStorage = getsockname(fd.as_raw_fd())?;
    match address.family() {
        Some(AddressFamily::Unix) => {
            let std_listener = std::os::unix::net::UnixListener::from(fd);
            std_listener.set_nonblocking(true)?;
            Ok(Listener::Unix(UnixListener::from_std(std_listener)?))
        }
        Some(AddressFamily::Vsock) => {
            let flags = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_GETFL)?;
            let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
            nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
            Ok(Listener::Vsock(sys::register(fd)?))
        }
        _ => Err(ActivationError::Family),
    }
}
