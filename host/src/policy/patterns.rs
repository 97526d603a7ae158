//! Path globs in the policy: the one glob language of
//! [`crate::capabilities::glob`], and how a policy narrows granted globs.

pub fn check_glob(glob: &str) -> Result<(), String> {
    crate::capabilities::glob::check(glob).map_err(|e| e.to_string())
}

/// Path glob of the one glob language ([`crate::capabilities::glob`]):
/// `*`, `?` and `{n}` within one segment, `DIR/**` everything below DIR;
/// a path with `..` is never matched.
pub fn glob_match(glob: &str, path: &str) -> bool {
    crate::capabilities::glob::matches(glob, path)
}

/// Narrow a granted list of globs by policy globs: the granted globs a
/// policy glob matches as a path, and the policy globs a granted glob
/// matches. Never wider than `granted`. For capability constraints that
/// hold globs (file paths, programs).
pub fn narrow_globs(granted: &[String], policy: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for g in granted {
        if policy.iter().any(|p| glob_match(p, g)) && !out.contains(g) {
            out.push(g.clone());
        }
    }
    for p in policy {
        if granted.iter().any(|g| glob_match(g, p)) && !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}
