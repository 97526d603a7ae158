//! A mount point for FIFREEZE/FITHAW, opened through the resolver: the
//! mountinfo path is walked component by component (O_PATH|O_NOFOLLOW,
//! `capabilities::resolve`), and the descriptor it ends on must be the
//! root of that very mount (its mnt_id and st_dev are those of the
//! mountinfo line at that path, and the directory above it is on another
//! mount) before anything is frozen or thawed through it. A mount point a
//! local user shadowed (a symlink in the path, another mount on top) is
//! [`MountRootError::Shadowed`]: skipped, never followed elsewhere.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;

use thiserror::Error;

use super::sys;
use super::{Mount, decode_mntname};
use crate::capabilities::resolve::{self, Kind, OFlag, ResolveError};

/// One line of /proc/self/mountinfo: what identifies a mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountLine {
    /// The first field (fdinfo's `mnt_id`).
    pub id: u64,
    /// major:minor as the kernel reports it (st_dev of its files).
    pub dev: (u32, u32),
    /// The mount point, decoded.
    pub dirname: String,
}

/// Every line of a mountinfo text, in order (later lines are mounted on top).
pub fn mount_lines(text: &str) -> Vec<MountLine> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let id = fields.next()?.parse().ok()?;
            let _parent = fields.next()?;
            let (major, minor) = fields.next()?.split_once(':')?;
            let _root = fields.next()?;
            let dirname = decode_mntname(fields.next()?);
            Some(MountLine {
                id,
                dev: (major.parse().ok()?, minor.parse().ok()?),
                dirname,
            })
        })
        .collect()
}

#[derive(Debug, Error)]
pub enum MountRootError {
    /// The walk failed: qemu-ga's open(2) of the path would have failed too.
    #[error("{}", crate::capabilities::strerror(.0.errno as i32))]
    Walk(ResolveError),
    /// Opening the checked descriptor failed.
    #[error("{}", crate::capabilities::io_strerror(.0))]
    Open(std::io::Error),
    /// The path does not lead to the root of the mount listed there.
    #[error("{path} is not the root of its mount any more: {why}")]
    Shadowed { path: String, why: &'static str },
}

/// Open `mount`'s root read-only, checked as the module says.
pub fn open_root(mount: &Mount, lines: &[MountLine]) -> Result<File, MountRootError> {
    let shadowed = |why| MountRootError::Shadowed {
        path: mount.dirname.clone(),
        why,
    };
    let found = resolve::existing(Path::new(&mount.dirname)).map_err(MountRootError::Walk)?;
    if found.path != Path::new(&mount.dirname) {
        return Err(shadowed("a symlink leads elsewhere"));
    }
    if found.kind != Kind::Directory {
        return Err(shadowed("not a directory"));
    }
    let id = sys::mount_id(found.fd.as_fd()).map_err(MountRootError::Open)?;
    let dev = sys::device(found.fd.as_fd()).map_err(MountRootError::Open)?;
    let Some(line) = lines.iter().rev().find(|l| l.id == id && l.dirname == mount.dirname) else {
        return Err(shadowed("another mount is there"));
    };
    if line.dev != dev {
        return Err(shadowed("another device is there"));
    }
    let same_fs = line.dev == (mount.devmajor, mount.devminor) || (line.dev.0 == 0 && mount.devtype == "btrfs");
    if !same_fs {
        return Err(shadowed("another filesystem is mounted on top"));
    }
    if mount.dirname != "/" && sys::parent_mount_id(found.fd.as_fd()).map_err(MountRootError::Open)? == id {
        return Err(shadowed("a directory inside the mount, not its root"));
    }
    found.open(OFlag::O_RDONLY).map_err(MountRootError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_lines_keep_ids_raw_devices_and_decoded_names() {
        let text = "27 1 254:0 / / rw - ext4 /dev/vda rw\n\
                    91 27 0:50 / /data\\040x rw - btrfs /dev/sdz rw\n\
                    garbage\n";
        assert_eq!(
            mount_lines(text),
            [
                MountLine {
                    id: 27,
                    dev: (254, 0),
                    dirname: "/".into()
                },
                MountLine {
                    id: 91,
                    dev: (0, 50),
                    dirname: "/data x".into()
                },
            ]
        );
    }

    #[test]
    fn the_root_of_this_process_is_its_root_mount() {
        let text = String::from_utf8(sys::mountinfo().unwrap()).unwrap();
        let lines = mount_lines(&text);
        let root = lines.iter().rev().find(|l| l.dirname == "/").unwrap();
        let mount = Mount {
            dirname: "/".into(),
            devtype: "ext4".into(),
            devmajor: root.dev.0,
            devminor: root.dev.1,
        };
        assert!(open_root(&mount, &lines).is_ok());
        // A directory that is not a mount point is refused.
        let etc = Mount {
            dirname: "/etc".into(),
            ..mount
        };
        assert!(matches!(open_root(&etc, &lines), Err(MountRootError::Shadowed { .. })));
    }
}
