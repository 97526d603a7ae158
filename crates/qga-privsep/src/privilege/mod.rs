//! Dropping privilege: the main process gives up everything, the broker keeps
//! only a computed set of capabilities. Both verify the result from
//! `/proc/self/status` and fail closed if it is not what they asked for.
//!
//! Capability sets and the bounding set are per thread: call these before
//! the process starts any thread (they refuse otherwise).

mod caps;
#[allow(unsafe_code)] // the syscalls; every unsafe block has a SAFETY line
mod sys;

use std::ffi::CString;
use std::io;

pub use caps::{CapSet, CapsError, NAMES as CAPABILITY_NAMES, last_cap};

use crate::status::{ProcessStatus, StatusError};

/// The dedicated user the package creates.
pub const AGENT_USER: &str = "qga";
/// The fallback when the dedicated user does not exist.
pub const FALLBACK_USER: &str = "nobody";

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("neither user {AGENT_USER:?} nor {FALLBACK_USER:?} exists")]
    NoUser,
    #[error("user {user:?} resolves to uid 0 or gid 0; refusing to run the agent as root under that name")]
    RootUser { user: String },
    #[error("looking up user {user:?}: {source}")]
    Lookup { user: String, source: io::Error },
    #[error("{threads} threads are running; privilege must be dropped before any thread starts")]
    Threaded { threads: u32 },
    #[error("{step}: {source}")]
    Syscall { step: &'static str, source: io::Error },
    #[error(transparent)]
    Caps(#[from] CapsError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("capabilities {missing:?} are no longer in the bounding set; a restart is required to regain them")]
    Unavailable { missing: CapSet },
    #[error("after the drop /proc/self/status shows {field} = {found}, expected {expected}")]
    NotDropped {
        field: &'static str,
        found: String,
        expected: String,
    },
}

fn step(step: &'static str) -> impl FnOnce(io::Error) -> PrivilegeError {
    move |source| PrivilegeError::Syscall { step, source }
}

/// Who the main process runs as after [`drop_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unprivileged {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

/// Resolves `qga`, else `nobody`.
pub fn resolve_agent_user() -> Result<Unprivileged, PrivilegeError> {
    for user in [AGENT_USER, FALLBACK_USER] {
        let name = CString::new(user).expect("constant user names have no NUL");
        let found = sys::lookup_user(&name).map_err(|source| PrivilegeError::Lookup {
            user: user.into(),
            source,
        })?;
        if let Some(account) = found {
            if account.uid == 0 || account.gid == 0 {
                return Err(PrivilegeError::RootUser { user: user.into() });
            }
            return Ok(Unprivileged {
                user: user.into(),
                uid: account.uid,
                gid: account.gid,
            });
        }
    }
    Err(PrivilegeError::NoUser)
}

fn single_threaded() -> Result<(), PrivilegeError> {
    let threads = ProcessStatus::of_self()?.threads;
    if threads == 1 {
        Ok(())
    } else {
        Err(PrivilegeError::Threaded { threads })
    }
}

fn verify<T: std::fmt::Debug + PartialEq>(field: &'static str, found: T, expected: T) -> Result<(), PrivilegeError> {
    if found == expected {
        return Ok(());
    }
    Err(PrivilegeError::NotDropped {
        field,
        found: format!("{found:x?}"),
        expected: format!("{expected:x?}"),
    })
}

/// Drops from this thread's bounding set every capability up to the
/// kernel's last, except those in `keep`. Needs CAP_SETPCAP, so it runs
/// before the other sets are touched.
fn drop_bounding_except(keep: CapSet) -> Result<(), PrivilegeError> {
    for cap in 0..=last_cap()? {
        if !keep.contains(cap) && sys::bounding_has(cap).map_err(step("PR_CAPBSET_READ"))? {
            sys::bounding_drop(cap).map_err(step("PR_CAPBSET_DROP"))?;
        }
    }
    Ok(())
}

/// The main process's drop: `user` (from [`resolve_agent_user`]) with no
/// supplementary groups, no capability in any set, no_new_privs; verified.
pub fn drop_all(user: &Unprivileged) -> Result<ProcessStatus, PrivilegeError> {
    single_threaded()?;
    drop_bounding_except(CapSet::EMPTY)?;
    sys::ambient_clear().map_err(step("PR_CAP_AMBIENT_CLEAR_ALL"))?;
    sys::clear_supplementary_groups().map_err(step("setgroups"))?;
    sys::set_all_gids(user.gid).map_err(step("setresgid"))?;
    sys::set_all_uids(user.uid).map_err(step("setresuid"))?;
    sys::capset(0, 0, 0).map_err(step("capset"))?;
    sys::set_no_new_privs().map_err(step("PR_SET_NO_NEW_PRIVS"))?;

    let status = ProcessStatus::of_self()?;
    verify("CapInh", status.cap_inheritable, 0)?;
    verify("CapPrm", status.cap_permitted, 0)?;
    verify("CapEff", status.cap_effective, 0)?;
    verify("CapBnd", status.cap_bounding, 0)?;
    verify("CapAmb", status.cap_ambient, 0)?;
    verify("NoNewPrivs", status.no_new_privs, true)?;
    verify("Uid", status.uids, [user.uid; 4])?;
    verify("Gid", status.gids, [user.gid; 4])?;
    verify("Groups", status.groups.as_slice(), &[][..])?;
    Ok(status)
}

/// The broker's narrowing: keeps `keep` in the effective, permitted and
/// bounding sets, drops everything else from every set including bounding
/// and ambient; verified. A capability already gone from the bounding set
/// cannot come back: asking for one is [`PrivilegeError::Unavailable`].
pub fn keep_only(keep: CapSet) -> Result<ProcessStatus, PrivilegeError> {
    single_threaded()?;
    let before = ProcessStatus::of_self()?;
    let missing = CapSet::from_bits(keep.bits() & !before.cap_bounding);
    if missing != CapSet::EMPTY {
        return Err(PrivilegeError::Unavailable { missing });
    }
    drop_bounding_except(keep)?;
    sys::ambient_clear().map_err(step("PR_CAP_AMBIENT_CLEAR_ALL"))?;
    let (_, permitted, _) = sys::capget().map_err(step("capget"))?;
    let kept = permitted & keep.bits();
    sys::capset(kept, kept, 0).map_err(step("capset"))?;

    let status = ProcessStatus::of_self()?;
    verify(
        "CapBnd",
        CapSet::from_bits(status.cap_bounding),
        keep.intersect(CapSet::from_bits(before.cap_bounding)),
    )?;
    verify(
        "CapPrm",
        CapSet::from_bits(status.cap_permitted),
        CapSet::from_bits(kept),
    )?;
    verify(
        "CapEff",
        CapSet::from_bits(status.cap_effective),
        CapSet::from_bits(kept),
    )?;
    verify("CapInh", status.cap_inheritable, 0)?;
    verify("CapAmb", status.cap_ambient, 0)?;
    Ok(status)
}
