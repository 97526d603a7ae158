//! The one glob language of policy and grants (file paths, programs,
//! mount points, read-file paths, sysfs paths, preopens):
//!
//! - a pattern is an absolute path of `/`-separated segments;
//! - `*` matches any run of characters within one segment, `?` one
//!   character other than `/`, `{n}` one or more decimal digits (sysfs
//!   `cpu{n}`); anything else matches itself;
//! - a segment `**` matches one or more whole segments, so `DIR/**` is
//!   everything below DIR but not DIR itself (grant `DIR` too for that);
//! - `..` and `.` are no pattern segments ([`check`] refuses them), and a
//!   path with a `.`, `..` or empty segment is never matched: grants are
//!   matched against resolved paths, and a path that is not one fails
//!   closed;
//! - paths are matched as bytes ([`matches_path`]), never as their lossy
//!   UTF-8 text: a name that is not UTF-8 matches only wildcards (`*`, and
//!   `?` byte by byte), never a literal, so two names that read alike (an
//!   invalid byte and U+FFFD) are never confused.

/// Why a pattern is not one of the language.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    #[error("glob '{0}' must be an absolute path")]
    NotAbsolute(String),
    #[error("glob '{0}': '**' must be a whole path segment")]
    PartialStars(String),
    #[error("glob '{0}' must not contain '..'")]
    DotDot(String),
    #[error("glob '{0}' must not contain '.' or empty segments")]
    NotNormal(String),
}

/// Whether `pattern` is a valid glob of the language.
pub fn check(pattern: &str) -> Result<(), GlobError> {
    let Some(rest) = pattern.strip_prefix('/') else {
        return Err(GlobError::NotAbsolute(pattern.to_owned()));
    };
    if rest.is_empty() {
        return Ok(());
    }
    for segment in rest.split('/') {
        if segment == ".." {
            return Err(GlobError::DotDot(pattern.to_owned()));
        }
        if segment.contains("**") && segment != "**" {
            return Err(GlobError::PartialStars(pattern.to_owned()));
        }
        if segment.is_empty() || segment == "." {
            return Err(GlobError::NotNormal(pattern.to_owned()));
        }
    }
    Ok(())
}

/// The segments of an absolute, normal path (one trailing `/` allowed),
/// or `None` when it is not one.
fn segments(path: &[u8]) -> Option<Vec<&[u8]>> {
    let rest = path.strip_prefix(b"/")?;
    let rest = rest.strip_suffix(b"/").unwrap_or(rest);
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let segs: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
    if segs
        .iter()
        .any(|s| s.is_empty() || *s == b"." || *s == b".." || s.contains(&0))
    {
        return None;
    }
    Some(segs)
}

/// Whether `pattern` matches the whole of `path`. A pattern that is not
/// valid ([`check`]) matches nothing.
pub fn matches(pattern: &str, path: &str) -> bool {
    matches_bytes(pattern, path.as_bytes())
}

/// [`matches`] for a path as the kernel has it: its bytes, UTF-8 or not.
pub fn matches_path(pattern: &str, path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    matches_bytes(pattern, path.as_os_str().as_bytes())
}

fn matches_bytes(pattern: &str, path: &[u8]) -> bool {
    if check(pattern).is_err() {
        return false;
    }
    let Some(p) = segments(pattern.as_bytes()) else {
        return false;
    };
    let Some(t) = segments(path) else {
        return false;
    };
    match_segments(&p, &t)
}

fn match_segments(p: &[&[u8]], t: &[&[u8]]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some((&b"**", rest)) => (1..=t.len()).any(|skip| match_segments(rest, &t[skip..])),
        Some((seg, rest)) => match t.split_first() {
            Some((name, trest)) => match_segment(seg, name) && match_segments(rest, trest),
            None => false,
        },
    }
}

fn match_segment(p: &[u8], s: &[u8]) -> bool {
    match p {
        [] => s.is_empty(),
        [b'*', rest @ ..] => (0..=s.len()).any(|skip| match_segment(rest, &s[skip..])),
        [b'?', rest @ ..] => !s.is_empty() && match_segment(rest, &s[1..]),
        [b'{', b'n', b'}', rest @ ..] => {
            let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
            (1..=digits).any(|n| match_segment(rest, &s[n..]))
        }
        [c, rest @ ..] => s.first() == Some(c) && match_segment(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::{GlobError, check, matches, matches_path};
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    fn bytes(b: &[u8]) -> &Path {
        Path::new(OsStr::from_bytes(b))
    }

    #[test]
    fn paths_match_as_bytes_never_as_lossy_text() {
        // An invalid byte is not U+FFFD (which its lossy text would be).
        assert!(!matches_path("/srv/\u{FFFD}", bytes(b"/srv/\xFF")));
        assert!(matches_path("/srv/\u{FFFD}", Path::new("/srv/\u{FFFD}")));
        assert!(!matches_path("/srv/a\u{FFFD}\u{FFFD}b", bytes(b"/srv/a\xFF\xFEb")));
        // Wildcards still cover any name, byte by byte.
        assert!(matches_path("/srv/*", bytes(b"/srv/\xFF")));
        assert!(matches_path("/srv/?", bytes(b"/srv/\xFF")));
        assert!(matches_path("/srv/**", bytes(b"/srv/\xFF/x")));
        assert!(!matches_path("/srv/**", bytes(b"/srv/\xFF/..")));
        assert!(!matches_path("/etc/*", bytes(b"/srv/\xFF")));
    }

    #[test]
    fn stars_questions_digits_and_literals() {
        assert!(matches("/**", "/etc/shadow"));
        assert!(!matches("/**", "/"));
        assert!(matches("/", "/"));
        assert!(matches("/tmp/**", "/tmp/a/b"));
        assert!(!matches("/tmp/**", "/tmp"));
        assert!(!matches("/tmp/**", "/tmpx/a"));
        assert!(matches("/tmp/*", "/tmp/a"));
        assert!(!matches("/tmp/*", "/tmp/a/b"));
        assert!(matches("/var/log/*.log", "/var/log/syslog.log"));
        assert!(!matches("/var/log/*.log", "/var/log/a/b.log"));
        assert!(matches("/dev/tty?", "/dev/tty1"));
        assert!(!matches("/dev/tty?", "/dev/tty12"));
        assert!(matches("/usr/bin/true", "/usr/bin/true"));
        assert!(!matches("/usr/bin/true", "/usr/bin/truex"));
        assert!(matches("/a/**/z", "/a/b/c/z"));
        assert!(!matches("/a/**/z", "/a/z"));
        assert!(matches(
            "/sys/devices/system/cpu/cpu{n}/online",
            "/sys/devices/system/cpu/cpu12/online"
        ));
        assert!(!matches(
            "/sys/devices/system/cpu/cpu{n}",
            "/sys/devices/system/cpu/cpu"
        ));
        assert!(!matches(
            "/sys/devices/system/cpu/cpu{n}",
            "/sys/devices/system/cpu/cpufreq"
        ));
        assert!(matches("/srv/data", "/srv/data/"));
    }

    #[test]
    fn dotdot_never_matches_and_is_no_pattern() {
        assert!(!matches("/srv/**", "/srv/.."));
        assert!(!matches("/srv/**", "/srv/../etc/shadow"));
        assert!(!matches("/srv/**", "/srv/./x"));
        assert!(!matches("/srv/**", "/srv//x"));
        assert!(!matches("/**", "relative/path"));
        assert!(!matches("/srv/../**", "/etc/shadow"));
        assert!(!matches("*", "/"));
        assert_eq!(check("/srv/../x"), Err(GlobError::DotDot("/srv/../x".into())));
        assert_eq!(check("srv/**"), Err(GlobError::NotAbsolute("srv/**".into())));
        assert_eq!(check("/a**"), Err(GlobError::PartialStars("/a**".into())));
        assert_eq!(check("/a//b"), Err(GlobError::NotNormal("/a//b".into())));
        assert!(check("/").is_ok() && check("/**").is_ok() && check("/sys/cpu{n}/*").is_ok());
    }
}
