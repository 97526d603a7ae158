//! The pair's lifecycle. [`spawn_broker`] forks before any input is read:
//! the parent stays the agent's main process (systemd's main PID, which
//! then drops privilege), the child becomes the broker.
//!
//! Each side exits when the other dies: the broker has `PR_SET_PDEATHSIG`
//! (SIGKILL) and also sees EOF on its end; the main process sees EOF on its
//! end (and SIGCHLD) and exits, so systemd restarts the pair.

#[allow(unsafe_code)] // the syscalls; every unsafe block has a SAFETY line
mod sys;

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::panic::{AssertUnwindSafe, catch_unwind};

pub use sys::Exit;

use crate::channel::{self, BrokerEnd, ChannelError, MainEnd};
use crate::status::{ProcessStatus, StatusError};

/// The broker's exit code when its parent was already gone at start.
pub const EXIT_ORPHANED: i32 = 70;
/// The broker's exit code when its set-up failed.
pub const EXIT_SETUP: i32 = 71;
/// The broker's exit code when its main function panicked.
pub const EXIT_PANIC: i32 = 101;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("{threads} threads are running; the broker must be forked before any thread starts")]
    Threaded { threads: u32 },
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error("forking the broker: {0}")]
    Fork(io::Error),
    #[error("waiting for the broker: {0}")]
    Wait(io::Error),
    #[error("signalling the broker: {0}")]
    Kill(io::Error),
}

/// The main process's handle on its broker child.
#[derive(Debug)]
pub struct Broker {
    pid: libc::pid_t,
}

impl Broker {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Blocks until the broker has ended, and reaps it.
    pub fn wait(self) -> Result<Exit, LifecycleError> {
        sys::wait(self.pid).map_err(LifecycleError::Wait)
    }

    pub fn kill(&self) -> Result<(), LifecycleError> {
        sys::kill(self.pid, libc::SIGKILL).map_err(LifecycleError::Kill)
    }
}

/// Forks the broker. In the child, every fd but stdin, stdout, stderr and
/// the broker's end of the channel is closed (the agent's channel, fds
/// systemd passed), the parent-death signal is armed, and `broker_main`
/// runs; its return value is the broker's exit code and the child never
/// returns from this function. The parent gets its end and the child's
/// handle.
pub fn spawn_broker<F>(broker_main: F) -> Result<(MainEnd, Broker), LifecycleError>
where
    F: FnOnce(BrokerEnd) -> i32,
{
    let threads = ProcessStatus::of_self()?.threads;
    if threads != 1 {
        return Err(LifecycleError::Threaded { threads });
    }
    let (main_end, broker_end) = channel::pair()?;
    let parent = sys::getpid();
    match sys::fork().map_err(LifecycleError::Fork)? {
        sys::Forked::Parent { child } => {
            drop(broker_end);
            Ok((main_end, Broker { pid: child }))
        }
        sys::Forked::Child => {
            drop(main_end);
            let code = match broker_setup(parent, broker_end.as_fd().as_raw_fd()) {
                Ok(()) => catch_unwind(AssertUnwindSafe(|| broker_main(broker_end))).unwrap_or(EXIT_PANIC),
                Err(code) => code,
            };
            sys::exit_now(code)
        }
    }
}

/// The broker's first steps, before it serves anything.
fn broker_setup(parent: libc::pid_t, own_end: RawFd) -> Result<(), i32> {
    sys::set_parent_death_signal(libc::SIGKILL).map_err(|_| EXIT_SETUP)?;
    // The parent may have died between fork and prctl: then no signal comes.
    if sys::getppid() != parent {
        return Err(EXIT_ORPHANED);
    }
    let keep = own_end as u32;
    sys::close_range(3, keep.saturating_sub(1)).map_err(|_| EXIT_SETUP)?;
    sys::close_range(keep + 1, u32::MAX).map_err(|_| EXIT_SETUP)?;
    Ok(())
}
