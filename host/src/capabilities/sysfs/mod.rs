//! `qga:agent/sysfs`: sysfs (and procfs) files named by the grant's path
//! patterns, read and write patterns apart.
//!
//! Patterns are globs of the one language ([`super::glob`]); sysfs's use
//! `{n}` (one or more ASCII digits: `/sys/devices/system/cpu/cpu{n}/online`).
//! One trailing `/` is dropped; a path with `.`, `..`, an empty component
//! or a NUL never matches.

pub mod settings;
mod sys;

use super::qga::agent::sysfs::{DirEntry, Host, OsError};
use super::view::GrantView;
use super::{Capability, Denied, Grant};

/// Does `path` match `pattern`? The one glob language of grants
/// ([`super::glob`]); sysfs patterns use its `{n}`.
pub fn pattern_matches(pattern: &str, path: &str) -> bool {
    super::glob::matches(pattern, path)
}

/// Which sysfs paths a command may read and write.
#[derive(Debug, Clone, PartialEq)]
pub struct SysfsGrant {
    /// Path patterns it may read (open, list, read); see [`pattern_matches`].
    pub read: Vec<String>,
    /// Path patterns it may write.
    pub write: Vec<String>,
}

impl SysfsGrant {
    /// No path.
    pub fn nothing() -> SysfsGrant {
        SysfsGrant {
            read: Vec::new(),
            write: Vec::new(),
        }
    }
}

fn check(ctx: &GrantView<'_>, path: &str, write: bool) -> Result<(), Denied> {
    ctx.grant.require(ctx.command, Capability::Sysfs)?;
    let patterns = if write {
        &ctx.grant.sysfs.write
    } else {
        &ctx.grant.sysfs.read
    };
    if patterns.iter().any(|p| pattern_matches(p, path)) {
        return Ok(());
    }
    let command = ctx.command.to_string();
    let path = path.to_owned();
    Err(if write {
        Denied::WritePath { command, path }
    } else {
        Denied::Path { command, path }
    })
}

/// Whether a grant lets `path` be written (for `qga policy` and tests).
pub fn may_write(grant: &Grant, path: &str) -> bool {
    grant.sysfs.write.iter().any(|p| pattern_matches(p, path))
}

fn os_error(e: std::io::Error) -> OsError {
    let errno = e.raw_os_error().unwrap_or(libc::EIO);
    OsError {
        errno,
        message: sys::strerror(errno),
    }
}

impl Host for GrantView<'_> {
    fn open_dir(&mut self, path: String) -> wasmtime::Result<Result<(), OsError>> {
        check(self, &path, false)?;
        Ok(sys::open_dir(&path).map_err(os_error))
    }

    fn list_dir(&mut self, path: String) -> wasmtime::Result<Result<Vec<DirEntry>, OsError>> {
        check(self, &path, false)?;
        Ok(sys::list_dir(&path)
            .map(|entries| {
                entries
                    .into_iter()
                    .map(|(name, is_dir)| DirEntry { name, is_dir })
                    .collect()
            })
            .map_err(os_error))
    }

    fn read(&mut self, path: String, max: u32) -> wasmtime::Result<Result<Vec<u8>, OsError>> {
        check(self, &path, false)?;
        Ok(sys::read(&path, max.min(1 << 20) as usize).map_err(os_error))
    }

    fn write(&mut self, path: String, data: Vec<u8>) -> wasmtime::Result<Result<(), OsError>> {
        check(self, &path, true)?;
        Ok(sys::write(&path, &data).map_err(os_error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_placeholder_matches_only_digits() {
        let p = "/sys/devices/system/cpu/cpu{n}/online";
        assert!(pattern_matches(p, "/sys/devices/system/cpu/cpu0/online"));
        assert!(pattern_matches(p, "/sys/devices/system/cpu/cpu17/online"));
        assert!(!pattern_matches(p, "/sys/devices/system/cpu/cpu/online"));
        assert!(!pattern_matches(p, "/sys/devices/system/cpu/cpufreq/online"));
        assert!(!pattern_matches(p, "/sys/devices/system/cpu/cpu1x/online"));
        assert!(!pattern_matches(p, "/sys/devices/system/cpu/cpu1/online/x"));
        assert!(!pattern_matches(p, "/sys/devices/system/cpu/cpu1"));
    }

    #[test]
    fn traversal_and_odd_forms_never_match() {
        let p = "/sys/devices/system/cpu/cpu{n}/online";
        assert!(!pattern_matches(p, "/sys/devices/system/cpu/cpu1/../cpu1/online"));
        assert!(!pattern_matches(p, "/sys/devices/system/cpu/cpu1/./online"));
        assert!(!pattern_matches(p, "/sys/devices/system/cpu//cpu1/online"));
        assert!(!pattern_matches(p, "sys/devices/system/cpu/cpu1/online"));
        assert!(!pattern_matches(p, "/sys/devices/system/cpu/cpu1/online\0"));
        assert!(!pattern_matches("/sys/power/state", "/sys/power/state/.."));
    }

    #[test]
    fn one_trailing_slash_is_the_directory() {
        assert!(pattern_matches(
            "/sys/devices/system/cpu/cpu{n}",
            "/sys/devices/system/cpu/cpu1/"
        ));
        assert!(pattern_matches(
            "/sys/devices/system/memory",
            "/sys/devices/system/memory/"
        ));
        assert!(!pattern_matches(
            "/sys/devices/system/memory",
            "/sys/devices/system/memory//"
        ));
    }

    #[test]
    fn builtin_write_grants_are_exactly_qemu_ga_files() {
        let env = |_: &str| None;
        let g = crate::policy::manifests::builtin("guest-set-vcpus", &env);
        assert!(may_write(&g, "/sys/devices/system/cpu/cpu1/online"));
        assert!(!may_write(&g, "/sys/devices/system/memory/memory1/state"));
        assert!(!may_write(&g, "/sys/power/state"));
        let g = crate::policy::manifests::builtin("guest-set-memory-blocks", &env);
        assert!(may_write(&g, "/sys/devices/system/memory/memory12/state"));
        assert!(!may_write(&g, "/sys/devices/system/cpu/cpu1/online"));
        for ro in [
            "guest-get-vcpus",
            "guest-get-memory-blocks",
            "guest-get-memory-block-info",
            "guest-network-get-interfaces",
            "guest-get-cpustats",
            "guest-suspend-hybrid",
        ] {
            assert!(
                crate::policy::manifests::builtin(ro, &env).sysfs.write.is_empty(),
                "{ro}"
            );
        }
        let g = crate::policy::manifests::builtin("guest-suspend-ram", &env);
        assert_eq!(g.sysfs.write, ["/sys/power/state"]);
    }
}
