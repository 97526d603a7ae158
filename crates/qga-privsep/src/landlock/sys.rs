//! The three Landlock syscalls (same numbers on every Linux architecture).

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;

const SYS_CREATE_RULESET: libc::c_long = 444;
const SYS_ADD_RULE: libc::c_long = 445;
const SYS_RESTRICT_SELF: libc::c_long = 446;
const CREATE_RULESET_VERSION: u32 = 1 << 0;
const RULE_PATH_BENEATH: libc::c_int = 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The kernel's Landlock ABI version, or the errno that says there is none.
pub fn abi_version() -> Result<u32, io::Error> {
    // SAFETY: with the VERSION flag the kernel reads no attribute.
    let rc = unsafe {
        libc::syscall(
            SYS_CREATE_RULESET,
            ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as u32)
    }
}

/// A ruleset handling these rights. `attr_size` is how much of the
/// attribute the running ABI understands (8, 16 or 24 bytes).
pub fn create_ruleset(fs: u64, net: u64, scoped: u64, attr_size: usize) -> io::Result<OwnedFd> {
    let attr = RulesetAttr {
        handled_access_fs: fs,
        handled_access_net: net,
        scoped,
    };
    let size = attr_size.min(mem::size_of::<RulesetAttr>());
    // SAFETY: `attr` is valid for `size` bytes (at most its own size).
    let rc = unsafe { libc::syscall(SYS_CREATE_RULESET, &raw const attr, size, 0u32) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the kernel returned a fresh fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}

/// Allows `access` beneath the already opened `parent` (an O_PATH fd).
pub fn add_path_rule(ruleset: BorrowedFd<'_>, parent: BorrowedFd<'_>, access: u64) -> io::Result<()> {
    let attr = PathBeneathAttr {
        allowed_access: access,
        parent_fd: parent.as_raw_fd(),
    };
    // SAFETY: `attr` is a valid, packed landlock_path_beneath_attr.
    let rc = unsafe {
        libc::syscall(
            SYS_ADD_RULE,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &raw const attr,
            0u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Enforces the ruleset on this thread (and what it later creates).
pub fn restrict_self(ruleset: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: integer arguments only.
    let rc = unsafe { libc::syscall(SYS_RESTRICT_SELF, ruleset.as_raw_fd(), 0u32) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
