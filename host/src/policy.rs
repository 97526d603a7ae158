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

mod give;
pub mod manifests;
mod parse;
mod patterns;
pub mod placeholders;
mod settings;
mod units;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::capabilities::Grant;
use crate::qemu_ga_facts::NATIVE_COMMANDS;
use crate::trust::HandlersTrust;

pub use patterns::{glob_match, narrow_globs};
pub use settings::{Kind, SETTINGS, Setting, SettingValue, capability_by_short_name, setting, short_name};
pub use units::{human_duration, human_size, parse_duration, parse_size};

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

/// One `[grant."…"]` table: the grant the operator gives a command that no
/// embedded manifest names (a custom family's command).
#[derive(Debug, Clone, PartialEq)]
pub struct GrantRule {
    pub settings: Vec<Applied>,
    pub origin: Origin,
}

/// Where a command's grant comes from ([`Policy::grant_source`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GrantSource<'a> {
    /// The embedded manifest of this family.
    Manifest(&'static str),
    /// Another family's manifest names the command: this family's export
    /// of it gets nothing.
    OtherFamily(&'static str),
    /// The policy's `[grant."…"]` table.
    Policy(&'a GrantRule),
    Nothing,
}

impl std::fmt::Display for GrantSource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GrantSource::Manifest(family) => write!(f, "handlers/{family}/grants.toml (embedded)"),
            GrantSource::OtherFamily(family) => {
                write!(
                    f,
                    "nothing: the {family} family's manifest names this command, another family exports it"
                )
            }
            GrantSource::Policy(rule) => write!(f, "policy [grant] table ({})", rule.origin),
            GrantSource::Nothing => {
                f.write_str("nothing: no embedded manifest names it and the policy grants it nothing")
            }
        }
    }
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
    /// `[grant."…"]`: grants given to commands no embedded manifest names.
    pub grants: BTreeMap<String, GrantRule>,
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
            grants: BTreeMap::new(),
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
        parse::Parser {
            name,
            text,
            manifest: false,
        }
        .policy()
    }

    /// [`Policy::decide`]'s verdict alone, without naming the rule (a
    /// call's path checks it; only a denial needs the rule).
    pub fn allows(&self, command: &str) -> bool {
        match self.commands.get(command).and_then(|rule| rule.allow.as_ref()) {
            Some((allow, _)) => *allow,
            None => match self.preset {
                Preset::Compat => true,
                Preset::Hardened => NATIVE_COMMANDS.contains(&command),
            },
        }
    }

    /// Is `command` allowed, and by which rule.
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
            Preset::Hardened if NATIVE_COMMANDS.contains(&command) => Decision {
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

    /// Where the grant of `command` comes from when `family` runs it
    /// (None: the family whose manifest names it): the embedded manifest of
    /// that family; for a command no embedded manifest names, the policy's
    /// `[grant."…"]` table; otherwise nothing. A command some manifest
    /// names but another family exports gets nothing.
    pub fn grant_source(&self, family: Option<&str>, command: &str) -> GrantSource<'_> {
        match manifests::covering(command) {
            Some(owner) if family.is_none_or(|f| f == owner) => GrantSource::Manifest(owner),
            Some(owner) => GrantSource::OtherFamily(owner),
            None => match self.grants.get(command) {
                Some(rule) => GrantSource::Policy(rule),
                None => GrantSource::Nothing,
            },
        }
    }

    /// The grant a command starts from, before any narrowing
    /// ([`Policy::grant_source`]; [`manifests::ungranted`] for nothing).
    pub fn base_grant(
        &self,
        family: Option<&str>,
        command: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Grant, String> {
        match self.grant_source(family, command) {
            GrantSource::Manifest(owner) => {
                manifests::family_grant(owner, command, env).unwrap_or_else(|| Ok(manifests::ungranted()))
            }
            GrantSource::Policy(rule) => manifests::give(&rule.settings, &|_| None),
            GrantSource::OtherFamily(_) | GrantSource::Nothing => Ok(manifests::ungranted()),
        }
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

#[cfg(test)]
mod tests;
