//! Pure logic of the system-info family, as qemu-ga 7.2 computes it.

use std::collections::HashMap;

/// glibc's `_PATH_UTMP`, what qemu-ga's getutxent() reads.
pub const UTMP_PATH: &str = "/var/run/utmp";

/// qemu-ga answers `g_get_real_time() * 1000`: microseconds, scaled to ns.
pub fn qemu_time_ns(now_ns: i64) -> i64 {
    now_ns.div_euclid(1000) * 1000
}

/// qemu-ga omits `zone` when the abbreviation is empty.
pub fn timezone(abbreviation: String, offset_seconds: i32) -> (Option<String>, i64) {
    let zone = if abbreviation.is_empty() {
        None
    } else {
        Some(abbreviation)
    };
    (zone, i64::from(offset_seconds))
}

/// The `os-release` keys of a file, parsed as GLib's GKeyFile parses it
/// after qemu-ga prepends `[os-release]`: `None` when GKeyFile would reject
/// the whole file.
pub fn parse_os_release(bytes: &[u8]) -> Option<HashMap<String, String>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut group = String::from("os-release");
    let mut keys = HashMap::new();
    for line in text.split('\n') {
        let line = line.trim_start_matches(|c: char| c.is_ascii_whitespace());
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let end = rest.rfind(']')?;
            let name = &rest[..end];
            if name.is_empty() || name.contains(['[', ']']) || name.chars().any(char::is_control) {
                return None;
            }
            group = name.to_owned();
            continue;
        }
        let (key, value) = line.split_once('=')?;
        let key = key.trim_end_matches(|c: char| c.is_ascii_whitespace());
        if key.is_empty() {
            return None;
        }
        let value = value.trim_matches(|c: char| c.is_ascii_whitespace());
        if group == "os-release" {
            keys.insert(key.to_owned(), value.to_owned());
        }
    }
    Some(keys)
}

/// qemu-ga's `ga_osrelease_replace_special`, quirks included: a value that
/// does not start with `"` is cut at the first space, then at the first `;`
/// (so a single-quoted value keeps its quote); a double-quoted value is
/// unescaped up to the closing quote, and without one its last bytes are
/// left doubled, exactly as the C loop leaves them.
pub fn replace_special(value: &str) -> String {
    let mut v = value.as_bytes().to_vec();
    if v.first() != Some(&b'"') {
        if let Some(p) = v.iter().position(|&b| b == b' ') {
            v.truncate(p);
        }
        if let Some(p) = v.iter().position(|&b| b == b';') {
            v.truncate(p);
        }
        return String::from_utf8_lossy(&v).into_owned();
    }
    let quote = v[0];
    let mut p2 = 0;
    let mut p = 1;
    let mut end = v.len();
    while p < v.len() {
        if v[p] == b'\\' {
            p += 1;
            match v.get(p) {
                Some(b'$' | b'\'' | b'"' | b'\\' | b'`') => {}
                _ => p -= 1,
            }
        } else if v[p] == quote {
            end = p2;
            break;
        }
        v[p2] = v[p];
        p2 += 1;
        p += 1;
    }
    v.truncate(end);
    String::from_utf8_lossy(&v).into_owned()
}

/// The os-release members of GuestOSInfo.
#[derive(Debug, Default, PartialEq)]
pub struct OsReleaseFields {
    pub id: Option<String>,
    pub name: Option<String>,
    pub pretty_name: Option<String>,
    pub version: Option<String>,
    pub version_id: Option<String>,
    pub variant: Option<String>,
    pub variant_id: Option<String>,
}

pub fn os_info_fields(keys: Option<&HashMap<String, String>>) -> OsReleaseFields {
    let Some(keys) = keys else {
        return OsReleaseFields::default();
    };
    let get = |k: &str| keys.get(k).map(|v| replace_special(v));
    OsReleaseFields {
        id: get("ID"),
        name: get("NAME"),
        pretty_name: get("PRETTY_NAME"),
        version: get("VERSION"),
        version_id: get("VERSION_ID"),
        variant: get("VARIANT"),
        variant_id: get("VARIANT_ID"),
    }
}

/// One GuestUser.
#[derive(Debug, PartialEq)]
pub struct User {
    pub user: String,
    pub login_time: f64,
}

/// glibc x86_64/aarch64 `struct utmpx` layout.
const UTMP_RECORD: usize = 384;
const UT_USER: usize = 44;
const UT_TV_SEC: usize = 340;
const UT_TV_USEC: usize = 344;
const USER_PROCESS: i16 = 7;

/// qemu-ga's guest-get-users over the bytes of utmp: USER_PROCESS entries,
/// one per user name in first-seen order, with the earliest login time.
pub fn users_from_utmp(bytes: &[u8]) -> Vec<User> {
    let mut users: Vec<User> = Vec::new();
    for rec in bytes.chunks_exact(UTMP_RECORD) {
        let ut_type = i16::from_ne_bytes([rec[0], rec[1]]);
        if ut_type != USER_PROCESS {
            continue;
        }
        // strdup(ut_user): ut_user is not always NUL-terminated.
        let name = &rec[UT_USER..];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        let name = String::from_utf8_lossy(name).into_owned();
        let word = |at: usize| i32::from_ne_bytes([rec[at], rec[at + 1], rec[at + 2], rec[at + 3]]);
        let login_time = f64::from(word(UT_TV_SEC)) + f64::from(word(UT_TV_USEC)) / 1_000_000.0;
        match users.iter_mut().find(|u| u.user == name) {
            Some(u) => {
                if login_time < u.login_time {
                    u.login_time = login_time;
                }
            }
            None => users.push(User { user: name, login_time }),
        }
    }
    users
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> OsReleaseFields {
        os_info_fields(parse_os_release(text.as_bytes()).as_ref())
    }

    #[test]
    fn time_is_microsecond_granular() {
        assert_eq!(qemu_time_ns(1_795_610_576_136_533_123), 1_795_610_576_136_533_000);
    }

    #[test]
    fn empty_zone_is_omitted() {
        assert_eq!(timezone(String::new(), 3600), (None, 3600));
        assert_eq!(timezone("CET".into(), 3600), (Some("CET".into()), 3600));
    }

    #[test]
    fn os_release_quirks_match_qemu_ga() {
        // Expected values observed from qemu-ga 7.2 with QGA_OS_RELEASE.
        let f = fields(
            "NAME = \"Foo Bar\"  \nID=foo bar\n  # comment\nPRETTY_NAME=\"a\\\"b\\$c\\qd\" tail\n\
             VERSION='x y'\nVERSION_ID=\"unterminated\nVARIANT=semi;colon\nVARIANT_ID=\n",
        );
        assert_eq!(f.name.as_deref(), Some("Foo Bar"));
        assert_eq!(f.id.as_deref(), Some("foo"));
        assert_eq!(f.pretty_name.as_deref(), Some("a\"b$c\\qd"));
        assert_eq!(f.version.as_deref(), Some("'x"));
        assert_eq!(f.version_id.as_deref(), Some("unterminatedd"));
        assert_eq!(f.variant.as_deref(), Some("semi"));
        assert_eq!(f.variant_id.as_deref(), Some(""));
    }

    #[test]
    fn os_release_rejected_whole_on_garbage_line() {
        assert_eq!(parse_os_release(b"NAME=x\ngarbage line\n"), None);
    }

    #[test]
    fn os_release_other_group_is_ignored() {
        let f = fields("NAME=x\n[grp]\nID=y\n");
        assert_eq!(f.name.as_deref(), Some("x"));
        assert_eq!(f.id, None);
    }

    #[test]
    fn os_release_crlf_last_key_wins_and_key_spaces() {
        let f = fields("NAME=x\r\nID=a\tb\nID=c\nVERSION=\"q\"x\"\n VERSION_ID =3\n");
        assert_eq!(f.name.as_deref(), Some("x"));
        assert_eq!(f.id.as_deref(), Some("c"));
        assert_eq!(f.version.as_deref(), Some("q"));
        assert_eq!(f.version_id.as_deref(), Some("3"));
    }

    fn record(ut_type: i16, user: &[u8], sec: i32, usec: i32) -> Vec<u8> {
        let mut r = vec![0u8; UTMP_RECORD];
        r[0..2].copy_from_slice(&ut_type.to_ne_bytes());
        r[UT_USER..UT_USER + user.len()].copy_from_slice(user);
        r[UT_TV_SEC..UT_TV_SEC + 4].copy_from_slice(&sec.to_ne_bytes());
        r[UT_TV_USEC..UT_TV_USEC + 4].copy_from_slice(&usec.to_ne_bytes());
        r
    }

    #[test]
    fn users_first_seen_order_earliest_login() {
        let mut utmp = Vec::new();
        utmp.extend(record(2, b"reboot", 1, 0));
        utmp.extend(record(USER_PROCESS, b"bob", 100, 500_000));
        utmp.extend(record(USER_PROCESS, b"alice", 50, 0));
        utmp.extend(record(USER_PROCESS, b"bob", 90, 250_000));
        utmp.extend(vec![1u8; 10]); // a torn trailing record is ignored
        let users = users_from_utmp(&utmp);
        assert_eq!(
            users,
            vec![
                User {
                    user: "bob".into(),
                    login_time: 90.25
                },
                User {
                    user: "alice".into(),
                    login_time: 50.0
                },
            ]
        );
    }

    #[test]
    fn users_empty_utmp() {
        assert!(users_from_utmp(&[]).is_empty());
    }
}
