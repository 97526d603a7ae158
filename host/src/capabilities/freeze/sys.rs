//! Syscalls of the freeze capability: FIFREEZE/FITHAW on a mount point,
//! the mount table, and the fsfreeze hook's child process.

#![allow(unsafe_code)] // the syscalls this module wraps

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};

// _IOWR('X', 119, int) and _IOWR('X', 120, int) from <linux/fs.h>.
nix::ioctl_readwrite_bad!(fifreeze, 0xC004_5877, libc::c_int);
nix::ioctl_readwrite_bad!(fithaw, 0xC004_5878, libc::c_int);

/// open(2) a mount point read-only (O_CLOEXEC), as qemu-ga does.
pub fn open_mount(path: &Path) -> io::Result<File> {
    File::open(path)
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
