//! Path globs of grants: `*` matches within one path component, `**`
//! across components (any sequence, `/` included), `?` one character other
//! than `/`. Everything else matches itself.

/// Whether `pattern` matches the whole of `text`.
pub fn matches(pattern: &str, text: &str) -> bool {
    matches_bytes(pattern.as_bytes(), text.as_bytes())
}

fn matches_bytes(p: &[u8], t: &[u8]) -> bool {
    match p {
        [] => t.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=t.len()).any(|i| matches_bytes(rest, &t[i..])),
        [b'*', rest @ ..] => {
            let stop = t.iter().position(|&c| c == b'/').unwrap_or(t.len());
            (0..=stop).any(|i| matches_bytes(rest, &t[i..]))
        }
        [b'?', rest @ ..] => matches!(t, [c, tail @ ..] if *c != b'/' && matches_bytes(rest, tail)),
        [c, rest @ ..] => matches!(t, [d, tail @ ..] if d == c && matches_bytes(rest, tail)),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_questions_and_literals() {
        assert!(matches("/**", "/etc/shadow"));
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
        assert!(matches("**", "anything/at/all"));
    }
}
