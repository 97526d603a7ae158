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

pub use crate::capabilities::setting::narrow_globs;
