//! Race-free path resolution, for every place a path meets a grant (files
//! open, guest-exec's program, mount points of freeze, trim and fs-stat).
//!
//! A path is walked one component at a time from `/` (or the current
//! directory) with O_PATH|O_NOFOLLOW. A symlink is read from its own
//! descriptor and its target walked in turn (at most [`MAX_SYMLINKS`]),
//! `..` returns to the descriptor the walk came from (never above `/`).
//! The result is a descriptor of the object itself and its fully resolved
//! path, built from what was walked: the grant is matched against that
//! path and the caller acts on that descriptor only (re-opened through
//! /proc/self/fd, executed as /proc/self/fd/N, fstatvfs'd), so a symlink
//! swapped after the check changes nothing. A missing final component is
//! returned with its checked parent's descriptor, for creating it with
//! O_CREAT|O_EXCL there. Magic links (/proc/self/fd/N) are read as text
//! like any symlink, never jumped through.

mod sys;

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use nix::fcntl::OFlag;
pub use sys::Kind;

/// Most symlinks one resolution follows (the kernel's limit too).
pub const MAX_SYMLINKS: usize = 40;

/// Why a path could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", at.display(), crate::capabilities::strerror(*errno as i32))]
pub struct ResolveError {
    /// The errno the kernel would have reported for the same path.
    pub errno: nix::errno::Errno,
    /// The resolved path of the component that failed (no `..`, no
    /// symlink): what a grant is matched against to decide whether the
    /// caller may learn this error, so that a failed resolution never
    /// widens a grant.
    pub at: PathBuf,
}

impl ResolveError {
    pub fn io(&self) -> std::io::Error {
        std::io::Error::from_raw_os_error(self.errno as i32)
    }
}

/// An existing object the walk ended on.
#[derive(Debug)]
pub struct Resolved {
    /// O_PATH descriptor of the object itself.
    pub fd: OwnedFd,
    /// Its resolved path (no symlink, `.` or `..` left).
    pub path: PathBuf,
    pub kind: Kind,
}

/// A final component that does not exist, in an existing directory.
#[derive(Debug)]
pub struct Missing {
    /// O_PATH descriptor of the directory it would be created in.
    pub parent: OwnedFd,
    /// The resolved path it would have.
    pub path: PathBuf,
    name: OsString,
}

/// Where a walk ended.
#[derive(Debug)]
pub enum Target {
    Existing(Resolved),
    Missing(Missing),
}

impl Resolved {
    /// Open the object itself (`flags`: access mode and status flags;
    /// O_CREAT and O_TRUNC are ignored: truncate the checked file with
    /// `set_len` afterwards).
    pub fn open(&self, flags: OFlag) -> std::io::Result<File> {
        sys::reopen(self.fd.as_fd(), flags).map_err(std::io::Error::from)
    }

    /// `/proc/self/fd/N`: the object, for exec(2) and for a process that
    /// inherits the descriptor.
    pub fn proc_path(&self) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }
}

impl Missing {
    /// Create it through the checked parent's descriptor with
    /// O_CREAT|O_EXCL|O_NOFOLLOW (EEXIST if anything appeared there
    /// meanwhile: resolve again).
    pub fn create(&self, flags: OFlag, mode: u32) -> std::io::Result<File> {
        sys::create(self.parent.as_fd(), &self.name, flags, mode).map_err(std::io::Error::from)
    }
}

/// One directory on the walk: its descriptor and resolved path.
struct Step {
    fd: OwnedFd,
    path: PathBuf,
}

/// The names of a path, `.` and `..` kept (`/dev/null/.` is ENOTDIR,
/// which std's `components()` would hide).
fn split(path: &Path) -> VecDeque<OsString> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str()
        .as_bytes()
        .split(|&b| b == b'/')
        .filter(|name| !name.is_empty())
        .map(|name| std::ffi::OsStr::from_bytes(name).to_owned())
        .collect()
}

fn failed(errno: nix::errno::Errno, at: &Path) -> ResolveError {
    ResolveError {
        errno,
        at: at.to_path_buf(),
    }
}

/// Resolve `path` (relative to the current directory when not absolute).
/// With `allow_missing`, a final component that does not exist (and was
/// not reached through a symlink: qemu-ga never creates through a dangling
/// symlink) is [`Target::Missing`]; otherwise it is ENOENT.
pub fn resolve(path: &Path, allow_missing: bool) -> Result<Target, ResolveError> {
    use nix::errno::Errno;
    if path.as_os_str().is_empty() {
        // Relative to nothing: the error is about the current directory.
        let cwd = sys::cwd().unwrap_or_else(|_| PathBuf::from("/"));
        return Err(failed(Errno::ENOENT, &cwd));
    }
    if path.as_os_str().len() >= libc::PATH_MAX as usize {
        return Err(failed(Errno::ENAMETOOLONG, Path::new("/")));
    }
    // A relative path starts at the agent's current directory, as the
    // kernel's would.
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        sys::cwd().map_err(|e| failed(e, path))?.join(path)
    };
    let mut rest = split(&absolute);
    let root_fd = sys::open_start(Path::new("/")).map_err(|e| failed(e, Path::new("/")))?;
    // The root stays at the bottom: `..` never leaves it, and an
    // absolute symlink target starts again from it.
    let mut stack = vec![Step {
        fd: root_fd,
        path: PathBuf::from("/"),
    }];
    let trailing_slash = path.as_os_str().as_bytes().ends_with(b"/");
    let mut links = 0;
    // Whether the final component came from a symlink's target.
    let mut final_via_link = false;
    while let Some(name) = rest.pop_front() {
        if name == "." {
            // The top of the stack is always a directory here.
            continue;
        }
        if name == ".." {
            if stack.len() > 1 {
                stack.pop();
            }
            continue;
        }
        let last = rest.is_empty();
        let here = &stack[stack.len() - 1];
        let child_path = here.path.join(&name);
        let (fd, st) = match sys::open_component(here.fd.as_fd(), &name) {
            Ok(found) => found,
            Err(Errno::ENOENT) if last && allow_missing && !final_via_link => {
                if trailing_slash {
                    return Err(failed(Errno::EISDIR, &child_path));
                }
                let parent = stack.pop().expect("the root is always there");
                return Ok(Target::Missing(Missing {
                    parent: parent.fd,
                    path: child_path,
                    name,
                }));
            }
            Err(e) => return Err(failed(e, &child_path)),
        };
        match sys::kind(&st) {
            Kind::Symlink => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(failed(Errno::ELOOP, &child_path));
                }
                let target = sys::read_link(fd.as_fd()).map_err(|e| failed(e, &child_path))?;
                if target.is_empty() {
                    return Err(failed(Errno::ENOENT, &child_path));
                }
                let target = PathBuf::from(target);
                if target.is_absolute() {
                    stack.truncate(1);
                }
                final_via_link = last;
                for part in split(&target).into_iter().rev() {
                    rest.push_front(part);
                }
            }
            kind => {
                if !last && kind != Kind::Directory {
                    return Err(failed(Errno::ENOTDIR, &child_path));
                }
                final_via_link = false;
                stack.push(Step { fd, path: child_path });
            }
        }
    }
    let end = stack.pop().expect("the root is always there");
    let st = sys::stat(end.fd.as_fd()).map_err(|e| failed(e, &end.path))?;
    let kind = sys::kind(&st);
    if trailing_slash && kind != Kind::Directory {
        return Err(failed(Errno::ENOTDIR, &end.path));
    }
    Ok(Target::Existing(Resolved {
        fd: end.fd,
        path: end.path,
        kind,
    }))
}

/// Resolve a path that must exist.
pub fn existing(path: &Path) -> Result<Resolved, ResolveError> {
    match resolve(path, false)? {
        Target::Existing(r) => Ok(r),
        Target::Missing(m) => Err(ResolveError {
            errno: nix::errno::Errno::ENOENT,
            at: m.path,
        }),
    }
}

/// The path the kernel has now for an open file (to re-check a grant on
/// the descriptor actually opened).
pub fn path_of(file: &impl AsFd) -> std::io::Result<PathBuf> {
    sys::fd_path(file.as_fd()).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests;
