//! The giving side of each setting ([`super::Setting::grant`]): how a grant
//! manifest (`handlers/<family>/grants.toml`) or a policy's
//! `[grant."…"]` table sets a [`Grant`] from nothing. The narrowing side
//! is the setting's `apply`. Settings are given in [`super::SETTINGS`]
//! order, whatever order the file writes them in, so a setting may rely on
//! those before it (`files.modes` on `files.paths`, `prompt` on all).

use std::path::PathBuf;

use super::MAX_MEMORY;
use super::settings::{SettingValue, argvs, boolean, bytes, capability_by_short_name, duration, short_name, strings};
use super::units::human_size;
use crate::capabilities::files::{ALL_MODES, FileOp, FileRule};
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

/// Exact absolute paths, one per list element (a grant names files, it
/// does not match them).
fn exact_paths(v: &SettingValue, what: &str) -> Result<Vec<String>, String> {
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

pub fn read_file_paths(g: &mut Grant, v: &SettingValue) -> Given {
    g.read_files = exact_paths(v, "read-file paths")?
        .into_iter()
        .map(PathBuf::from)
        .collect();
    Ok(())
}

pub fn read_file_limit(g: &mut Grant, v: &SettingValue) -> Given {
    g.read_limit = bytes(v);
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

/// Every pattern in every mode; `files.modes` then narrows the modes.
pub fn files_paths(g: &mut Grant, v: &SettingValue) -> Given {
    g.files = strings(v).iter().map(|p| FileRule::any_mode(p)).collect();
    Ok(())
}

pub fn files_modes(g: &mut Grant, v: &SettingValue) -> Given {
    let modes = strings(v);
    if let Some(bad) = modes.iter().find(|m| !ALL_MODES.contains(&m.as_str())) {
        return Err(format!(
            "unknown file mode '{bad}' (expected one of r, r+, w, w+, a, a+)"
        ));
    }
    for rule in &mut g.files {
        rule.modes.retain(|m| modes.contains(m));
    }
    Ok(())
}

pub fn files_operations(g: &mut Grant, v: &SettingValue) -> Given {
    for name in strings(v) {
        let Some(op) = FileOp::ALL.into_iter().find(|op| op.name() == name.as_str()) else {
            return Err(format!(
                "unknown file operation '{name}' (expected one of open, read, write, seek, flush, close)"
            ));
        };
        g.file_ops.insert(op);
    }
    Ok(())
}

pub fn process_programs(g: &mut Grant, v: &SettingValue) -> Given {
    g.process.programs = strings(v).to_vec();
    Ok(())
}

/// `["*"]`: any name, as qemu-ga.
fn names_or_any(v: &SettingValue) -> Option<Vec<String>> {
    let names = strings(v);
    if names.iter().any(|n| n == "*") {
        None
    } else {
        Some(names.to_vec())
    }
}

pub fn process_env(g: &mut Grant, v: &SettingValue) -> Given {
    g.process.env_names = names_or_any(v);
    Ok(())
}

pub fn ssh_users(g: &mut Grant, v: &SettingValue) -> Given {
    g.ssh_users = names_or_any(v);
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

pub fn sysfs_read(g: &mut Grant, v: &SettingValue) -> Given {
    g.sysfs_read = strings(v).to_vec();
    Ok(())
}

pub fn sysfs_write(g: &mut Grant, v: &SettingValue) -> Given {
    g.sysfs_write = strings(v).to_vec();
    Ok(())
}

pub fn helper_argv(g: &mut Grant, v: &SettingValue) -> Given {
    if argvs(v).iter().any(|argv| argv.first().is_none_or(|p| p.is_empty())) {
        return Err("every helper argument vector starts with its program".into());
    }
    g.helpers = argvs(v).to_vec();
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
