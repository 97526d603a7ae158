//! The operator's handlers directory, checked as sshd's StrictModes checks a
//! home directory: the directory and every parent owned by root and not
//! writable by group or others, each handler file a regular root-owned file
//! not writable by group or others, and no symbolic link anywhere (each
//! component opened with O_NOFOLLOW relative to its parent's fd, and the fd
//! checked with fstat, so a rename after the check changes nothing).
//!
//! One exception, as tmpfiles.d and many tools make it: a parent (never the
//! handlers directory itself) may be writable by others when it is owned by
//! root and sticky (`/tmp`), since then only root can rename or remove the
//! root-owned entry that leads on.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum DirError {
    #[error("handlers path {0}: {1}")]
    Open(PathBuf, Errno),
    #[error("handlers path {0} is a symbolic link (not allowed)")]
    Symlink(PathBuf),
    #[error("handlers path {0} is owned by uid {1}, not root")]
    NotRoot(PathBuf, u32),
    #[error("handlers path {0} is writable by group or others (mode {1:04o})")]
    Writable(PathBuf, u32),
    #[error("handlers path {0} is not a {1}")]
    Kind(PathBuf, &'static str),
    #[error("cannot read handlers path {0}: {1}")]
    Read(PathBuf, std::io::Error),
}

/// One handler file and its detached signature, read from checked fds.
pub struct HandlerFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// `<file>.sig`, if present.
    pub detached: Option<Vec<u8>>,
}

/// Check `dir` and read every file in it whose name ends in one of
/// `extensions` (e.g. `.wasm`), sorted by name.
pub fn read(dir: &Path, extensions: &[&str]) -> Result<Vec<HandlerFile>, DirError> {
    let dirfd = open_checked_dir(dir)?;
    let mut names: Vec<Vec<u8>> = Vec::new();
    let listing = Dir::openat(
        &dirfd,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| DirError::Open(dir.to_owned(), e))?;
    for entry in listing {
        let entry = entry.map_err(|e| DirError::Open(dir.to_owned(), e))?;
        let name = entry.file_name().to_bytes();
        if extensions
            .iter()
            .any(|x| name.ends_with(x.as_bytes()) && name.len() > x.len())
        {
            names.push(name.to_vec());
        }
    }
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let name = OsStr::from_bytes(&name);
        let path = dir.join(name);
        let bytes = read_file(&dirfd, name, &path)?.ok_or_else(|| DirError::Open(path.clone(), Errno::ENOENT))?;
        let mut sig_name = name.to_owned();
        sig_name.push(".sig");
        let detached = read_file(&dirfd, &sig_name, &dir.join(&sig_name))?;
        out.push(HandlerFile { path, bytes, detached });
    }
    Ok(out)
}

/// Walk from `/` to `dir`, checking each directory; the last one's fd.
fn open_checked_dir(dir: &Path) -> Result<OwnedFd, DirError> {
    let absolute = if dir.is_absolute() {
        dir.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|e| DirError::Read(dir.to_owned(), e))?
            .join(dir)
    };
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let root = PathBuf::from("/");
    let mut fd = nix::fcntl::open(&root, flags, Mode::empty()).map_err(|e| DirError::Open(root.clone(), e))?;
    let mut at = root;
    let parts: Vec<&OsStr> = absolute
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(Ok(p)),
            Component::RootDir | Component::CurDir => None,
            Component::ParentDir | Component::Prefix(_) => Some(Err(())),
        })
        .collect::<Result<_, ()>>()
        .map_err(|()| DirError::Kind(dir.to_owned(), "path without '..'"))?;
    check(&fd, &at, parts.is_empty())?;
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        fd = match openat(&fd, *part, flags, Mode::empty()) {
            Ok(next) => next,
            Err(Errno::ELOOP) => return Err(DirError::Symlink(at)),
            Err(Errno::ENOTDIR) => return Err(symlink_or(&fd, part, at, "directory")),
            Err(e) => return Err(DirError::Open(at, e)),
        };
        check(&fd, &at, i + 1 == parts.len())?;
    }
    Ok(fd)
}

/// A directory's owner and mode; `last`: the handlers directory itself.
fn check(fd: &OwnedFd, path: &Path, last: bool) -> Result<(), DirError> {
    let st = stat(fd, path)?;
    owned_by_root(&st, path)?;
    let sticky = st.st_mode & libc::S_ISVTX != 0;
    if st.st_mode & 0o022 != 0 && (last || !sticky) {
        return Err(DirError::Writable(path.to_owned(), st.st_mode & 0o7777));
    }
    Ok(())
}

/// Open `name` in `dir` without following a link, check it, read it.
/// `None` when it does not exist.
fn read_file(dir: &OwnedFd, name: &OsStr, path: &Path) -> Result<Option<Vec<u8>>, DirError> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    let fd = match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ELOOP) => return Err(DirError::Symlink(path.to_owned())),
        Err(e) => return Err(DirError::Open(path.to_owned(), e)),
    };
    let st = stat(&fd, path)?;
    if SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) != SFlag::S_IFREG {
        return Err(DirError::Kind(path.to_owned(), "regular file"));
    }
    owned_by_root(&st, path)?;
    if st.st_mode & 0o022 != 0 {
        return Err(DirError::Writable(path.to_owned(), st.st_mode & 0o7777));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(st.st_size).unwrap_or(0));
    std::fs::File::from(fd)
        .read_to_end(&mut bytes)
        .map_err(|e| DirError::Read(path.to_owned(), e))?;
    Ok(Some(bytes))
}

fn stat(fd: &OwnedFd, path: &Path) -> Result<FileStat, DirError> {
    fstat(fd.as_fd()).map_err(|e| DirError::Open(path.to_owned(), e))
}

fn owned_by_root(st: &FileStat, path: &Path) -> Result<(), DirError> {
    if st.st_uid != 0 {
        return Err(DirError::NotRoot(path.to_owned(), st.st_uid));
    }
    Ok(())
}

/// ENOTDIR from an O_DIRECTORY|O_NOFOLLOW open: a symlink or another kind.
fn symlink_or(parent: &OwnedFd, name: &OsStr, path: PathBuf, kind: &'static str) -> DirError {
    match nix::sys::stat::fstatat(parent, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) if SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) == SFlag::S_IFLNK => DirError::Symlink(path),
        _ => DirError::Kind(path, kind),
    }
}
