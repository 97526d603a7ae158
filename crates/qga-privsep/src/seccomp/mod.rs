//! The main process's seccomp allowlist. A syscall outside the list fails
//! with `EPERM` (`SECCOMP_RET_ERRNO`): the agent gets an error it reports,
//! never a kill. The filter applies to every thread (`TSYNC`) and to
//! anything the process starts.

mod allowlist;
mod bpf;
#[allow(unsafe_code)] // the syscalls; every unsafe block has a SAFETY line
mod sys;

use std::io;

pub use allowlist::{Allowed, COMMON, LEGACY, allowlist};
pub use bpf::{BpfError, compile};

use crate::status::{ProcessStatus, StatusError};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error("PR_SET_NO_NEW_PRIVS: {0}")]
    NoNewPrivs(io::Error),
    #[error("installing the seccomp filter: {0}")]
    Install(io::Error),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("after installing the filter /proc/self/status shows Seccomp: {0}, expected 2")]
    NotFiltered(u32),
}

/// What was installed, for the log and the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Installed {
    pub syscalls: usize,
    pub instructions: usize,
}

/// Installs [`allowlist`] on every thread of this process; verified.
pub fn install() -> Result<Installed, SeccompError> {
    let program = compile(allowlist())?;
    sys::set_no_new_privs().map_err(SeccompError::NoNewPrivs)?;
    sys::install_filter(&program).map_err(SeccompError::Install)?;
    let mode = ProcessStatus::of_self()?.seccomp;
    if mode != 2 {
        return Err(SeccompError::NotFiltered(mode));
    }
    Ok(Installed {
        syscalls: allowlist().count(),
        instructions: program.len(),
    })
}
