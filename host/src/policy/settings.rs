//! The settings a `[command."…"]` table (or `[defaults]`, or a grant
//! manifest) may hold: how each value is parsed and how it narrows, or
//! gives, a [`Grant`].

use std::sync::LazyLock;
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::MAX_MEMORY;
use super::give;
use super::patterns::{glob_match, narrow_globs};
use super::units::{human_duration, human_size};
use crate::capabilities::{self, Capability};

pub use crate::capabilities::setting::{Kind, Setting, SettingValue};
use crate::capabilities::setting::{boolean, bytes, duration, strings};

/// Settings of no one capability: limits, WASI, mounts (freeze, trim and
/// fs-stat share them), the handler's environment.
pub const GENERAL: &[Setting] = &[
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
];

/// Set last: they depend on the rest of the grant.
pub const LAST: &[Setting] = &[
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

/// Every setting, in the order a grant is given and `policy check` lists
/// them: the general ones, then each capability's own (its
/// `capabilities/<name>/settings.rs`), then those that look at the whole
/// grant. A capability with constraints adds its module here.
pub static SETTINGS: LazyLock<Vec<&'static Setting>> = LazyLock::new(|| {
    [
        GENERAL,
        capabilities::read_file::settings::SETTINGS,
        capabilities::files::settings::SETTINGS,
        capabilities::process::settings::SETTINGS,
        capabilities::authorized_keys::settings::SETTINGS,
        capabilities::sysfs::settings::SETTINGS,
        capabilities::helper::settings::SETTINGS,
        LAST,
    ]
    .into_iter()
    .flatten()
    .collect()
});

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
    SETTINGS.iter().find(|s| s.key == key).copied()
}
