//! qemu-ga 7.2's password and authorized-keys logic over [`Accounts`].

pub enum Outcome {
    Exited(i32),
    Signaled,
    InputFailed(String),
    SpawnFailed(String),
}

pub struct Account {
    pub home: String,
}

pub trait Accounts {
    fn find_chpasswd(&mut self) -> bool;
    /// Run chpasswd (`-e` when crypted) with `input` on its stdin.
    fn chpasswd(&mut self, crypted: bool, input: &[u8]) -> Outcome;
    fn lookup(&mut self, user: &str) -> Result<Account, String>;
    fn read(&mut self, user: &str) -> Result<Vec<u8>, String>;
    fn keys_exist(&mut self, user: &str) -> bool;
    fn ssh_dir_exists(&mut self, user: &str) -> bool;
    fn make_ssh_dir(&mut self, user: &str) -> Result<(), String>;
    fn write(&mut self, user: &str, contents: &[u8]) -> Result<(), String>;
}

pub use qga_text::base64::decode_base64;

/// A string as qemu-ga hands it to C: its JSON parser keeps \u0000 as the
/// two bytes C0 80 (modified UTF-8), so a NUL never ends a name early.
pub fn c_bytes(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            0 => out.extend_from_slice(&[0xC0, 0x80]),
            b => out.push(b),
        }
    }
    out
}

/// guest-set-user-password: `USER:PASSWORD\n` to chpasswd's stdin.
pub fn set_user_password(a: &mut dyn Accounts, username: &str, password: &str, crypted: bool) -> Result<(), String> {
    let mut raw = decode_base64(password)?;
    if let Some(nul) = raw.iter().position(|&b| b == 0) {
        raw.truncate(nul);
    }
    if raw.contains(&b'\n') {
        return Err("forbidden characters in raw password".into());
    }
    if username.contains(['\n', ':']) {
        return Err("forbidden characters in username".into());
    }
    if !a.find_chpasswd() {
        return Err("cannot find 'passwd' program in PATH".into());
    }
    let mut input = Vec::with_capacity(username.len() + raw.len() + 2);
    input.extend_from_slice(&c_bytes(username));
    input.push(b':');
    input.extend_from_slice(&raw);
    input.push(b'\n');
    let outcome = a.chpasswd(crypted, &input);
    // the clear-text copies die with this instance; wipe them anyway
    input.iter_mut().for_each(|b| *b = 0);
    raw.iter_mut().for_each(|b| *b = 0);
    match outcome {
        Outcome::Exited(0) => Ok(()),
        Outcome::Exited(_) => Err("child process has failed to set user password".into()),
        Outcome::Signaled => Err("child process has terminated abnormally".into()),
        Outcome::InputFailed(e) => Err(format!("cannot write new account password: {e}")),
        Outcome::SpawnFailed(e) => Err(format!("failed to create child process: {e}")),
    }
}

pub use qga_text::path::join;

fn keys_path(home: &str) -> String {
    join(&join(home, ".ssh"), "authorized_keys")
}

fn lookup(a: &mut dyn Accounts, user: &str) -> Result<Account, String> {
    a.lookup(user)
        .map_err(|e| format!("failed to lookup user '{user}': {e}"))
}

/// g_strsplit(contents, "\n", -1) of a C string.
fn split_lines(contents: &[u8]) -> Vec<String> {
    let end = contents.iter().position(|&b| b == 0).unwrap_or(contents.len());
    String::from_utf8_lossy(&contents[..end])
        .split('\n')
        .map(str::to_owned)
        .collect()
}

fn check_keys(keys: &[String]) -> Result<(), String> {
    for k in keys {
        if k.starts_with('#') || k.contains('\n') {
            return Err(format!("invalid OpenSSH public key: '{k}'"));
        }
    }
    Ok(())
}

/// guest-ssh-get-authorized-keys: stripped, non-empty, non-comment lines,
/// last first (qemu-ga prepends each to its list).
pub fn get_keys(a: &mut dyn Accounts, user: &str) -> Result<Vec<String>, String> {
    let account = lookup(a, user)?;
    let contents = a
        .read(user)
        .map_err(|e| format!("failed to read '{}': {e}", keys_path(&account.home)))?;
    let mut out = Vec::new();
    for line in split_lines(&contents) {
        let line = line.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.insert(0, line.to_owned());
    }
    Ok(out)
}

/// guest-ssh-add-authorized-keys.
pub fn add_keys(a: &mut dyn Accounts, user: &str, keys: &[String], reset: bool) -> Result<(), String> {
    check_keys(keys)?;
    lookup(a, user)?;
    let existing = if reset { None } else { a.read(user).ok() };
    if existing.is_none() && !a.ssh_dir_exists(user) {
        a.make_ssh_dir(user)?;
    }
    let mut lines = existing.as_deref().map(split_lines).unwrap_or_default();
    for k in keys {
        if !lines.contains(k) {
            lines.push(k.clone());
        }
    }
    a.write(user, &c_bytes(&lines.join("\n")))
}

/// guest-ssh-remove-authorized-keys.
pub fn remove_keys(a: &mut dyn Accounts, user: &str, keys: &[String]) -> Result<(), String> {
    check_keys(keys)?;
    let account = lookup(a, user)?;
    if !a.keys_exist(user) {
        return Ok(());
    }
    let contents = a
        .read(user)
        .map_err(|e| format!("failed to read '{}': {e}", keys_path(&account.home)))?;
    let kept: Vec<String> = split_lines(&contents)
        .into_iter()
        .filter(|l| !keys.contains(l))
        .collect();
    a.write(user, &c_bytes(&kept.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Fake {
        file: Option<Vec<u8>>,
        ssh_dir: bool,
        chpasswd_input: Vec<Vec<u8>>,
        status: i32,
    }

    impl Accounts for Fake {
        fn find_chpasswd(&mut self) -> bool {
            true
        }
        fn chpasswd(&mut self, _crypted: bool, input: &[u8]) -> Outcome {
            self.chpasswd_input.push(input.to_vec());
            Outcome::Exited(self.status)
        }
        fn lookup(&mut self, user: &str) -> Result<Account, String> {
            if user == "u" {
                Ok(Account { home: "/home/u".into() })
            } else {
                Err("Success".into())
            }
        }
        fn read(&mut self, _user: &str) -> Result<Vec<u8>, String> {
            self.file.clone().ok_or_else(|| {
                "Failed to open file \u{201c}/home/u/.ssh/authorized_keys\u{201d}: No such file or directory".into()
            })
        }
        fn keys_exist(&mut self, _user: &str) -> bool {
            self.file.is_some()
        }
        fn ssh_dir_exists(&mut self, _user: &str) -> bool {
            self.ssh_dir
        }
        fn make_ssh_dir(&mut self, _user: &str) -> Result<(), String> {
            self.ssh_dir = true;
            Ok(())
        }
        fn write(&mut self, _user: &str, contents: &[u8]) -> Result<(), String> {
            self.file = Some(contents.to_vec());
            Ok(())
        }
    }

    #[test]
    fn password_goes_to_stdin_and_checks_come_first() {
        let mut f = Fake::default();
        assert_eq!(set_user_password(&mut f, "u", "c2VjcmV0", false), Ok(()));
        assert_eq!(f.chpasswd_input, [b"u:secret\n".to_vec()]);
        assert_eq!(
            set_user_password(&mut f, "u", "eAp5", false),
            Err("forbidden characters in raw password".into())
        );
        assert_eq!(
            set_user_password(&mut f, "a:b", "eA==", false),
            Err("forbidden characters in username".into())
        );
        assert_eq!(
            set_user_password(&mut f, "u", "!!", false),
            Err("Base64 data contains invalid characters".into())
        );
        f.status = 1;
        assert_eq!(
            set_user_password(&mut f, "nobody", "eA==", true),
            Err("child process has failed to set user password".into())
        );
    }

    #[test]
    fn base64_is_strict() {
        assert_eq!(decode_base64("aGVsbG8=\n"), Ok(b"hello".to_vec()));
        assert_eq!(decode_base64(""), Ok(vec![]));
        assert!(decode_base64("aGVsbG8").is_err());
        assert!(decode_base64("aG=sbG8=").is_err());
        // Non-zero bits after the last byte are ignored, as GLib does.
        assert_eq!(decode_base64("aGVsbG9="), Ok(b"hello".to_vec()));
    }

    #[test]
    fn a_nul_is_two_bytes_as_in_qemu_not_the_end_of_the_string() {
        let mut f = Fake::default();
        // \u0000 in the base64 text is C0 80 to qemu-ga: not base64.
        assert_eq!(
            set_user_password(&mut f, "u", "c2VjcmV0\0", false),
            Err("Base64 data contains invalid characters".into())
        );
        assert_eq!(
            set_user_password(&mut f, "u", "\0", true),
            Err("Base64 data contains invalid characters".into())
        );
        // A NUL does not cut the user name short: "u\0x" is not "u".
        assert_eq!(set_user_password(&mut f, "u\0x", "c2VjcmV0", false), Ok(()));
        assert_eq!(f.chpasswd_input, [b"u\xc0\x80x:secret\n".to_vec()]);
        // A decoded NUL does end the password (a C string in qemu-ga).
        assert_eq!(set_user_password(&mut f, "u", "YQBi", false), Ok(()));
        assert_eq!(f.chpasswd_input[1], b"u:a\n");
    }

    #[test]
    fn keys_add_get_remove_as_qemu_ga() {
        let mut f = Fake::default();
        let k = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(add_keys(&mut f, "u", &k(&["a 1", "b 2", "a 1"]), false), Ok(()));
        assert!(f.ssh_dir);
        assert_eq!(f.file.as_deref(), Some(&b"a 1\nb 2"[..]));
        assert_eq!(get_keys(&mut f, "u"), Ok(k(&["b 2", "a 1"])));
        assert_eq!(add_keys(&mut f, "u", &k(&["c 3", "b 2"]), false), Ok(()));
        assert_eq!(f.file.as_deref(), Some(&b"a 1\nb 2\nc 3"[..]));
        assert_eq!(remove_keys(&mut f, "u", &k(&["b 2", "zz"])), Ok(()));
        assert_eq!(f.file.as_deref(), Some(&b"a 1\nc 3"[..]));
        assert_eq!(add_keys(&mut f, "u", &k(&["d 4"]), true), Ok(()));
        assert_eq!(f.file.as_deref(), Some(&b"d 4"[..]));
        f.file = Some(b"  # comment\n\n x y \n".to_vec());
        assert_eq!(get_keys(&mut f, "u"), Ok(k(&["x y"])));
        assert_eq!(
            add_keys(&mut f, "u", &k(&["#x"]), false),
            Err("invalid OpenSSH public key: '#x'".into())
        );
        assert_eq!(
            get_keys(&mut f, "nosuch"),
            Err("failed to lookup user 'nosuch': Success".into())
        );
        f.file = None;
        assert_eq!(
            get_keys(&mut f, "u"),
            Err("failed to read '/home/u/.ssh/authorized_keys': Failed to open file \u{201c}/home/u/.ssh/authorized_keys\u{201d}: No such file or directory".into())
        );
        assert_eq!(remove_keys(&mut f, "u", &k(&["x"])), Ok(()));
        assert_eq!(f.file, None);
    }
}
