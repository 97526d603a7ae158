//! File system calls of the authorized-keys capability (nix, no `unsafe`).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use nix::errno::Errno;

use crate::capabilities::strerror;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, fchown};

pub struct Entry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

pub use qga_text::path::join;

impl Entry {
    fn ssh_path(&self) -> String {
        join(&self.home, ".ssh")
    }

    fn keys_path(&self) -> String {
        join(&self.ssh_path(), "authorized_keys")
    }
}

/// getpwnam_r; the error is what GLib's g_unix_get_passwd_entry says.
pub fn lookup(user: &str) -> Result<Entry, String> {
    match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => Ok(Entry {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            home: u.dir.to_string_lossy().into_owned(),
        }),
        // getpwnam_r found nothing and returned 0: GLib words it strerror(0)
        Ok(None) => Err("Success".to_owned()),
        Err(e) => Err(strerror(e as i32)),
    }
}

fn open_home(e: &Entry) -> nix::Result<OwnedFd> {
    let home = if e.home.is_empty() { "." } else { e.home.as_str() };
    openat(
        nix::fcntl::AT_FDCWD,
        home,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// ~/.ssh, never through a symlink.
fn open_ssh(e: &Entry) -> nix::Result<OwnedFd> {
    let home = open_home(e)?;
    openat(
        &home,
        ".ssh",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// The largest authorized_keys file read (a few thousand keys): a bigger
/// one (a huge sparse file) is refused before any byte is read.
pub const MAX_KEYS_BYTES: u64 = 1 << 20;

/// The file's bytes, or qemu-ga's "failed to read" cause in GLib's words.
/// Only a regular file is read: it is opened O_NONBLOCK (a FIFO there does
/// not wait for a writer), checked with fstat on the opened descriptor, and
/// refused when larger than [`MAX_KEYS_BYTES`].
pub fn read_keys(e: &Entry) -> Result<Vec<u8>, String> {
    let path = e.keys_path();
    let open_err = |errno: Errno| format!("Failed to open file \u{201c}{path}\u{201d}: {}", strerror(errno as i32));
    let ssh = open_ssh(e).map_err(open_err)?;
    let fd = openat(
        &ssh,
        "authorized_keys",
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(open_err)?;
    let st = fstat(&fd).map_err(open_err)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(format!(
            "Failed to open file \u{201c}{path}\u{201d}: not a regular file"
        ));
    }
    let too_big = || format!("Failed to read from file \u{201c}{path}\u{201d}: larger than {MAX_KEYS_BYTES} bytes");
    if u64::try_from(st.st_size).unwrap_or(u64::MAX) > MAX_KEYS_BYTES {
        return Err(too_big());
    }
    let mut out = Vec::new();
    // The file may grow after fstat: never read past the cap.
    std::fs::File::from(fd)
        .take(MAX_KEYS_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|err| {
            let errno = Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO));
            format!(
                "Failed to read from file \u{201c}{path}\u{201d}: {}",
                strerror(errno as i32)
            )
        })?;
    if out.len() as u64 > MAX_KEYS_BYTES {
        return Err(too_big());
    }
    Ok(out)
}

pub fn keys_exist(e: &Entry) -> bool {
    open_ssh(e).is_ok_and(|ssh| fstatat(&ssh, "authorized_keys", nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW).is_ok())
}

pub fn ssh_dir_exists(e: &Entry) -> bool {
    open_home(e).is_ok_and(|home| {
        fstatat(&home, ".ssh", nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
    })
}

/// mkdir ~/.ssh 0700, chown to the user, chmod 0700; qemu-ga's messages.
pub fn make_ssh_dir(e: &Entry) -> Result<(), String> {
    let path = e.ssh_path();
    let home =
        open_home(e).map_err(|errno| format!("failed to create directory '{path}': {}", strerror(errno as i32)))?;
    mkdirat(&home, ".ssh", Mode::from_bits_truncate(0o700))
        .map_err(|errno| format!("failed to create directory '{path}': {}", strerror(errno as i32)))?;
    let ssh = openat(
        &home,
        ".ssh",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| format!("failed to create directory '{path}': {}", strerror(errno as i32)))?;
    fchown(&ssh, Some(Uid::from_raw(e.uid)), Some(Gid::from_raw(e.gid))).map_err(|errno| {
        format!(
            "failed to set ownership of directory '{path}': {}",
            strerror(errno as i32)
        )
    })?;
    fchmod(&ssh, Mode::from_bits_truncate(0o700)).map_err(|errno| {
        format!(
            "failed to set permissions of directory '{path}': {}",
            strerror(errno as i32)
        )
    })?;
    Ok(())
}

/// Replace ~/.ssh/authorized_keys atomically: a new file in ~/.ssh (O_EXCL,
/// never through a symlink), owned by the user, 0600, synced, renamed over.
pub fn write_keys(e: &Entry, contents: &[u8]) -> Result<(), String> {
    let path = e.keys_path();
    let ssh = open_ssh(e).map_err(|errno| {
        format!(
            "failed to write to '{path}': Failed to create file \u{201c}{path}\u{201d}: {}",
            strerror(errno as i32)
        )
    })?;
    let (tmp_name, fd) = create_temp(&ssh).map_err(|(tmp, errno)| {
        let tmp_path = join(&e.ssh_path(), &tmp);
        format!(
            "failed to write to '{path}': Failed to create file \u{201c}{tmp_path}\u{201d}: {}",
            strerror(errno as i32)
        )
    })?;
    let tmp_path = join(&e.ssh_path(), &tmp_name);
    let cleanup = |ssh: &OwnedFd| {
        let _ = nix::unistd::unlinkat(ssh, tmp_name.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    };
    let mut file = std::fs::File::from(fd);
    let wrote = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(err) = wrote {
        cleanup(&ssh);
        let errno = Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO));
        return Err(format!(
            "failed to write to '{path}': Failed to write file \u{201c}{tmp_path}\u{201d}: {}",
            strerror(errno as i32)
        ));
    }
    if let Err(errno) = fchown(&file, Some(Uid::from_raw(e.uid)), Some(Gid::from_raw(e.gid))) {
        cleanup(&ssh);
        return Err(format!(
            "failed to set ownership of directory '{path}': {}",
            strerror(errno as i32)
        ));
    }
    if let Err(errno) = fchmod(&file, Mode::from_bits_truncate(0o600)) {
        cleanup(&ssh);
        return Err(format!(
            "failed to set permissions of '{path}': {}",
            strerror(errno as i32)
        ));
    }
    if let Err(errno) = renameat(&ssh, tmp_name.as_str(), &ssh, "authorized_keys") {
        cleanup(&ssh);
        return Err(format!(
            "failed to write to '{path}': Failed to rename file \u{201c}{tmp_path}\u{201d} to \u{201c}{path}\u{201d}: g_rename() failed: {}",
            strerror(errno as i32)
        ));
    }
    Ok(())
}

/// authorized_keys.XXXXXX, created exclusively, mode 0600.
fn create_temp(ssh: &OwnedFd) -> Result<(String, OwnedFd), (String, Errno)> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().rotate_left(16);
    let mut last = (String::from("authorized_keys.XXXXXX"), Errno::EEXIST);
    for attempt in 0..100u32 {
        let mut n = seed.wrapping_add(attempt.wrapping_mul(2_654_435_761));
        let mut suffix = String::new();
        for _ in 0..6 {
            let c = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[(n % 62) as usize];
            suffix.push(c as char);
            n /= 62;
            n = n.wrapping_mul(48_271).wrapping_add(attempt);
        }
        let name = format!("authorized_keys.{suffix}");
        match openat(
            ssh,
            name.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => return Ok((name, fd)),
            Err(Errno::EEXIST) => last = (name, Errno::EEXIST),
            Err(errno) => return Err((name, errno)),
        }
    }
    Err(last)
}
