//! The giving side of the general settings ([`super::Setting::grant`];
//! each capability's own are in its `settings.rs`): how a grant
//! manifest (`handlers/<family>/grants.toml`) or a policy's
//! `[grant."…"]` table sets a [`Grant`] from nothing. The narrowing side
//! is the setting's `apply`. Settings are given in [`super::SETTINGS`]
//! order, whatever order the file writes them in, so a setting may rely on
//! those before it (`files.modes` on `files.paths`, `prompt` on all).

use super::MAX_MEMORY;
use super::settings::{capability_by_short_name, short_name};
use super::units::human_size;
use crate::capabilities::setting::{SettingValue, boolean, bytes, duration, exact_paths, strings};
use crate::capabilities::{Capability, Grant, PROMPT_DEADLINE, Preopen};

type Given = Result<(), String>;

pub fn capabilities(g: &mut Grant, v: &SettingValue) -> Given {
    for name in strings(v) {
        let Some(cap) = capability_by_short_name(name) else {
            return Err(format!(
                "unknown capability '{name}' (known: {})",
                Capability::ALL.map(short_name).join(", ")
            ));
        };
        g.capabilities.insert(cap);
    }
    Ok(())
}

pub fn memory(g: &mut Grant, v: &SettingValue) -> Given {
    let n = bytes(v);
    if n == 0 || n > MAX_MEMORY {
        return Err(format!("memory must be between 1 byte and {}", human_size(MAX_MEMORY)));
    }
    g.memory_bytes = n as usize;
    Ok(())
}

pub fn deadline(g: &mut Grant, v: &SettingValue) -> Given {
    let d = duration(v);
    if d.is_zero() || d > std::time::Duration::from_secs(3600) {
        return Err("deadline must be between 1ms and 1h".into());
    }
    g.deadline = d;
    Ok(())
}

pub fn reply_limit(g: &mut Grant, v: &SettingValue) -> Given {
    let n = bytes(v);
    if n == 0 {
        return Err("reply-limit must be at least 1 byte".into());
    }
    g.reply_limit = n as usize;
    Ok(())
}

fn read_only(dir: &str) -> Preopen {
    Preopen {
        host: dir.into(),
        guest: dir.into(),
        writable: false,
    }
}

/// Read-only preopens, each at its own path in the handler.
pub fn wasi_preopens(g: &mut Grant, v: &SettingValue) -> Given {
    g.preopens
        .extend(exact_paths(v, "preopens")?.iter().map(|d| read_only(d)));
    Ok(())
}

/// As [`wasi_preopens`], only those that are directories now.
pub fn wasi_preopens_if_present(g: &mut Grant, v: &SettingValue) -> Given {
    for dir in exact_paths(v, "preopens")? {
        if std::path::Path::new(&dir).is_dir() {
            g.preopens.push(read_only(&dir));
        }
    }
    Ok(())
}

pub fn wasi_read_only(g: &mut Grant, v: &SettingValue) -> Given {
    if !boolean(v) && g.preopens.iter().any(|p| !p.writable) {
        return Err("a grant gives read-only preopens only".into());
    }
    Ok(())
}

pub fn mounts(g: &mut Grant, v: &SettingValue) -> Given {
    g.mounts = strings(v).to_vec();
    Ok(())
}

/// `NAME=VALUE` entries: the handler's WASI environment.
pub fn env(g: &mut Grant, v: &SettingValue) -> Given {
    for entry in strings(v) {
        let Some((name, value)) = entry.split_once('=').filter(|(n, _)| !n.is_empty()) else {
            return Err(format!("a grant's env entries are NAME=VALUE, not '{entry}'"));
        };
        g.env.push((name.to_owned(), value.to_owned()));
    }
    Ok(())
}

/// Only a grant that can be prompt: quick capabilities, no preopen, no
/// sysfs write, small reads (see [`Grant::is_prompt`]).
pub fn prompt(g: &mut Grant, v: &SettingValue) -> Given {
    if !boolean(v) {
        return Ok(());
    }
    g.deadline = PROMPT_DEADLINE;
    if !g.is_prompt() {
        return Err("'prompt' needs a grant of quick capabilities only (clock, host-info, net-info, sysfs reads, load-average, read-file up to 16MiB, freeze without mounts) and no WASI preopen".into());
    }
    Ok(())
}
