//! Syscalls of path resolution (nix, no `unsafe`): one component at a
//! time with O_PATH|O_NOFOLLOW, readlink of a symlink's own descriptor,
//! re-opening the exact inode a walk ended on, exclusive creation through
//! a checked directory descriptor.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};

/// What an O_PATH descriptor names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Directory,
    Symlink,
    Regular,
    Other,
}

pub fn kind(st: &FileStat) -> Kind {
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFDIR => Kind::Directory,
        SFlag::S_IFLNK => Kind::Symlink,
        SFlag::S_IFREG => Kind::Regular,
        _ => Kind::Other,
    }
}

fn path_flags() -> OFlag {
    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// An O_PATH descriptor of `/` (or of the current directory).
pub fn open_start(path: &Path) -> Result<OwnedFd, Errno> {
    open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// The current directory as the kernel names it.
pub fn cwd() -> Result<PathBuf, Errno> {
    nix::unistd::getcwd()
}

/// One component below `dir`, never following a symlink: the descriptor
/// and what it is.
pub fn open_component(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(OwnedFd, FileStat), Errno> {
    let fd = openat(dir, name, path_flags(), Mode::empty())?;
    let st = fstat(fd.as_fd())?;
    Ok((fd, st))
}

/// The target of the symlink `link` (an O_PATH descriptor of it).
pub fn read_link(link: BorrowedFd<'_>) -> Result<OsString, Errno> {
    readlinkat(link, "")
}

pub fn stat(fd: BorrowedFd<'_>) -> Result<FileStat, Errno> {
    fstat(fd)
}

/// Open the very inode `fd` (an O_PATH descriptor) names, with `flags`
/// (access mode and status flags; never O_CREAT or O_TRUNC), through its
/// /proc/self/fd link. The kernel checks permissions as for any open.
pub fn reopen(fd: BorrowedFd<'_>, flags: OFlag) -> Result<File, Errno> {
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let flags = flags & !(OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_EXCL);
    open(link.as_str(), flags | OFlag::O_CLOEXEC, Mode::empty()).map(File::from)
}

/// Create `name` in `dir` (a checked directory descriptor): O_CREAT|O_EXCL
/// |O_NOFOLLOW, so nothing that appeared meanwhile is opened instead.
pub fn create(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlag, mode: u32) -> Result<File, Errno> {
    let flags = (flags & !OFlag::O_TRUNC) | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(dir, name, flags, Mode::from_bits_truncate(mode)).map(File::from)
}

/// The path the kernel has for an open descriptor.
pub fn fd_path(fd: BorrowedFd<'_>) -> Result<PathBuf, Errno> {
    nix::fcntl::readlink(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str()).map(PathBuf::from)
}
