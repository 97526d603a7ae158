//! The operator's policy (TOML): which commands run, and how far each
//! command's built-in grant is narrowed.
//!
//! ```toml
//! [defaults]
//! preset = "hardened"            # "compat" (default): every command enabled
//! ungranted-imports = "stub"     # or "refuse": a command whose component imports
//!                                # an interface it is not granted fails to load
//! deadline = "10s"               # any setting below, for every command
//!
//! [command."guest-get-osinfo"]
//! allow = true
//! read-file.paths = ["/etc/**"]  # narrows the built-in grant, never widens it
//! memory = "32MiB"
//!
//! [component.system-info]
//! sha256 = "…"                   # refuse any other build of this family
//! ```
//!
//! Settings are data too: [`SETTINGS`] lists every key a command table may
//! hold, how its value is parsed and how it narrows a [`Grant`]. A new
//! capability constraint is one more entry there (append, keep the order).
//!
//! The allow/deny decision itself is made once, in `dispatch`, from
//! [`Policy::decide`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value as Json, json};
use thiserror::Error;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::capabilities::{Capability, Grant};
use crate::trust::HandlersTrust;

/// The commands the host answers itself; the hardened preset keeps them so
/// the protocol still works.
pub const PROTOCOL_COMMANDS: [&str; 4] = ["guest-sync", "guest-sync-delimited", "guest-ping", "guest-info"];

/// Largest memory cap a policy may set (the pooling allocator's ceiling).
pub const MAX_MEMORY: u64 = 1 << 30;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}:{line}: {reason}")]
    Invalid { path: String, line: usize, reason: String },
}

/// What a policy does with commands it does not mention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// Every command enabled, each with its built-in grant (qemu-ga's behaviour).
    Compat,
    /// Only the protocol commands and the commands with `allow = true`.
    Hardened,
}

impl Preset {
    pub fn name(self) -> &'static str {
        match self {
            Preset::Compat => "compat",
            Preset::Hardened => "hardened",
        }
    }
}

/// What the linker does with an interface a component imports but the
/// command is not granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ungranted {
    /// Link a stub that fails the call with a permission error.
    Stub,
    /// Refuse to load the command.
    Refuse,
}

impl Ungranted {
    pub fn name(self) -> &'static str {
        match self {
            Ungranted::Stub => "stub",
            Ungranted::Refuse => "refuse",
        }
    }
}

/// Where a rule was written: `file:line`, or `built-in`.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin(pub Option<(String, usize)>);

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some((path, line)) => write!(f, "{path}:{line}"),
            None => f.write_str("built-in"),
        }
    }
}

/// A parsed setting value.
#[derive(Debug, Clone, PartialEq)]
pub enum SettingValue {
    Strings(Vec<String>),
    Bytes(u64),
    Duration(Duration),
    Bool(bool),
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
}

/// One key a `[command."…"]` (or `[defaults]`) table may hold.
pub struct Setting {
    /// Dotted key, `<capability>.<constraint>` for capability constraints.
    pub key: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    /// Narrow (or, for limits, set) the grant. An `Err` is a policy error.
    pub apply: fn(&mut Grant, &SettingValue) -> Result<(), String>,
    /// The effective value in a grant, for `qga policy audit`.
    pub show: fn(&Grant) -> Json,
}

fn strings(v: &SettingValue) -> &[String] {
    match v {
        SettingValue::Strings(s) => s,
        SettingValue::Bytes(_) | SettingValue::Duration(_) | SettingValue::Bool(_) => &[],
    }
}

fn bytes(v: &SettingValue) -> u64 {
    match v {
        SettingValue::Bytes(n) => *n,
        SettingValue::Strings(_) | SettingValue::Duration(_) | SettingValue::Bool(_) => 0,
    }
}

fn duration(v: &SettingValue) -> Duration {
    match v {
        SettingValue::Duration(d) => *d,
        SettingValue::Strings(_) | SettingValue::Bytes(_) | SettingValue::Bool(_) => Duration::ZERO,
    }
}

fn boolean(v: &SettingValue) -> bool {
    match v {
        SettingValue::Bool(b) => *b,
        SettingValue::Strings(_) | SettingValue::Bytes(_) | SettingValue::Duration(_) => false,
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
        show: |g| Json::from(g.capabilities.iter().map(|c| c.interface()).collect::<Vec<_>>()),
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
        show: |g| Json::from(human_size(g.memory_bytes as u64)),
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
        show: |g| Json::from(human_duration(g.deadline)),
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
        show: |g| Json::from(human_size(g.reply_limit as u64)),
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
        show: |g| paths_json(&g.read_files),
    },
    Setting {
        key: "read-file.limit",
        kind: Kind::Size,
        help: "most bytes read-file returns per read (lowers the built-in limit)",
        apply: |g, v| {
            g.read_limit = g.read_limit.min(bytes(v));
            Ok(())
        },
        show: |g| Json::from(human_size(g.read_limit)),
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
        show: |g| {
            Json::from(
                g.preopens
                    .iter()
                    .map(|p| {
                        json!({"host": p.host.display().to_string(), "guest": p.guest,
                               "mode": if p.writable { "rw" } else { "r" }})
                    })
                    .collect::<Vec<_>>(),
            )
        },
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
        show: |g| Json::from(g.preopens.iter().all(|p| !p.writable)),
    },
    Setting {
        key: "mounts",
        kind: Kind::Globs,
        help: "mount points freeze, trim and fs-stat may act on (globs over the resolved path), within the built-in ones",
        apply: |g, v| {
            g.mounts = narrow_globs(&g.mounts, strings(v));
            Ok(())
        },
        show: |g| Json::from(g.mounts.clone()),
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
        show: |g| Json::from(g.files.iter().map(|r| r.pattern.clone()).collect::<Vec<_>>()),
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
        show: |g| {
            let mut modes: Vec<String> = g.files.iter().flat_map(|r| r.modes.iter().cloned()).collect();
            modes.sort();
            modes.dedup();
            Json::from(modes)
        },
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
        show: |g| Json::from(g.file_ops.iter().map(|op| op.name()).collect::<Vec<_>>()),
    },
    Setting {
        key: "process.programs",
        kind: Kind::Globs,
        help: "programs guest-exec may run (globs over the resolved path), within the built-in ones",
        apply: |g, v| {
            g.process.programs = narrow_globs(&g.process.programs, strings(v));
            Ok(())
        },
        show: |g| Json::from(g.process.programs.clone()),
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
        show: |g| match &g.process.env_names {
            None => Json::from("*"),
            Some(names) => Json::from(names.clone()),
        },
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
        show: |g| match &g.ssh_users {
            None => Json::from("*"),
            Some(users) => Json::from(users.clone()),
        },
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
        show: |g| Json::from(g.env.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>()),
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

/// A setting as written, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub key: &'static str,
    pub value: SettingValue,
    pub origin: Origin,
}

/// One `[command."…"]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRule {
    pub allow: Option<(bool, Origin)>,
    pub settings: Vec<Applied>,
    pub origin: Origin,
}

/// One `[component.<family>]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentRule {
    pub sha256: Option<(String, Origin)>,
}

/// A loaded, checked policy. [`Policy::default`] is the built-in compat one.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The file it came from; None for the built-in default.
    pub source: Option<PathBuf>,
    pub preset: Preset,
    pub preset_origin: Origin,
    pub ungranted: Ungranted,
    /// `[defaults]` settings, applied to every command before its own.
    pub defaults: Vec<Applied>,
    pub commands: BTreeMap<String, CommandRule>,
    pub components: BTreeMap<String, ComponentRule>,
    /// `[handlers]`: which keys sign `--handlers` components, and whether
    /// a signature is required.
    pub handlers: HandlersTrust,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            source: None,
            preset: Preset::Compat,
            preset_origin: Origin(None),
            ungranted: Ungranted::Stub,
            defaults: Vec::new(),
            commands: BTreeMap::new(),
            components: BTreeMap::new(),
            handlers: HandlersTrust::default(),
        }
    }
}

/// The policy's verdict on one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The rule that decided, e.g. `command."guest-exec".allow = false (/etc/qga/policy.toml:7)`.
    pub rule: String,
}

impl Policy {
    /// Read and check a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let mut policy = Policy::parse(&path.display().to_string(), &text)?;
        policy.source = Some(path.to_owned());
        Ok(policy)
    }

    /// Parse policy text; `name` is used in error messages and rule names.
    pub fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
        Parser { name, text }.policy()
    }

    /// Is `command` allowed, and by which rule.
    /// [`Policy::decide`]'s verdict alone, without naming the rule (a
    /// call's path checks it; only a denial needs the rule).
    pub fn allows(&self, command: &str) -> bool {
        match self.commands.get(command).and_then(|rule| rule.allow.as_ref()) {
            Some((allow, _)) => *allow,
            None => match self.preset {
                Preset::Compat => true,
                Preset::Hardened => PROTOCOL_COMMANDS.contains(&command),
            },
        }
    }

    pub fn decide(&self, command: &str) -> Decision {
        if let Some(rule) = self.commands.get(command)
            && let Some((allow, origin)) = &rule.allow
        {
            return Decision {
                allowed: *allow,
                rule: format!("command.\"{command}\".allow = {allow} ({origin})"),
            };
        }
        let preset = format!("defaults.preset = \"{}\" ({})", self.preset.name(), self.preset_origin);
        match self.preset {
            Preset::Compat => Decision {
                allowed: true,
                rule: preset,
            },
            Preset::Hardened if PROTOCOL_COMMANDS.contains(&command) => Decision {
                allowed: true,
                rule: format!("{preset}, protocol command"),
            },
            Preset::Hardened => Decision {
                allowed: false,
                rule: preset,
            },
        }
    }

    /// The command's effective grant: `base` (its built-in grant or the
    /// runtime's override) narrowed by `[defaults]`, then by its own table.
    /// Settings were checked at load, so this only fails on a value that
    /// depends on the grant.
    pub fn grant(&self, command: &str, base: Grant) -> Result<Grant, String> {
        let mut grant = base;
        let own = self.commands.get(command).map(|r| r.settings.as_slice()).unwrap_or(&[]);
        for applied in self.defaults.iter().chain(own) {
            let setting = setting(applied.key).ok_or_else(|| format!("unknown setting {}", applied.key))?;
            (setting.apply)(&mut grant, &applied.value)
                .map_err(|e| format!("{} ({}): {e}", applied.key, applied.origin))?;
        }
        Ok(grant)
    }

    /// The pinned digest of a family, if any.
    pub fn pin(&self, family: &str) -> Option<&str> {
        self.components
            .get(family)
            .and_then(|c| c.sha256.as_ref())
            .map(|(d, _)| d.as_str())
    }

    /// Where the policy came from, for messages.
    pub fn source_name(&self) -> String {
        self.source
            .as_ref()
            .map_or_else(|| "built-in default".to_owned(), |p| p.display().to_string())
    }
}

pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

struct Parser<'a> {
    name: &'a str,
    text: &'a str,
}

type Entry<'i> = (Spanned<std::borrow::Cow<'i, str>>, Spanned<DeValue<'i>>);

impl<'a> Parser<'a> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    fn err(&self, offset: usize, reason: impl Into<String>) -> PolicyError {
        PolicyError::Invalid {
            path: self.name.to_owned(),
            line: self.line(offset),
            reason: reason.into(),
        }
    }

    fn origin(&self, offset: usize) -> Origin {
        Origin(Some((self.name.to_owned(), self.line(offset))))
    }

    fn policy(&self) -> Result<Policy, PolicyError> {
        let root = DeTable::parse(self.text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            self.err(offset, e.message().trim().to_owned())
        })?;
        let mut policy = Policy::default();
        for (key, value) in root.get_ref() {
            let table = self.table(value, key.get_ref())?;
            match key.get_ref().as_ref() {
                "defaults" => self.defaults(table, &mut policy)?,
                "command" => {
                    for (name, value) in table {
                        let rule =
                            self.command(name.get_ref(), self.table(value, name.get_ref())?, name.span().start)?;
                        policy.commands.insert(name.get_ref().to_string(), rule);
                    }
                }
                "handlers" => policy.handlers = self.handlers(table)?,
                "component" => {
                    for (name, value) in table {
                        let rule = self.component(self.table(value, name.get_ref())?)?;
                        policy.components.insert(name.get_ref().to_string(), rule);
                    }
                }
                other => {
                    return Err(self.err(
                        key.span().start,
                        format!("unknown table '{other}' (expected defaults, command, component or handlers)"),
                    ));
                }
            }
        }
        Ok(policy)
    }

    fn table<'t, 'i>(&self, value: &'t Spanned<DeValue<'i>>, name: &str) -> Result<&'t DeTable<'i>, PolicyError> {
        match value.get_ref() {
            DeValue::Table(t) => Ok(t),
            _ => Err(self.err(value.span().start, format!("'{name}' must be a table"))),
        }
    }

    fn string<'t>(&self, value: &'t Spanned<DeValue<'_>>, key: &str) -> Result<&'t str, PolicyError> {
        match value.get_ref() {
            DeValue::String(s) => Ok(s),
            _ => Err(self.err(value.span().start, format!("'{key}' must be a string"))),
        }
    }

    /// `[handlers] trusted-keys = ["….pub"]`, `require-signature = bool`.
    fn handlers(&self, table: &DeTable<'_>) -> Result<HandlersTrust, PolicyError> {
        let mut out = HandlersTrust::default();
        for (key, value) in table {
            match (key.get_ref().as_ref(), value.get_ref()) {
                ("require-signature", DeValue::Boolean(b)) => out.require_signature = *b,
                ("require-signature", _) => {
                    return Err(self.err(value.span().start, "'require-signature' must be true or false"));
                }
                ("trusted-keys", DeValue::Array(items)) => {
                    for item in items.iter() {
                        let path = self.string(item, "trusted-keys")?;
                        if !path.starts_with('/') {
                            return Err(self.err(item.span().start, "'trusted-keys': paths must be absolute"));
                        }
                        out.trusted_keys.push(PathBuf::from(path));
                    }
                }
                ("trusted-keys", _) => {
                    return Err(self.err(value.span().start, "'trusted-keys' must be a list of paths"));
                }
                (other, _) => {
                    return Err(self.err(
                        key.span().start,
                        format!("unknown key '{other}' in [handlers] (expected trusted-keys, require-signature)"),
                    ));
                }
            }
        }
        Ok(out)
    }

    fn defaults(&self, table: &DeTable<'_>, policy: &mut Policy) -> Result<(), PolicyError> {
        let mut rest: Vec<Entry<'_>> = Vec::new();
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "preset" => {
                    policy.preset = match self.string(value, "preset")? {
                        "compat" => Preset::Compat,
                        "hardened" => Preset::Hardened,
                        other => {
                            return Err(self.err(
                                value.span().start,
                                format!("unknown preset '{other}' (expected \"compat\" or \"hardened\")"),
                            ));
                        }
                    };
                    policy.preset_origin = self.origin(key.span().start);
                }
                "ungranted-imports" => {
                    policy.ungranted = match self.string(value, "ungranted-imports")? {
                        "stub" => Ungranted::Stub,
                        "refuse" => Ungranted::Refuse,
                        other => {
                            return Err(self.err(
                                value.span().start,
                                format!("unknown ungranted-imports '{other}' (expected \"stub\" or \"refuse\")"),
                            ));
                        }
                    };
                }
                "allow" => {
                    return Err(self.err(
                        key.span().start,
                        "'allow' belongs in a [command.\"…\"] table; use preset = \"hardened\" to deny by default",
                    ));
                }
                _ => rest.push((key.clone(), value.clone())),
            }
        }
        policy.defaults = self.settings(&rest, "")?;
        Ok(())
    }

    fn command(&self, name: &str, table: &DeTable<'_>, offset: usize) -> Result<CommandRule, PolicyError> {
        if name.is_empty() {
            return Err(self.err(offset, "empty command name"));
        }
        let mut rule = CommandRule {
            allow: None,
            settings: Vec::new(),
            origin: self.origin(offset),
        };
        let mut rest: Vec<Entry<'_>> = Vec::new();
        for (key, value) in table {
            if key.get_ref() == "allow" {
                let DeValue::Boolean(allow) = value.get_ref() else {
                    return Err(self.err(value.span().start, "'allow' must be true or false"));
                };
                rule.allow = Some((*allow, self.origin(key.span().start)));
            } else {
                rest.push((key.clone(), value.clone()));
            }
        }
        rule.settings = self.settings(&rest, "")?;
        Ok(rule)
    }

    /// Flatten dotted keys (`read-file.paths = …` is a nested table) and
    /// parse each against [`SETTINGS`].
    fn settings(&self, entries: &[Entry<'_>], prefix: &str) -> Result<Vec<Applied>, PolicyError> {
        let mut out = Vec::new();
        for (key, value) in entries {
            let full = format!("{prefix}{}", key.get_ref());
            if let DeValue::Table(inner) = value.get_ref() {
                let nested: Vec<Entry<'_>> = inner.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                out.extend(self.settings(&nested, &format!("{full}."))?);
                continue;
            }
            let Some(setting) = setting(&full) else {
                return Err(self.err(
                    key.span().start,
                    format!(
                        "unknown setting '{full}' (known: allow, {})",
                        SETTINGS.iter().map(|s| s.key).collect::<Vec<_>>().join(", ")
                    ),
                ));
            };
            let parsed = self
                .value(setting.kind, value)
                .map_err(|reason| self.err(value.span().start, format!("'{full}': {reason}")))?;
            // Check it against a grant now, so a bad value fails the load
            // rather than the command.
            let mut probe = Grant::none();
            (setting.apply)(&mut probe, &parsed)
                .map_err(|reason| self.err(value.span().start, format!("'{full}': {reason}")))?;
            out.push(Applied {
                key: setting.key,
                value: parsed,
                origin: self.origin(key.span().start),
            });
        }
        Ok(out)
    }

    fn value(&self, kind: Kind, value: &Spanned<DeValue<'_>>) -> Result<SettingValue, String> {
        match (kind, value.get_ref()) {
            (Kind::Strings | Kind::Globs, DeValue::Array(items)) => {
                let mut out = Vec::new();
                for item in items {
                    let DeValue::String(s) = item.get_ref() else {
                        return Err("expected an array of strings".into());
                    };
                    if kind == Kind::Globs {
                        check_glob(s)?;
                    }
                    out.push(s.to_string());
                }
                Ok(SettingValue::Strings(out))
            }
            (Kind::Strings | Kind::Globs, _) => Err("expected an array of strings".into()),
            (Kind::Size, DeValue::Integer(i)) => i
                .as_str()
                .parse::<u64>()
                .ok()
                .filter(|_| i.radix() == 10)
                .map(SettingValue::Bytes)
                .ok_or_else(|| format!("invalid size {i}")),
            (Kind::Size, DeValue::String(s)) => parse_size(s).map(SettingValue::Bytes),
            (Kind::Size, _) => Err("expected a size like \"64MiB\" or a number of bytes".into()),
            (Kind::Duration, DeValue::String(s)) => parse_duration(s).map(SettingValue::Duration),
            (Kind::Duration, _) => Err("expected a duration like \"5s\" or \"250ms\"".into()),
            (Kind::Bool, DeValue::Boolean(b)) => Ok(SettingValue::Bool(*b)),
            (Kind::Bool, _) => Err("expected true or false".into()),
        }
    }

    fn component(&self, table: &DeTable<'_>) -> Result<ComponentRule, PolicyError> {
        let mut rule = ComponentRule { sha256: None };
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "sha256" => {
                    let digest = self.string(value, "sha256")?;
                    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(self.err(value.span().start, "'sha256' must be 64 hexadecimal digits"));
                    }
                    rule.sha256 = Some((digest.to_ascii_lowercase(), self.origin(key.span().start)));
                }
                other => {
                    return Err(self.err(
                        key.span().start,
                        format!("unknown component setting '{other}' (known: sha256)"),
                    ));
                }
            }
        }
        Ok(rule)
    }
}

/// "64MiB", "512KiB", "1GiB", "4096" (bytes), also "kB"/"MB"/"GB" (powers of 1000).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("invalid size '{s}'"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown size unit '{other}' (use B, KiB, MiB, GiB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("size '{s}' is too large"))
}

/// "250ms", "5s", "2m".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| format!("invalid duration '{s}'"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n.saturating_mul(60))),
        "" => Err(format!("duration '{s}' needs a unit (ms, s, m)")),
        other => Err(format!("unknown duration unit '{other}' (use ms, s, m)")),
    }
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

fn check_glob(glob: &str) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse("p.toml", text)
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn default_policy_allows_everything() {
        let p = Policy::default();
        let d = p.decide("guest-exec");
        assert!(d.allowed);
        assert_eq!(d.rule, "defaults.preset = \"compat\" (built-in)");
        assert_eq!(parse("").unwrap(), Policy::default());
    }

    #[test]
    fn hardened_denies_unknown_but_keeps_protocol() {
        let p = parse("[defaults]\npreset = \"hardened\"\n\n[command.\"guest-get-time\"]\nallow = true\n").unwrap();
        assert!(!p.decide("guest-exec").allowed);
        assert_eq!(p.decide("guest-exec").rule, "defaults.preset = \"hardened\" (p.toml:2)");
        assert!(!p.decide("fixture-never-heard-of").allowed);
        assert!(p.decide("guest-ping").allowed);
        let t = p.decide("guest-get-time");
        assert!(t.allowed);
        assert_eq!(t.rule, "command.\"guest-get-time\".allow = true (p.toml:5)");
    }

    #[test]
    fn allows_agrees_with_decide() {
        let policies = [
            Policy::default(),
            parse("[defaults]\npreset = \"hardened\"\n\n[command.\"guest-get-time\"]\nallow = true\n").unwrap(),
            parse("[command.guest-get-users]\nallow = false\n").unwrap(),
        ];
        for p in &policies {
            for command in [
                "guest-exec",
                "guest-ping",
                "guest-get-time",
                "guest-get-users",
                "fixture-x",
            ] {
                assert_eq!(p.allows(command), p.decide(command).allowed, "{command}");
            }
        }
        assert!(!policies[1].allows("guest-exec") && policies[1].allows("guest-ping"));
        assert!(!policies[2].allows("guest-get-users") && policies[2].allows("guest-exec"));
    }

    #[test]
    fn explicit_deny_in_compat() {
        let p = parse("[command.guest-get-users]\nallow = false\n").unwrap();
        assert_eq!(
            p.decide("guest-get-users"),
            Decision {
                allowed: false,
                rule: "command.\"guest-get-users\".allow = false (p.toml:2)".into()
            }
        );
        assert!(p.decide("guest-get-time").allowed);
    }

    #[test]
    fn errors_name_line_and_reason() {
        assert_eq!(
            err("[defaults]\npreset = \"paranoid\"\n"),
            "p.toml:2: unknown preset 'paranoid' (expected \"compat\" or \"hardened\")"
        );
        assert!(err("[command.x]\n\nmemory = \"12 parsecs\"\n").starts_with("p.toml:3: 'memory': unknown size unit"));
        assert!(err("[command.x]\nfrobnicate = 1\n").starts_with("p.toml:2: unknown setting 'frobnicate'"));
        assert!(err("[command.x]\nread-file.pathz = []\n").starts_with("p.toml:2: unknown setting 'read-file.pathz'"));
        assert_eq!(
            err("[command.x]\nallow = \"yes\"\n"),
            "p.toml:2: 'allow' must be true or false"
        );
        assert!(err("x = 1\n[defaults]\n").starts_with("p.toml:1: "));
        assert!(
            err("[defaults]\npreset = \n").starts_with("p.toml:2: "),
            "{}",
            err("[defaults]\npreset = \n")
        );
        assert_eq!(
            err("[component.system-info]\nsha256 = \"abc\"\n"),
            "p.toml:2: 'sha256' must be 64 hexadecimal digits"
        );
        assert!(
            err("[command.x]\ncapabilities = [\"clock\", \"rootshell\"]\n").starts_with(
                "p.toml:2: 'capabilities': unknown capability 'rootshell' (known: clock, host-info, read-file"
            )
        );
        assert_eq!(
            err("[command.x]\nread-file.paths = [\"etc/*\"]\n"),
            "p.toml:2: 'read-file.paths': glob 'etc/*' must be an absolute path"
        );
        assert_eq!(
            err("[command.x]\nmemory = \"2GiB\"\n"),
            "p.toml:2: 'memory': memory must be between 1 byte and 1GiB"
        );
        assert_eq!(
            err("[command.x]\n[command.x]\n").split(':').take(2).collect::<Vec<_>>(),
            ["p.toml", "2"]
        );
    }

    #[test]
    fn narrowing_never_widens() {
        let p = parse(
            "[defaults]\ndeadline = \"3s\"\n[command.\"guest-get-osinfo\"]\nread-file.paths = [\"/etc/**\", \"/etc/shadow\"]\ncapabilities = [\"read-file\", \"clock\"]\nmemory = \"16MiB\"\n",
        )
        .unwrap();
        let base = Grant::none().with(Capability::HostInfo).with(Capability::ReadFile);
        let mut base = base;
        base.read_files = vec!["/etc/os-release".into(), "/usr/lib/os-release".into()];
        let g = p.grant("guest-get-osinfo", base).unwrap();
        assert_eq!(g.read_files, [PathBuf::from("/etc/os-release")]);
        // clock was not in the built-in grant: naming it does not add it.
        assert_eq!(
            g.capabilities.iter().copied().collect::<Vec<_>>(),
            [Capability::ReadFile]
        );
        assert_eq!(g.memory_bytes, 16 << 20);
        assert_eq!(g.deadline, Duration::from_secs(3));
        // Defaults apply to other commands too.
        assert_eq!(
            p.grant("guest-get-time", Grant::none()).unwrap().deadline,
            Duration::from_secs(3)
        );
    }

    #[test]
    fn sizes_durations_globs() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("MiB").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert!(parse_duration("5").is_err());
        assert!(glob_match("/var/log/**", "/var/log/syslog"));
        assert!(glob_match("/var/log/**", "/var/log/a/b/c"));
        assert!(!glob_match("/var/log/**", "/var/logs/x"));
        assert!(!glob_match("/var/log/**", "/var/log/../../etc/shadow"));
        assert!(glob_match("/tmp/*.txt", "/tmp/a.txt"));
        assert!(!glob_match("/tmp/*.txt", "/tmp/a/b.txt"));
        assert!(glob_match("/etc/os-releas?", "/etc/os-release"));
        assert_eq!(
            narrow_globs(&["/**".into()], &["/var/log/**".into(), "/tmp/**".into()]),
            ["/var/log/**", "/tmp/**"]
        );
        assert_eq!(narrow_globs(&["/var/log/**".into()], &["/**".into()]), ["/var/log/**"]);
        assert!(narrow_globs(&["/var/log/**".into()], &["/etc/**".into()]).is_empty());
    }

    #[test]
    fn mounts_narrow_the_storage_grant() {
        let p = parse("[command.guest-fstrim]\nmounts = [\"/srv/**\", \"/boot\"]\n").unwrap();
        let mut g = Grant::none();
        g.mounts = vec!["/".into(), "/**".into()];
        assert_eq!(p.grant("guest-fstrim", g).unwrap().mounts, ["/srv/**", "/boot"]);
        let mut g = Grant::none();
        g.mounts = vec!["/srv/data".into(), "/home".into()];
        assert_eq!(p.grant("guest-fstrim", g).unwrap().mounts, ["/srv/data"]);
    }

    #[test]
    fn pins_are_lowercased() {
        let p = parse(&format!("[component.system-info]\nsha256 = \"{}\"\n", "AB".repeat(32))).unwrap();
        assert_eq!(p.pin("system-info"), Some("ab".repeat(32).as_str()));
        assert_eq!(p.pin("other"), None);
    }

    #[test]
    fn example_policies_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 3);
        let backup = Policy::load(&dir.join("backup-only.toml")).unwrap();
        assert_eq!(backup.preset, Preset::Hardened);
        for c in [
            "guest-fsfreeze-freeze",
            "guest-fsfreeze-thaw",
            "guest-fsfreeze-status",
            "guest-get-fsinfo",
        ] {
            assert!(backup.decide(c).allowed, "{c}");
        }
        assert!(!backup.decide("guest-exec").allowed);
        assert!(!backup.decide("guest-file-open").allowed);
    }
}
