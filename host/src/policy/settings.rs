//! The settings a `[command."…"]` table (or `[defaults]`, or a grant
//! manifest) may hold: how each value is parsed and how it narrows, or
//! gives, a [`Grant`].

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::MAX_MEMORY;
use super::give;
use super::patterns::{glob_match, narrow_globs};
use super::units::{human_duration, human_size};
use crate::capabilities::{Capability, Grant};

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

pub(super) fn strings(v: &SettingValue) -> &[String] {
    match v {
        SettingValue::Strings(s) => s,
        SettingValue::Bytes(_) | SettingValue::Duration(_) | SettingValue::Bool(_) | SettingValue::Argvs(_) => &[],
    }
}

pub(super) fn bytes(v: &SettingValue) -> u64 {
    match v {
        SettingValue::Bytes(n) => *n,
        SettingValue::Strings(_) | SettingValue::Duration(_) | SettingValue::Bool(_) | SettingValue::Argvs(_) => 0,
    }
}

pub(super) fn duration(v: &SettingValue) -> Duration {
    match v {
        SettingValue::Duration(d) => *d,
        SettingValue::Strings(_) | SettingValue::Bytes(_) | SettingValue::Bool(_) | SettingValue::Argvs(_) => {
            Duration::ZERO
        }
    }
}

pub(super) fn boolean(v: &SettingValue) -> bool {
    match v {
        SettingValue::Bool(b) => *b,
        SettingValue::Strings(_) | SettingValue::Bytes(_) | SettingValue::Duration(_) | SettingValue::Argvs(_) => false,
    }
}

pub(super) fn argvs(v: &SettingValue) -> &[Vec<String>] {
    match v {
        SettingValue::Argvs(a) => a,
        SettingValue::Strings(_) | SettingValue::Bytes(_) | SettingValue::Duration(_) | SettingValue::Bool(_) => &[],
    }
}

fn paths_json(paths: &[PathBuf]) -> Json {
    Json::from(paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>())
}

/// Every setting, in the order `qga policy audit` shows them. Append new
/// capability constraints here (`files.paths`, `process.programs`, …).
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "capabilities",
        kind: Kind::Strings,
        help: "capability interfaces kept from the built-in grant (e.g. [\"clock\"]); others are removed",
        apply: |g, v| {
            let keep = strings(v);
            for name in keep {
                if capability_by_short_name(name).is_none() {
                    return Err(format!(
                        "unknown capability '{name}' (known: {})",
                        Capability::ALL.map(short_name).join(", ")
                    ));
                }
            }
            g.capabilities.retain(|c| keep.iter().any(|k| k == short_name(*c)));
            Ok(())
        },
        grant: give::capabilities,
        show: Some(|g| Json::from(g.capabilities.iter().map(|c| c.interface()).collect::<Vec<_>>())),
    },
    Setting {
        key: "memory",
        kind: Kind::Size,
        help: "linear memory cap of the command's instance",
        apply: |g, v| {
            let n = bytes(v);
            if n == 0 || n > MAX_MEMORY {
                return Err(format!("memory must be between 1 byte and {}", human_size(MAX_MEMORY)));
            }
            g.memory_bytes = n as usize;
            Ok(())
        },
        grant: give::memory,
        show: Some(|g| Json::from(human_size(g.memory_bytes as u64))),
    },
    Setting {
        key: "deadline",
        kind: Kind::Duration,
        help: "wall-clock deadline of the handler's own code",
        apply: |g, v| {
            let d = duration(v);
            if d.is_zero() || d > Duration::from_secs(3600) {
                return Err("deadline must be between 1ms and 1h".into());
            }
            g.deadline = d;
            Ok(())
        },
        grant: give::deadline,
        show: Some(|g| Json::from(human_duration(g.deadline))),
    },
    Setting {
        key: "reply-limit",
        kind: Kind::Size,
        help: "largest JSON reply the command may produce",
        apply: |g, v| {
            let n = bytes(v);
            if n == 0 {
                return Err("reply-limit must be at least 1 byte".into());
            }
            g.reply_limit = n as usize;
            Ok(())
        },
        grant: give::reply_limit,
        show: Some(|g| Json::from(human_size(g.reply_limit as u64))),
    },
    Setting {
        key: "read-file.paths",
        kind: Kind::Globs,
        help: "files read-file may read: the built-in ones matching these globs",
        apply: |g, v| {
            let globs = strings(v);
            g.read_files
                .retain(|p| globs.iter().any(|glob| glob_match(glob, &p.to_string_lossy())));
            Ok(())
        },
        grant: give::read_file_paths,
        show: Some(|g| paths_json(&g.read_files)),
    },
    Setting {
        key: "read-file.limit",
        kind: Kind::Size,
        help: "most bytes read-file returns per read (lowers the built-in limit)",
        apply: |g, v| {
            g.read_limit = g.read_limit.min(bytes(v));
            Ok(())
        },
        grant: give::read_file_limit,
        show: Some(|g| Json::from(human_size(g.read_limit))),
    },
    Setting {
        key: "wasi.preopens",
        kind: Kind::Globs,
        help: "WASI preopened directories kept (guest paths matching these globs)",
        apply: |g, v| {
            let globs = strings(v);
            g.preopens
                .retain(|p| globs.iter().any(|glob| glob_match(glob, &p.guest)));
            Ok(())
        },
        grant: give::wasi_preopens,
        show: Some(|g| {
            Json::from(
                g.preopens
                    .iter()
                    .map(|p| {
                        json!({"host": p.host.display().to_string(), "guest": p.guest,
                               "mode": if p.writable { "rw" } else { "r" }})
                    })
                    .collect::<Vec<_>>(),
            )
        }),
    },
    Setting {
        key: "wasi.read-only",
        kind: Kind::Bool,
        help: "make every WASI preopen read-only",
        apply: |g, v| {
            if boolean(v) {
                for p in &mut g.preopens {
                    p.writable = false;
                }
            }
            Ok(())
        },
        grant: give::wasi_read_only,
        show: Some(|g| Json::from(g.preopens.iter().all(|p| !p.writable))),
    },
    Setting {
        key: "mounts",
        kind: Kind::Globs,
        help: "mount points freeze, trim and fs-stat may act on (globs over the resolved path), within the built-in ones",
        apply: |g, v| {
            g.mounts = narrow_globs(&g.mounts, strings(v));
            Ok(())
        },
        grant: give::mounts,
        show: Some(|g| Json::from(g.mounts.clone())),
    },
    Setting {
        key: "files.paths",
        kind: Kind::Globs,
        help: "paths guest-file-open may open (globs, matched after `..` and symlinks are resolved), within the built-in ones",
        apply: |g, v| {
            let rules = std::mem::take(&mut g.files);
            for rule in rules {
                for pattern in narrow_globs(std::slice::from_ref(&rule.pattern), strings(v)) {
                    g.files.push(crate::capabilities::files::FileRule {
                        pattern,
                        modes: rule.modes.clone(),
                    });
                }
            }
            Ok(())
        },
        grant: give::files_paths,
        show: Some(|g| Json::from(g.files.iter().map(|r| r.pattern.clone()).collect::<Vec<_>>())),
    },
    Setting {
        key: "files.modes",
        kind: Kind::Strings,
        help: "open modes guest-file-open may use (r, r+, w, w+, a, a+; 'b' variants follow their base mode)",
        apply: |g, v| {
            let modes = strings(v);
            if let Some(bad) = modes
                .iter()
                .find(|m| !crate::capabilities::files::ALL_MODES.contains(&m.as_str()))
            {
                return Err(format!(
                    "unknown file mode '{bad}' (expected one of r, r+, w, w+, a, a+)"
                ));
            }
            for rule in &mut g.files {
                rule.modes.retain(|m| modes.contains(m));
            }
            Ok(())
        },
        grant: give::files_modes,
        show: Some(|g| {
            let mut modes: Vec<String> = g.files.iter().flat_map(|r| r.modes.iter().cloned()).collect();
            modes.sort();
            modes.dedup();
            Json::from(modes)
        }),
    },
    Setting {
        key: "files.operations",
        kind: Kind::Strings,
        help: "operations on guest-file-* handles the command may use (open, read, write, seek, flush, close), within the built-in ones",
        apply: |g, v| {
            let names = strings(v);
            let all = crate::capabilities::files::FileOp::ALL;
            if let Some(bad) = names.iter().find(|n| !all.iter().any(|op| op.name() == n.as_str())) {
                return Err(format!(
                    "unknown file operation '{bad}' (expected one of open, read, write, seek, flush, close)"
                ));
            }
            g.file_ops.retain(|op| names.iter().any(|n| n == op.name()));
            Ok(())
        },
        grant: give::files_operations,
        show: Some(|g| Json::from(g.file_ops.iter().map(|op| op.name()).collect::<Vec<_>>())),
    },
    Setting {
        key: "process.programs",
        kind: Kind::Globs,
        help: "programs guest-exec may run (globs over the resolved path), within the built-in ones",
        apply: |g, v| {
            g.process.programs = narrow_globs(&g.process.programs, strings(v));
            Ok(())
        },
        grant: give::process_programs,
        show: Some(|g| Json::from(g.process.programs.clone())),
    },
    Setting {
        key: "process.env",
        kind: Kind::Strings,
        help: "environment variable names a guest-exec request may set",
        apply: |g, v| {
            let names = strings(v);
            g.process.env_names = Some(match &g.process.env_names {
                None => names.to_vec(),
                Some(granted) => granted.iter().filter(|n| names.contains(n)).cloned().collect(),
            });
            Ok(())
        },
        grant: give::process_env,
        show: Some(|g| match &g.process.env_names {
            None => Json::from("*"),
            Some(names) => Json::from(names.clone()),
        }),
    },
    Setting {
        key: "ssh.users",
        kind: Kind::Strings,
        help: "users whose ~/.ssh/authorized_keys the ssh-key commands may touch",
        apply: |g, v| {
            let users = strings(v);
            g.ssh_users = Some(match &g.ssh_users {
                None => users.to_vec(),
                Some(granted) => granted.iter().filter(|u| users.contains(u)).cloned().collect(),
            });
            Ok(())
        },
        grant: give::ssh_users,
        show: Some(|g| match &g.ssh_users {
            None => Json::from("*"),
            Some(users) => Json::from(users.clone()),
        }),
    },
    Setting {
        key: "env",
        kind: Kind::Strings,
        help: "WASI environment variables kept (names)",
        apply: |g, v| {
            let keep = strings(v);
            g.env.retain(|(k, _)| keep.contains(k));
            Ok(())
        },
        grant: give::env,
        show: Some(|g| Json::from(g.env.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>())),
    },
    Setting {
        key: "sysfs.read",
        kind: Kind::Globs,
        help: "sysfs paths the sysfs capability may open, list and read (globs; `{n}` is a decimal number)",
        apply: |g, v| {
            g.sysfs_read = narrow_globs(&g.sysfs_read, strings(v));
            Ok(())
        },
        grant: give::sysfs_read,
        show: Some(|g| Json::from(g.sysfs_read.clone())),
    },
    Setting {
        key: "sysfs.write",
        kind: Kind::Globs,
        help: "sysfs paths the sysfs capability may write (globs; `{n}` is a decimal number)",
        apply: |g, v| {
            g.sysfs_write = narrow_globs(&g.sysfs_write, strings(v));
            Ok(())
        },
        grant: give::sysfs_write,
        show: Some(|g| Json::from(g.sysfs_write.clone())),
    },
    Setting {
        key: "helper.argv",
        kind: Kind::Argvs,
        help: "exact argument vectors (program first) the helper capability may run",
        apply: |g, v| {
            let keep = argvs(v);
            g.helpers.retain(|argv| keep.contains(argv));
            Ok(())
        },
        grant: give::helper_argv,
        show: Some(|g| Json::from(g.helpers.clone())),
    },
    Setting {
        key: "wasi.preopens-if-present",
        kind: Kind::Globs,
        help: "in a grant: read-only WASI preopens given only where the directory exists when the command is linked; a policy narrows them with wasi.preopens",
        apply: |_, _| Err("a policy narrows preopens with wasi.preopens".into()),
        grant: give::wasi_preopens_if_present,
        show: None,
    },
    Setting {
        key: "prompt",
        kind: Kind::Bool,
        help: "in a grant: the command runs on the event loop, with a 2s deadline (only for grants of quick capabilities and no WASI preopen); a policy takes it off the loop with a longer deadline",
        apply: |_, _| {
            Err("'prompt' is given by a grant; a deadline above 2s takes a command off the event loop".into())
        },
        grant: give::prompt,
        show: Some(|g| Json::from(g.is_prompt())),
    },
];

/// The `clock` of `qga:agent/clock`.
pub fn short_name(cap: Capability) -> &'static str {
    let interface = cap.interface();
    interface.rsplit('/').next().unwrap_or(interface)
}

pub fn capability_by_short_name(name: &str) -> Option<Capability> {
    Capability::ALL.into_iter().find(|c| short_name(*c) == name)
}

/// The setting named `key`.
pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}
