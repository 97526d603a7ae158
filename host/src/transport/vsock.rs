//! `-m vsock-listen -p CID:PORT`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{AddressFamily, Backlog, SockFlag, SockType, VsockAddr, bind, listen, socket};
use tokio::io::unix::AsyncFd;

#[derive(Debug, thiserror::Error)]
pub enum VsockError {
    #[error("invalid vsock address '{0}': expected <cid>:<port>")]
    Address(String),
    #[error("vsock socket: {0}")]
    Socket(#[from] nix::Error),
    #[error("vsock socket: {0}")]
    Io(#[from] io::Error),
}

/// Parse `<cid>:<port>`.
pub fn parse_address(text: &str) -> Result<(u32, u32), VsockError> {
    let bad = || VsockError::Address(text.to_owned());
    let (cid, port) = text.split_once(':').ok_or_else(bad)?;
    Ok((cid.parse().map_err(|_| bad())?, port.parse().map_err(|_| bad())?))
}

pub fn bind_listener(text: &str) -> Result<AsyncFd<OwnedFd>, VsockError> {
    let (cid, port) = parse_address(text)?;
    let fd = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    bind(fd.as_raw_fd(), &VsockAddr::new(cid, port))?;
    listen(&fd, Backlog::new(16).expect("small backlog is valid"))?;
    Ok(super::sys::register(fd)?)
}
