//! Syscalls of the freeze capability: FIFREEZE/FITHAW on a mount point,
//! the mount table, and the fsfreeze hook's child process.

#![allow(unsafe_code)] // the syscalls this module wraps

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};

// _IOWR('X', 119, int) and _IOWR('X', 120, int) from <linux/fs.h>.
nix::ioctl_readwrite_bad!(fifreeze, 0xC004_5877, libc::c_int);
nix::ioctl_readwrite_bad!(fithaw, 0xC004_5878, libc::c_int);

/// The mount a descriptor (O_PATH included) lies on: `mnt_id` of
/// /proc/self/fdinfo/N, the first field of its mountinfo line.
pub fn mount_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
    info.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
}

/// The mount of the directory above `dir` (O_PATH, `..` from the
/// descriptor itself): another mount than `dir`'s when `dir` is a mount
/// root.
pub fn parent_mount_id(dir: BorrowedFd<'_>) -> io::Result<u64> {
    let parent = nix::fcntl::openat(
        dir,
        "..",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )?;
    mount_id(parent.as_fd())
}

/// st_dev of a descriptor, as (major, minor).
pub fn device(fd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    let st = nix::sys::stat::fstat(fd)?;
    Ok((libc::major(st.st_dev), libc::minor(st.st_dev)))
}

/// FIFREEZE on the filesystem of `file`.
pub fn freeze(file: &File) -> io::Result<()> {
    // SAFETY: `file` is an open descriptor for the call's duration; the
    // kernel ignores the argument of FIFREEZE, a null pointer is what
    // qemu-ga passes (ioctl(fd, FIFREEZE) with no third argument).
    unsafe { fifreeze(file.as_raw_fd(), std::ptr::null_mut()) }
        .map(|_| ())
        .map_err(io::Error::from)
}

/// FITHAW on the filesystem of `file`.
pub fn thaw(file: &File) -> io::Result<()> {
    // SAFETY: as for `freeze`: a valid descriptor, an ignored argument.
    unsafe { fithaw(file.as_raw_fd(), std::ptr::null_mut()) }
        .map(|_| ())
        .map_err(io::Error::from)
}

/// The mount table qemu-ga reads.
pub fn mountinfo() -> io::Result<Vec<u8>> {
    std::fs::read("/proc/self/mountinfo")
}

/// major:minor of a block device node (btrfs reports 0:N in mountinfo).
pub fn block_dev(path: &Path) -> Option<(u32, u32)> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.file_type().is_block_device() {
        return None;
    }
    let rdev = meta.rdev();
    Some((libc::major(rdev), libc::minor(rdev)))
}

/// access(2) with X_OK, as qemu-ga checks the hook.
pub fn executable(path: &Path) -> io::Result<()> {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).map_err(io::Error::from)
}

/// How the hook process ended.
pub enum HookExit {
    Code(i32),
    Abnormal,
}

/// Run `hook arg` in its own session with stdin/stdout/stderr on
/// /dev/null and wait for it. An exec failure is exit status 1 (qemu-ga's
/// child does `_exit(EXIT_FAILURE)`).
pub fn run_hook(hook: &Path, arg: &str) -> io::Result<HookExit> {
    let mut command = Command::new(hook);
    command
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs in the forked child before exec and only
    // calls setsid(2), which is async-signal-safe and touches no memory.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(io::Error::from));
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.raw_os_error().is_some_and(|c| c == libc::EAGAIN || c == libc::ENOMEM) => return Err(e),
        Err(_) => return Ok(HookExit::Code(1)),
    };
    let status = child.wait()?;
    Ok(match status.code() {
        Some(code) => HookExit::Code(code),
        None => {
            let _ = status.signal();
            HookExit::Abnormal
        }
    })
}
