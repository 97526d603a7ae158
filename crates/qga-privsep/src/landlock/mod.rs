//! The main process's filesystem view, confined with Landlock to a list of
//! paths, each read-only or read-write. TCP bind/connect (ABI 4+), abstract
//! unix sockets and signals outside the domain (ABI 6+) are denied as well.
//!
//! A kernel without Landlock (not built in, or not enabled at boot) is not
//! an error: [`restrict`] returns [`LandlockStatus::NotSupported`], which the
//! caller logs and the audit reports. Anything else that goes wrong once
//! Landlock exists fails closed.

#[allow(unsafe_code)] // the syscalls; every unsafe block has a SAFETY line
mod sys;

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::status::{ProcessStatus, StatusError};

mod access {
    pub const EXECUTE: u64 = 1 << 0;
    pub const WRITE_FILE: u64 = 1 << 1;
    pub const READ_FILE: u64 = 1 << 2;
    pub const READ_DIR: u64 = 1 << 3;
    /// REMOVE_DIR .. MAKE_SYM (bits 4..=12), ABI 1.
    pub const DIR_CHANGES: u64 = 0x1ff0;
    pub const REFER: u64 = 1 << 13;
    pub const TRUNCATE: u64 = 1 << 14;
    pub const IOCTL_DEV: u64 = 1 << 15;
    pub const NET_BIND_TCP: u64 = 1 << 0;
    pub const NET_CONNECT_TCP: u64 = 1 << 1;
    pub const SCOPE_ABSTRACT_UNIX: u64 = 1 << 0;
    pub const SCOPE_SIGNAL: u64 = 1 << 1;
    /// The rights that apply to a file (not a directory).
    pub const FILE: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;
}

#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("opening Landlock rule path {path}: {source}")]
    Path { path: PathBuf, source: io::Error },
    #[error("Landlock {step}: {source}")]
    Syscall { step: &'static str, source: io::Error },
    #[error("{threads} threads are running; Landlock must be enforced before any thread starts")]
    Threaded { threads: u32 },
    #[error(transparent)]
    Status(#[from] StatusError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// One path the process may still use, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub path: PathBuf,
    pub access: Access,
}

/// What the start-up log and the audit report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LandlockStatus {
    Enforced { abi: u32 },
    NotSupported { reason: String },
}

impl fmt::Display for LandlockStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LandlockStatus::Enforced { abi } => write!(f, "Landlock enforced (ABI {abi})"),
            LandlockStatus::NotSupported { reason } => write!(f, "Landlock not supported: {reason}"),
        }
    }
}

/// Interprets the ABI probe: `Ok(abi)`, or the errno that means "no
/// Landlock here". Any other error is not "unsupported": it fails closed.
pub fn classify_probe(probe: Result<u32, io::Error>) -> Result<LandlockStatus, LandlockError> {
    match probe {
        Ok(abi) => Ok(LandlockStatus::Enforced { abi }),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Ok(LandlockStatus::NotSupported {
            reason: "the kernel has no Landlock (ENOSYS)".into(),
        }),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(LandlockStatus::NotSupported {
            reason: "Landlock is disabled at boot (EOPNOTSUPP)".into(),
        }),
        Err(source) => Err(LandlockError::Syscall {
            step: "ABI probe",
            source,
        }),
    }
}

/// What the running kernel offers, without enforcing anything.
pub fn probe() -> Result<LandlockStatus, LandlockError> {
    classify_probe(sys::abi_version())
}

/// Every filesystem right the given ABI can handle.
fn handled_fs(abi: u32) -> u64 {
    let mut rights = access::EXECUTE | access::WRITE_FILE | access::READ_FILE | access::READ_DIR | access::DIR_CHANGES;
    if abi >= 2 {
        rights |= access::REFER;
    }
    if abi >= 3 {
        rights |= access::TRUNCATE;
    }
    if abi >= 5 {
        rights |= access::IOCTL_DEV;
    }
    rights
}

fn rights_for(rule_access: Access, handled: u64, is_dir: bool) -> u64 {
    let rights = match rule_access {
        Access::ReadOnly => access::READ_FILE | access::READ_DIR,
        Access::ReadWrite => handled,
    };
    if is_dir {
        rights & handled
    } else {
        rights & handled & access::FILE
    }
}

fn open_rule_path(rule: &Rule) -> Result<(OwnedFd, bool), LandlockError> {
    let err = |source| LandlockError::Path {
        path: rule.path.clone(),
        source,
    };
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(&rule.path)
        .map_err(err)?;
    let is_dir = file.metadata().map_err(err)?.is_dir();
    Ok((file.into(), is_dir))
}

/// Confines this process to `rules`: anything not beneath one of them is
/// `EACCES` from now on, for this process and whatever it starts. Sets
/// no_new_privs (Landlock requires it without CAP_SYS_ADMIN).
pub fn restrict(rules: &[Rule]) -> Result<LandlockStatus, LandlockError> {
    let abi = match probe()? {
        LandlockStatus::Enforced { abi } => abi,
        unsupported @ LandlockStatus::NotSupported { .. } => return Ok(unsupported),
    };
    let threads = ProcessStatus::of_self()?.threads;
    if threads != 1 {
        return Err(LandlockError::Threaded { threads });
    }
    let syscall = |step| move |source| LandlockError::Syscall { step, source };
    let fs = handled_fs(abi);
    let (net, scoped, attr_size) = match abi {
        1..=3 => (0, 0, 8),
        4 | 5 => (access::NET_BIND_TCP | access::NET_CONNECT_TCP, 0, 16),
        _ => (
            access::NET_BIND_TCP | access::NET_CONNECT_TCP,
            access::SCOPE_ABSTRACT_UNIX | access::SCOPE_SIGNAL,
            24,
        ),
    };
    let ruleset = sys::create_ruleset(fs, net, scoped, attr_size).map_err(syscall("create_ruleset"))?;
    for rule in rules {
        let (fd, is_dir) = open_rule_path(rule)?;
        sys::add_path_rule(ruleset.as_fd(), fd.as_fd(), rights_for(rule.access, fs, is_dir))
            .map_err(syscall("add_rule"))?;
    }
    sys::set_no_new_privs().map_err(syscall("PR_SET_NO_NEW_PRIVS"))?;
    sys::restrict_self(ruleset.as_fd()).map_err(syscall("restrict_self"))?;
    Ok(LandlockStatus::Enforced { abi })
}
