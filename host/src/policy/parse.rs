//! The policy's TOML parser: tables, settings and their values, with the
//! file and line of every error.

use std::collections::BTreeMap;
use std::path::PathBuf;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::patterns::check_glob;
use super::placeholders;
use super::settings::{Kind, SETTINGS, SettingValue, setting};
use super::units::{parse_duration, parse_size};
use super::{Applied, CommandRule, ComponentRule, GrantRule, Origin, Policy, PolicyError, Preset, Ungranted};
use crate::capabilities::Grant;
use crate::trust::HandlersTrust;

pub(super) struct Parser<'a> {
    pub(super) name: &'a str,
    pub(super) text: &'a str,
    /// A grant manifest: `${NAME}` placeholders allowed, only
    /// `[command."…"]` tables, each giving a grant.
    pub(super) manifest: bool,
}

/// What a table's settings do to a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// `[defaults]`, `[command."…"]`: narrow the command's grant.
    Narrow,
    /// A manifest's `[command."…"]`, a policy's `[grant."…"]`: give it.
    Give,
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

    pub(super) fn policy(&self) -> Result<Policy, PolicyError> {
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
                "grant" => {
                    for (name, value) in table {
                        let rule = self.grant(name.get_ref(), self.table(value, name.get_ref())?, name.span().start)?;
                        policy.grants.insert(name.get_ref().to_string(), rule);
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
                        format!("unknown table '{other}' (expected defaults, command, grant, component or handlers)"),
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
        policy.defaults = self.settings(&rest, "", Direction::Narrow)?;
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
        rule.settings = self.settings(&rest, "", Direction::Narrow)?;
        Ok(rule)
    }

    /// Flatten dotted keys (`read-file.paths = …` is a nested table) and
    /// parse each against [`SETTINGS`].
    fn settings(&self, entries: &[Entry<'_>], prefix: &str, direction: Direction) -> Result<Vec<Applied>, PolicyError> {
        let mut out = Vec::new();
        for (key, value) in entries {
            let full = format!("{prefix}{}", key.get_ref());
            if let DeValue::Table(inner) = value.get_ref() {
                let nested: Vec<Entry<'_>> = inner.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                out.extend(self.settings(&nested, &format!("{full}."), direction)?);
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
            let checked = match direction {
                Direction::Narrow => (setting.apply)(&mut probe, &parsed),
                Direction::Give => placeholders::resolve(&parsed, &|_| None)
                    .map_err(|e| e.to_string())
                    .and_then(|value| (setting.grant)(&mut probe, &value)),
            };
            checked.map_err(|reason| self.err(value.span().start, format!("'{full}': {reason}")))?;
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
                    out.push(self.string_item(kind, s)?);
                }
                Ok(SettingValue::Strings(out))
            }
            (Kind::Strings | Kind::Globs, _) => Err("expected an array of strings".into()),
            (Kind::Argvs, DeValue::Array(argvs)) => {
                let mut out = Vec::new();
                for argv in argvs {
                    let DeValue::Array(words) = argv.get_ref() else {
                        return Err("expected an array of argument vectors (arrays of strings)".into());
                    };
                    let mut words_out = Vec::new();
                    for word in words {
                        let DeValue::String(w) = word.get_ref() else {
                            return Err("expected an array of argument vectors (arrays of strings)".into());
                        };
                        words_out.push(self.string_item(Kind::Strings, w)?);
                    }
                    out.push(words_out);
                }
                Ok(SettingValue::Argvs(out))
            }
            (Kind::Argvs, _) => Err("expected an array of argument vectors (arrays of strings)".into()),
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

    /// One string of a list: placeholders only in a manifest; a glob is
    /// checked as written, or with its placeholders at their defaults.
    fn string_item(&self, kind: Kind, s: &str) -> Result<String, String> {
        if s.contains("${") {
            if !self.manifest {
                return Err(format!("'{s}': placeholders are for grant manifests only"));
            }
            placeholders::check(s).map_err(|e| e.to_string())?;
            if kind == Kind::Globs
                && let Some(example) = placeholders::substitute(s, &|_| None).map_err(|e| e.to_string())?
            {
                check_glob(&example)?;
            }
        } else if kind == Kind::Globs {
            check_glob(s)?;
        }
        Ok(s.to_owned())
    }

    /// A `[grant."…"]` table of a policy: the operator gives a command
    /// that no embedded manifest names its grant.
    fn grant(&self, name: &str, table: &DeTable<'_>, offset: usize) -> Result<GrantRule, PolicyError> {
        if name.is_empty() {
            return Err(self.err(offset, "empty command name"));
        }
        if let Some(family) = super::manifests::covering(name) {
            return Err(self.err(
                offset,
                format!(
                    "{name} is granted by the {family} family's manifest, which ships with the agent; narrow it in [command.\"{name}\"] instead"
                ),
            ));
        }
        Ok(GrantRule {
            settings: self.given(table)?,
            origin: self.origin(offset),
        })
    }

    /// The settings of a table that gives a grant (`allow` belongs in the
    /// policy's `[command."…"]`).
    fn given(&self, table: &DeTable<'_>) -> Result<Vec<Applied>, PolicyError> {
        let mut entries: Vec<Entry<'_>> = Vec::new();
        for (key, value) in table {
            if key.get_ref() == "allow" {
                return Err(self.err(
                    key.span().start,
                    "a grant says what a command may do; 'allow' belongs in [command.\"…\"]",
                ));
            }
            entries.push((key.clone(), value.clone()));
        }
        let settings = self.settings(&entries, "", Direction::Give)?;
        // Settings together (`prompt` with a preopen): give the whole grant.
        if let Some((key, _)) = table.iter().next() {
            super::manifests::give(&settings, &|_| None).map_err(|reason| self.err(key.span().start, reason))?;
        }
        Ok(settings)
    }

    /// A grant manifest: `[command."…"]` tables only, each giving its
    /// command's grant.
    pub(super) fn manifest(&self) -> Result<BTreeMap<String, Vec<Applied>>, PolicyError> {
        let root = DeTable::parse(self.text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            self.err(offset, e.message().trim().to_owned())
        })?;
        let mut out = BTreeMap::new();
        for (key, value) in root.get_ref() {
            if key.get_ref() != "command" {
                return Err(self.err(
                    key.span().start,
                    format!(
                        "unknown table '{}' in a grant manifest (expected command)",
                        key.get_ref()
                    ),
                ));
            }
            for (name, value) in self.table(value, key.get_ref())? {
                let settings = self.given(self.table(value, name.get_ref())?)?;
                out.insert(name.get_ref().to_string(), settings);
            }
        }
        Ok(out)
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
