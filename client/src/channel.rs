//! The byte channel to a guest agent: a unix socket, a vsock stream or a
//! serial device, non-blocking, every read and write bounded by a deadline
//! (a guest with no agent, or one that stopped answering, is an error, not a
//! hang).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, VsockAddr, connect, socket};
use nix::sys::termios;

/// Where the agent is.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Unix(PathBuf),
    Vsock { cid: u32, port: u32 },
    Serial(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "{}", path.display()),
            Endpoint::Vsock { cid, port } => write!(f, "vsock {cid}:{port}"),
            Endpoint::Serial(path) => write!(f, "{}", path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("cannot connect to {endpoint}: {source}")]
    Connect { endpoint: String, source: std::io::Error },
    #[error("cannot set up {endpoint}: {source}")]
    Setup { endpoint: String, source: nix::Error },
    #[error("the agent closed the connection")]
    Closed,
    #[error("the agent did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the agent is not reading (nothing could be sent within {0:?})")]
    WriteTimeout(Duration),
    #[error("the agent sent a line longer than {} MiB", MAX_LINE >> 20)]
    TooLong,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// An open, non-blocking channel with a read buffer.
pub struct Channel {
    file: File,
    /// Bytes received and not yet consumed.
    buffer: Vec<u8>,
    /// Where each read lands (agents write replies in small pieces).
    scratch: Box<[u8]>,
}

const READ_SIZE: usize = 1 << 20;
/// The longest reply line accepted: a guest-file-read of qemu-ga's largest
/// count (48 MiB) is 64 MiB of base64; a hostile guest cannot make the
/// client buffer more.
pub const MAX_LINE: usize = 80 << 20;

impl Channel {
    pub fn open(endpoint: &Endpoint) -> Result<Channel, ChannelError> {
        let name = endpoint.to_string();
        let connect_error = |source| ChannelError::Connect {
            endpoint: name.clone(),
            source,
        };
        let setup_error = |source| ChannelError::Setup {
            endpoint: name.clone(),
            source,
        };
        let fd: OwnedFd = match endpoint {
            Endpoint::Unix(path) => UnixStream::connect(path).map_err(connect_error)?.into(),
            Endpoint::Vsock { cid, port } => {
                let fd = socket(AddressFamily::Vsock, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
                    .map_err(|e| connect_error(e.into()))?;
                connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &VsockAddr::new(*cid, *port))
                    .map_err(|e| connect_error(e.into()))?;
                fd
            }
            Endpoint::Serial(path) => open_serial(path).map_err(connect_error)?,
        };
        if let Endpoint::Serial(_) = endpoint {
            make_raw(&fd).map_err(setup_error)?;
        }
        let flags = fcntl(&fd, FcntlArg::F_GETFL).map_err(setup_error)?;
        fcntl(
            &fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        )
        .map_err(setup_error)?;
        Ok(Channel {
            file: File::from(fd),
            buffer: Vec::new(),
            scratch: vec![0; READ_SIZE].into_boxed_slice(),
        })
    }

    /// Send all of `bytes` before `deadline`.
    pub fn send(&mut self, bytes: &[u8], deadline: Instant, wait: Duration) -> Result<(), ChannelError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.file.write(rest) {
                Ok(0) => return Err(ChannelError::Closed),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if !self.wait_for(PollFlags::POLLOUT, deadline)? {
                        return Err(ChannelError::WriteTimeout(wait));
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::BrokenPipe => return Err(ChannelError::Closed),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Drop buffered input up to and including the first 0xFF byte, reading
    /// until one arrives.
    pub fn skip_to_delimiter(&mut self, deadline: Instant, wait: Duration) -> Result<(), ChannelError> {
        loop {
            if let Some(at) = self.buffer.iter().position(|&b| b == 0xFF) {
                self.buffer.drain(..=at);
                return Ok(());
            }
            self.buffer.clear();
            self.fill(deadline, wait)?;
        }
    }

    /// The next line (without its newline).
    pub fn read_line(&mut self, deadline: Instant, wait: Duration) -> Result<Vec<u8>, ChannelError> {
        let mut searched = 0;
        loop {
            if let Some(at) = self.buffer[searched..].iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buffer.drain(..=searched + at).collect();
                line.pop();
                return Ok(line);
            }
            searched = self.buffer.len();
            if searched > MAX_LINE {
                return Err(ChannelError::TooLong);
            }
            self.fill(deadline, wait)?;
        }
    }

    fn fill(&mut self, deadline: Instant, wait: Duration) -> Result<(), ChannelError> {
        loop {
            match self.file.read(&mut self.scratch) {
                Ok(0) => return Err(ChannelError::Closed),
                Ok(n) => {
                    self.buffer.extend_from_slice(&self.scratch[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if !self.wait_for(PollFlags::POLLIN, deadline)? {
                        return Err(ChannelError::Timeout(wait));
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Wait until the channel is ready for `events`; false at the deadline.
    fn wait_for(&self, events: PollFlags, deadline: Instant) -> Result<bool, ChannelError> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let millis = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.file.as_fd(), events)];
            match poll(&mut fds, PollTimeout::from(millis)) {
                Ok(0) => {}
                Ok(_) => return Ok(true),
                Err(nix::Error::EINTR) => {}
                Err(e) => return Err(ChannelError::Io(e.into())),
            }
        }
    }
}

fn open_serial(path: &Path) -> std::io::Result<OwnedFd> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc_o_noctty())
        .open(path)?;
    Ok(file.into())
}

fn libc_o_noctty() -> i32 {
    OFlag::O_NOCTTY.bits()
}

/// Raw mode on a tty (no echo, no line editing, 8 bits); a character device
/// that is not a tty (a virtio console's pipe) is left as it is.
fn make_raw(fd: &OwnedFd) -> Result<(), nix::Error> {
    match termios::tcgetattr(fd) {
        Ok(mut attrs) => {
            termios::cfmakeraw(&mut attrs);
            termios::tcsetattr(fd, termios::SetArg::TCSANOW, &attrs)
        }
        Err(nix::Error::ENOTTY) => Ok(()),
        Err(e) => Err(e),
    }
}
