//! `qga:agent/authorized-keys`: ~USER/.ssh/authorized_keys of the users the
//! grant allows. The handler names a user, never a path: the host derives
//! the path from the passwd entry. Files are opened relative to the home
//! directory without following a symlink at `.ssh` or `authorized_keys`
//! (qemu-ga 7.2 follows them as root, which lets a user redirect the
//! agent's reads and writes to any file), written atomically (a temporary
//! file in ~/.ssh, then rename) and given to the user (0700 directory,
//! 0600 file, as qemu-ga leaves them).

pub mod settings;
mod sys;

use super::qga::agent::authorized_keys::{Account, Host};
use super::view::GrantView;
use super::{Capability, Denied, Grant};

/// May the grant touch this user's keys?
pub fn may_touch(grant: &Grant, user: &str) -> bool {
    grant
        .authorized_keys
        .users
        .as_ref()
        .is_none_or(|users| users.iter().any(|u| u == user))
}

/// Whose keys a command may touch.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizedKeysGrant {
    /// The users; `None` = any user (qemu-ga's behaviour).
    pub users: Option<Vec<String>>,
}

impl AuthorizedKeysGrant {
    /// No user.
    pub fn nothing() -> AuthorizedKeysGrant {
        AuthorizedKeysGrant {
            users: Some(Vec::new()),
        }
    }
}

fn check(ctx: &GrantView<'_>, user: &str) -> Result<(), Denied> {
    ctx.grant.require(ctx.command, Capability::AuthorizedKeys)?;
    if may_touch(ctx.grant, user) {
        Ok(())
    } else {
        Err(Denied::User {
            command: ctx.command.to_string(),
            user: user.to_owned(),
        })
    }
}

/// The entry, or GLib's error text.
fn lookup(user: &str) -> Result<sys::Entry, String> {
    sys::lookup(user)
}

impl Host for GrantView<'_> {
    fn lookup(&mut self, user: String) -> wasmtime::Result<Result<Account, String>> {
        check(self, &user)?;
        Ok(lookup(&user).map(|e| Account {
            name: e.name,
            uid: e.uid,
            gid: e.gid,
            home: e.home,
        }))
    }

    fn read(&mut self, user: String) -> wasmtime::Result<Result<Vec<u8>, String>> {
        check(self, &user)?;
        Ok(lookup(&user).and_then(|e| sys::read_keys(&e)))
    }

    fn keys_exist(&mut self, user: String) -> wasmtime::Result<bool> {
        check(self, &user)?;
        Ok(lookup(&user).is_ok_and(|e| sys::keys_exist(&e)))
    }

    fn ssh_dir_exists(&mut self, user: String) -> wasmtime::Result<bool> {
        check(self, &user)?;
        Ok(lookup(&user).is_ok_and(|e| sys::ssh_dir_exists(&e)))
    }

    fn make_ssh_dir(&mut self, user: String) -> wasmtime::Result<Result<(), String>> {
        check(self, &user)?;
        Ok(lookup(&user).and_then(|e| sys::make_ssh_dir(&e)))
    }

    fn write(&mut self, user: String, contents: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        check(self, &user)?;
        Ok(lookup(&user).and_then(|e| sys::write_keys(&e, &contents)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_any_user_and_a_policy_can_narrow_it() {
        let env = |_: &str| None;
        let mut g = crate::policy::manifests::builtin("guest-ssh-add-authorized-keys", &env);
        assert!(may_touch(&g, "root"));
        assert!(may_touch(&g, "qgatest"));
        g.authorized_keys.users = Some(vec!["qgatest".to_owned()]);
        assert!(may_touch(&g, "qgatest"));
        assert!(!may_touch(&g, "root"));
        assert!(!may_touch(&Grant::none(), "root"));
    }

    #[test]
    fn paths_join_as_g_build_filename() {
        assert_eq!(sys::join("/home/u", ".ssh"), "/home/u/.ssh");
        assert_eq!(sys::join("/home/u/", ".ssh"), "/home/u/.ssh");
        assert_eq!(sys::join("/", ".ssh"), "/.ssh");
        assert_eq!(sys::join("", ".ssh"), ".ssh");
    }

    /// A home directory in a scratch dir, with ~/.ssh made.
    fn scratch_entry(tag: &str) -> (std::path::PathBuf, sys::Entry) {
        let dir = std::env::temp_dir().join(format!("qga-keys-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(".ssh")).unwrap();
        let entry = entry_at(&dir);
        (dir, entry)
    }

    /// Read on another thread: a read that hangs fails the test instead of
    /// hanging it.
    fn read_elsewhere(entry: sys::Entry) -> Result<Vec<u8>, String> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(sys::read_keys(&entry));
        });
        rx.recv_timeout(std::time::Duration::from_secs(60))
            .expect("reading authorized_keys hung")
    }

    #[test]
    fn a_fifo_as_authorized_keys_is_refused_without_waiting() {
        let (dir, entry) = scratch_entry("fifo");
        let keys = dir.join(".ssh/authorized_keys");
        nix::unistd::mkfifo(&keys, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = read_elsewhere(entry).unwrap_err();
        assert_eq!(
            err,
            format!(
                "Failed to open file \u{201c}{}\u{201d}: not a regular file",
                keys.display()
            )
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_huge_sparse_authorized_keys_is_refused_unread() {
        let (dir, entry) = scratch_entry("sparse");
        let keys = dir.join(".ssh/authorized_keys");
        std::fs::File::create(&keys).unwrap().set_len(1 << 40).unwrap();
        let err = read_elsewhere(entry).unwrap_err();
        assert_eq!(
            err,
            format!(
                "Failed to read from file \u{201c}{}\u{201d}: larger than {} bytes",
                keys.display(),
                sys::MAX_KEYS_BYTES
            )
        );
        // Up to the cap is read whole.
        std::fs::write(&keys, "ssh-ed25519 AAAA k\n").unwrap();
        assert_eq!(read_elsewhere(entry_at(&dir)).unwrap(), b"ssh-ed25519 AAAA k\n");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn entry_at(dir: &std::path::Path) -> sys::Entry {
        sys::Entry {
            name: "someone".into(),
            uid: 0,
            gid: 0,
            home: dir.to_str().unwrap().to_owned(),
        }
    }
}
