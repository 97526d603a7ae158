//! The credential and capability syscalls.

use std::ffi::CStr;
use std::io;
use std::ptr;

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A user database entry: uid and primary gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub uid: u32,
    pub gid: u32,
}

/// `getpwnam_r`; `Ok(None)` when the user does not exist.
pub fn lookup_user(name: &CStr) -> io::Result<Option<Account>> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    loop {
        // SAFETY: passwd is plain data; all-zero is a valid value to overwrite.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = ptr::null_mut();
        // SAFETY: every pointer is valid for the sizes given; `entry`'s string
        // pointers point into `buf`, which we do not read.
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &raw mut entry,
                buf.as_mut_ptr(),
                buf.len(),
                &raw mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1024 * 1024 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!result.is_null()).then_some(Account {
            uid: entry.pw_uid,
            gid: entry.pw_gid,
        }));
    }
}

pub fn clear_supplementary_groups() -> io::Result<()> {
    // SAFETY: a zero-length list needs no buffer.
    check(unsafe { libc::setgroups(0, ptr::null()) })
}

pub fn set_all_gids(gid: u32) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::setresgid(gid, gid, gid) })
}

pub fn set_all_uids(uid: u32) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    check(unsafe { libc::setresuid(uid, uid, uid) })
}

/// Whether `cap` is in this thread's bounding set.
pub fn bounding_has(cap: u32) -> io::Result<bool> {
    // SAFETY: PR_CAPBSET_READ takes an integer and returns 0/1.
    let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc == 1)
    }
}

pub fn bounding_drop(cap: u32) -> io::Result<()> {
    // SAFETY: PR_CAPBSET_DROP takes an integer.
    check(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) })
}

pub fn ambient_clear() -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    })
}

pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
}

const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// This thread's (effective, permitted, inheritable) sets.
pub fn capget() -> io::Result<(u64, u64, u64)> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: version 3 takes a header and two data structs, both valid.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
        join(data[0].inheritable, data[1].inheritable),
    ))
}

/// Sets this thread's effective, permitted and inheritable sets.
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> io::Result<()> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let split = |v: u64| (v as u32, (v >> 32) as u32);
    let data = [
        CapData {
            effective: split(effective).0,
            permitted: split(permitted).0,
            inheritable: split(inheritable).0,
        },
        CapData {
            effective: split(effective).1,
            permitted: split(permitted).1,
            inheritable: split(inheritable).1,
        },
    ];
    // SAFETY: version 3 takes a header and two data structs, both valid.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) };
    if rc != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
