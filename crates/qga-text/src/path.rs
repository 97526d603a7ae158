//! Paths built as GLib builds them.

/// `g_build_filename` of two parts: exactly one separator between them.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        return name.to_owned();
    }
    let trimmed = dir.trim_end_matches('/');
    if trimmed.is_empty() {
        format!("/{name}")
    } else {
        format!("{trimmed}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_separator() {
        assert_eq!(join("/home/u", ".ssh"), "/home/u/.ssh");
        assert_eq!(join("/home/u//", ".ssh"), "/home/u/.ssh");
        assert_eq!(join("/", ".ssh"), "/.ssh");
        assert_eq!(join("", ".ssh"), ".ssh");
    }
}
