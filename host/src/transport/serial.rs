//! `-m virtio-serial` and `-m isa-serial`: one character device, no
//! connection boundaries. The parser lives as long as the device is open;
//! clients resynchronise with 0xFF / guest-sync-delimited.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::termios::{
    self, BaudRate, ControlFlags, FlushArg, InputFlags, LocalFlags, OutputFlags, SetArg, SpecialCharacterIndices,
};

use super::fd::FdStream;
use super::stream::{self, StreamEnd};
use crate::config::Method;
use crate::dispatch::Dispatcher;
use crate::protocol::StreamParser;

/// How often to look again while no host is connected to a virtio port
/// (reads then return end-of-file at once; polling would spin).
const HOST_ABSENT_POLL: Duration = Duration::from_millis(100);

/// How often `--retry-path` tries to open the device again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    #[error("failed to open channel {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("failed to set up serial port {path}: {source}")]
    Termios { path: String, source: nix::Error },
    #[error("channel {path} failed: {source}")]
    Read { path: String, source: io::Error },
}

fn open(method: Method, path: &str) -> Result<FdStream, SerialError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|source| SerialError::Open {
            path: path.into(),
            source,
        })?;
    let fd = OwnedFd::from(file);
    if method == Method::IsaSerial {
        make_raw(&fd).map_err(|source| SerialError::Termios {
            path: path.into(),
            source,
        })?;
    }
    FdStream::new(fd).map_err(|source| SerialError::Open {
        path: path.into(),
        source,
    })
}

/// qemu-ga's serial set-up: non-canonical byte streaming at 38400 baud,
/// one byte minimum per read, pending garbage flushed.
fn make_raw(fd: &OwnedFd) -> nix::Result<()> {
    let mut tio = termios::tcgetattr(fd)?;
    tio.input_flags &= !(InputFlags::IGNBRK
        | InputFlags::BRKINT
        | InputFlags::IGNPAR
        | InputFlags::PARMRK
        | InputFlags::INPCK
        | InputFlags::ISTRIP
        | InputFlags::INLCR
        | InputFlags::IGNCR
        | InputFlags::ICRNL
        | InputFlags::IXON
        | InputFlags::IXOFF
        | InputFlags::IXANY
        | InputFlags::IMAXBEL);
    tio.output_flags = OutputFlags::empty();
    tio.local_flags = LocalFlags::empty();
    tio.control_flags |= ControlFlags::CREAD | ControlFlags::CLOCAL;
    termios::cfsetspeed(&mut tio, BaudRate::B38400)?;
    tio.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    tio.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    termios::tcflush(fd, FlushArg::TCIFLUSH)?;
    termios::tcsetattr(fd, SetArg::TCSANOW, &tio)
}

/// Serve the device until a fatal error (none with `retry`).
pub async fn serve(method: Method, path: &str, retry: bool, dispatcher: Arc<Dispatcher>) -> Result<(), SerialError> {
    loop {
        let device = match open(method, path) {
            Ok(device) => device,
            Err(e) if retry => {
                tracing::warn!("{e}; retrying in {}s", RETRY_INTERVAL.as_secs());
                tokio::time::sleep(RETRY_INTERVAL).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        tracing::info!("listening on {path}");
        let (mut reader, mut writer) = tokio::io::split(device);
        let mut parser = StreamParser::new();
        loop {
            match stream::serve(&mut reader, &mut writer, &mut parser, &dispatcher, method.name()).await {
                StreamEnd::Eof => tokio::time::sleep(HOST_ABSENT_POLL).await,
                StreamEnd::WriteFailed(e) => tracing::info!("reply lost, host side not reading: {e}"),
                StreamEnd::ReadError(e) if retry => {
                    tracing::warn!("channel {path} failed: {e}; reopening");
                    tokio::time::sleep(HOST_ABSENT_POLL).await;
                    break;
                }
                StreamEnd::ReadError(source) => {
                    return Err(SerialError::Read {
                        path: path.into(),
                        source,
                    });
                }
            }
        }
    }
}
