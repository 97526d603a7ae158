//! The setting types of grants and policies: how a value is written
//! ([`Kind`]), what it holds once parsed ([`SettingValue`]), and what a
//! [`Setting`] does to a [`Grant`]. Each capability with constraints lists
//! its own settings in `capabilities/<name>/settings.rs`; the registry of
//! all of them is `crate::policy::SETTINGS`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value as Json;

use super::Grant;

/// A parsed setting value.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingValue {
    Strings(Vec<String>),
    Bytes(u64),
    Duration(Duration),
    Bool(bool),
    /// Argument vectors, program first.
    Argvs(Vec<Vec<String>>),
}

/// How a setting's TOML value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An array of strings.
    Strings,
    /// An array of path globs (`*`, `?` within a segment, `**` across).
    Globs,
    /// A size: an integer of bytes or a string like "64MiB".
    Size,
    /// A duration string: "250ms", "5s", "2m".
    Duration,
    Bool,
    /// An array of arrays of strings: argument vectors, program first.
    Argvs,
}

/// One key a `[command."…"]` (or `[defaults]`) table may hold.
pub struct Setting {
    /// Dotted key, `<capability>.<constraint>` for capability constraints.
    pub key: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    /// Narrow (or, for limits, set) the grant. An `Err` is a policy error.
    pub apply: fn(&mut Grant, &SettingValue) -> Result<(), String>,
    /// Give it: set the grant from the value (a grant manifest, a policy's
    /// `[grant."…"]` table). An `Err` is an error in the manifest or policy.
    pub grant: fn(&mut Grant, &SettingValue) -> Result<(), String>,
    /// The effective value in a grant, for `qga policy audit` (None: it is
    /// shown by another setting).
    pub show: Option<fn(&Grant) -> Json>,
}

pub fn strings(v: &SettingValue) -> &[String] {
    match v {
        SettingValue::Strings(s) => s,
        SettingValue::Bytes(_) | SettingValue::Duration(_) | SettingValue::Bool(_) | SettingValue::Argvs(_) => &[],
    }
}

pub fn bytes(v: &SettingValue) -> u64 {
    match v {
        SettingValue::Bytes(n) => *n,
        SettingValue::Strings(_) | SettingValue::Duration(_) | SettingValue::Bool(_) | SettingValue::Argvs(_) => 0,
    }
}

pub fn duration(v: &SettingValue) -> Duration {
    match v {
        SettingValue::Duration(d) => *d,
        SettingValue::Strings(_) | SettingValue::Bytes(_) | SettingValue::Bool(_) | SettingValue::Argvs(_) => {
            Duration::ZERO
        }
    }
}

pub fn boolean(v: &SettingValue) -> bool {
    match v {
        SettingValue::Bool(b) => *b,
        SettingValue::Strings(_) | SettingValue::Bytes(_) | SettingValue::Duration(_) | SettingValue::Argvs(_) => false,
    }
}

pub fn argvs(v: &SettingValue) -> &[Vec<String>] {
    match v {
        SettingValue::Argvs(a) => a,
        SettingValue::Strings(_) | SettingValue::Bytes(_) | SettingValue::Duration(_) | SettingValue::Bool(_) => &[],
    }
}

pub fn paths_json(paths: &[PathBuf]) -> Json {
    Json::from(paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>())
}

/// Exact absolute paths, one per list element (a grant names files, it
/// does not match them).
pub fn exact_paths(v: &SettingValue, what: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for path in strings(v) {
        if !path.starts_with('/') || path.contains(['*', '?', '{']) {
            return Err(format!("{what} are exact absolute paths, not '{path}'"));
        }
        if !out.contains(path) {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// `["*"]`: any name, as qemu-ga.
pub fn names_or_any(v: &SettingValue) -> Option<Vec<String>> {
    let names = strings(v);
    if names.iter().any(|n| n == "*") {
        None
    } else {
        Some(names.to_vec())
    }
}

/// Narrow a granted list of globs by policy globs: the granted globs a
/// policy glob matches as a path, and the policy globs a granted glob
/// matches. Never wider than `granted`. For capability constraints that
/// hold globs (file paths, programs).
pub fn narrow_globs(granted: &[String], policy: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for g in granted {
        if policy.iter().any(|p| crate::capabilities::glob::matches(p, g)) && !out.contains(g) {
            out.push(g.clone());
        }
    }
    for p in policy {
        if granted.iter().any(|g| crate::capabilities::glob::matches(g, p)) && !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

pub fn human_size(n: u64) -> String {
    if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
        format!("{}GiB", n >> 30)
    } else if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{}MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{}KiB", n >> 10)
    } else {
        format!("{n}B")
    }
}

pub fn human_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
