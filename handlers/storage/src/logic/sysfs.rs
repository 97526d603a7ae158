//! Reads below a root directory, with sysfs's relative symlinks resolved
//! inside it: realpath, directory listings, udev properties.

use std::io;
use std::path::PathBuf;

/// What a directory entry is (readdir's d_type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Link,
    Other,
}

/// strerror text of an I/O error (as WASI reports it, or the OS).
pub fn strerror(e: &io::Error) -> String {
    let text = match e.kind() {
        io::ErrorKind::NotFound => "No such file or directory",
        io::ErrorKind::PermissionDenied => "Permission denied",
        io::ErrorKind::NotADirectory => "Not a directory",
        _ => return e.to_string(),
    };
    text.to_owned()
}

/// Directories above the preopens, never symlinks, that the component
/// cannot stat (no preopen holds them): realpath takes them as they are.
const PLAIN_DIRS: &[&str] = &["/sys", "/sys/dev", "/run", "/run/udev"];

/// Reads below a root, with sysfs's relative symlinks resolved inside it.
pub struct Sys {
    root: PathBuf,
    /// realpath of the directories met so far in this call (sysfs does not
    /// move under one call).
    dirs: std::cell::RefCell<std::collections::HashMap<String, String>>,
}

pub(super) fn basename(path: &str) -> String {
    path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("").to_owned()
}

impl Sys {
    pub fn new(root: impl Into<PathBuf>) -> Sys {
        Sys {
            root: root.into(),
            dirs: Default::default(),
        }
    }

    fn host(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// realpath of a directory, remembered for the rest of the call.
    fn real_dir(&self, dir: &str) -> io::Result<String> {
        if let Some(real) = self.dirs.borrow().get(dir) {
            return Ok(real.clone());
        }
        let real = self.realpath(dir)?;
        self.dirs.borrow_mut().insert(dir.to_owned(), real.clone());
        Ok(real)
    }

    /// `path` with its directories resolved (the last component as is).
    fn in_real_dir(&self, path: &str) -> io::Result<String> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let dir = self.real_dir(if dir.is_empty() { "/" } else { dir })?;
        Ok(format!("{}/{name}", dir.trim_end_matches('/')))
    }

    pub fn read_string(&self, path: &str) -> io::Result<String> {
        match std::fs::read_to_string(self.host(&self.in_real_dir(path)?)) {
            // The file itself may be a symlink into another preopen: resolve it too.
            Err(e) if !matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
                std::fs::read_to_string(self.host(&self.realpath(path)?))
            }
            read => read,
        }
    }

    /// The target of the symlink `path` (its directories resolved first).
    pub fn read_link(&self, path: &str) -> io::Result<String> {
        self.read_link_raw(&self.in_real_dir(path)?)
    }

    fn read_link_raw(&self, resolved: &str) -> io::Result<String> {
        Ok(std::fs::read_link(self.host(resolved))?.to_string_lossy().into_owned())
    }

    /// Entry names and kinds, in the order the directory gives them.
    pub fn list(&self, path: &str) -> io::Result<Vec<(String, Kind)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.host(&self.real_dir(path)?))? {
            let entry = entry?;
            let kind = match entry.file_type() {
                Ok(t) if t.is_symlink() => Kind::Link,
                Ok(t) if t.is_dir() => Kind::Dir,
                _ => Kind::Other,
            };
            out.push((entry.file_name().to_string_lossy().into_owned(), kind));
        }
        Ok(out)
    }

    /// realpath(3) of an absolute path: every symlink on the way followed.
    pub fn realpath(&self, path: &str) -> io::Result<String> {
        let mut pending: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .rev()
            .map(str::to_owned)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(part);
            let current = format!("/{}", done.join("/"));
            if PLAIN_DIRS.contains(&current.as_str()) {
                continue;
            }
            let meta = std::fs::symlink_metadata(self.host(&current))?;
            if meta.file_type().is_symlink() {
                links += 1;
                if links > 40 {
                    return Err(io::Error::other("Too many levels of symbolic links"));
                }
                let target = self.read_link_raw(&current)?;
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                pending.extend(target.split('/').filter(|s| !s.is_empty()).rev().map(str::to_owned));
            }
        }
        Ok(format!("/{}", done.join("/")))
    }

    /// A udev property of the device at `syspath`: its uevent file, then
    /// udev's database entry (`/run/udev/data/b<major>:<minor>`).
    pub(super) fn udev_property(&self, syspath: &str, key: &str) -> Option<String> {
        let uevent = self.read_string(&format!("{syspath}/uevent")).ok()?;
        let get = |text: &str, prefix: &str| text.lines().find_map(|l| l.strip_prefix(prefix).map(str::to_owned));
        if let Some(v) = get(&uevent, &format!("{key}=")) {
            return Some(v);
        }
        let major = get(&uevent, "MAJOR=")?;
        let minor = get(&uevent, "MINOR=")?;
        let db = self.read_string(&format!("/run/udev/data/b{major}:{minor}")).ok()?;
        get(&db, &format!("E:{key}="))
    }

    /// udev_device_get_devnode: `/dev/` + DEVNAME of the device.
    pub(super) fn devnode(&self, syspath: &str) -> Option<String> {
        let uevent = self.read_string(&format!("{syspath}/uevent")).ok()?;
        uevent
            .lines()
            .find_map(|l| l.strip_prefix("DEVNAME="))
            .map(|name| format!("/dev/{name}"))
    }

    /// qemu-ga's `get_device_for_syspath`.
    pub(super) fn device_for_syspath(&self, syspath: &str) -> Option<String> {
        let real = self.realpath(syspath).ok()?;
        self.devnode(&real)
    }
}
