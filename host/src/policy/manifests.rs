//! Grant manifests: `handlers/<family>/grants.toml`, data beside each
//! handler, embedded in the agent by `build.rs` (never read from disk, so
//! only a manifest that ships in the binary is trusted). Each gives its
//! family's commands their grants, in the settings language of the policy
//! (parsed by the same code), with `${NAME}` placeholders for the agent's
//! environment ([`super::placeholders`]).
//!
//! A command gets its grant from the embedded manifest of the family that
//! runs it: a family loaded from `--handlers` under a shipped family's
//! name gets that family's manifest. A command no embedded manifest names
//! gets [`ungranted`] unless the policy's `[grant."…"]` table gives it one.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::placeholders;
use super::{Applied, PolicyError, SETTINGS, parse::Parser};
use crate::capabilities::{Grant, PROMPT_DEADLINE};

mod embedded {
    // `pub const MANIFESTS: &[(&str, &str)]`: (family, grants.toml).
    include!(concat!(env!("OUT_DIR"), "/manifests.rs"));
}

/// One family's parsed manifest.
#[derive(Debug)]
pub struct Manifest {
    pub family: &'static str,
    /// Command name → its settings, as written.
    pub commands: BTreeMap<String, Vec<Applied>>,
}

/// Every embedded manifest, parsed once. A manifest that does not parse
/// is a build defect (the unit tests parse each): its family's commands
/// then fail with the error instead of running ungranted.
pub fn all() -> &'static [Result<Manifest, (&'static str, PolicyError)>] {
    static ALL: OnceLock<Vec<Result<Manifest, (&'static str, PolicyError)>>> = OnceLock::new();
    ALL.get_or_init(|| {
        embedded::MANIFESTS
            .iter()
            .map(|(family, text)| {
                let name = format!("handlers/{family}/grants.toml");
                Parser {
                    name: &name,
                    text,
                    manifest: true,
                }
                .manifest()
                .map(|commands| Manifest { family, commands })
                .map_err(|e| (*family, e))
            })
            .collect()
    })
}

fn family_of(entry: &Result<Manifest, (&'static str, PolicyError)>) -> &'static str {
    match entry {
        Ok(m) => m.family,
        Err((family, _)) => family,
    }
}

/// The embedded family whose manifest names `command`.
pub fn covering(command: &str) -> Option<&'static str> {
    all().iter().find_map(|entry| match entry {
        Ok(m) => m.commands.contains_key(command).then_some(m.family),
        Err(_) => None,
    })
}

/// Whether `family` is one of the families that ship in the binary.
pub fn is_embedded(family: &str) -> bool {
    all().iter().any(|entry| family_of(entry) == family)
}

/// The grant of a command no grant names: nothing but the defaults. It
/// can only compute, so it runs on the event loop like a prompt command.
pub fn ungranted() -> Grant {
    let mut g = Grant::none();
    g.deadline = PROMPT_DEADLINE;
    g
}

/// Give a grant from settings: from nothing, in [`SETTINGS`] order, with
/// placeholders resolved from `env` (the agent's environment).
pub fn give(settings: &[Applied], env: &dyn Fn(&str) -> Option<String>) -> Result<Grant, String> {
    let mut ordered: Vec<(usize, &Applied)> = settings
        .iter()
        .map(|a| (SETTINGS.iter().position(|s| s.key == a.key).unwrap_or(usize::MAX), a))
        .collect();
    ordered.sort_by_key(|(i, _)| *i);
    let mut grant = Grant::none();
    for (index, applied) in ordered {
        let setting = SETTINGS
            .get(index)
            .ok_or_else(|| format!("unknown setting {}", applied.key))?;
        let value = placeholders::resolve(&applied.value, env)
            .map_err(|e| format!("{} ({}): {e}", applied.key, applied.origin))?;
        (setting.grant)(&mut grant, &value).map_err(|e| format!("{} ({}): {e}", applied.key, applied.origin))?;
    }
    Ok(grant)
}

/// The grant `family`'s embedded manifest gives `command`: None when no
/// embedded manifest of that family names it.
pub fn family_grant(
    family: &str,
    command: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Result<Grant, String>> {
    all()
        .iter()
        .find(|e| family_of(e) == family)
        .and_then(|entry| match entry {
            Ok(m) => m.commands.get(command).map(|settings| give(settings, env)),
            Err((_, e)) => Some(Err(e.to_string())),
        })
}

/// The grant the embedded manifests give `command`, whichever family
/// names it; [`ungranted`] when none does.
pub fn builtin(command: &str, env: &dyn Fn(&str) -> Option<String>) -> Grant {
    covering(command)
        .and_then(|family| family_grant(family, command, env))
        .and_then(Result::ok)
        .unwrap_or_else(ungranted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_manifest_parses_and_names_each_command_once() {
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for entry in all() {
            let m = entry.as_ref().unwrap_or_else(|(f, e)| panic!("{f}: {e}"));
            assert!(!m.commands.is_empty(), "{}", m.family);
            for (command, settings) in &m.commands {
                if let Some(other) = seen.insert(command.clone(), m.family) {
                    panic!("{command} is in the manifests of {other} and {}", m.family);
                }
                give(settings, &|_| None).unwrap_or_else(|e| panic!("{command}: {e}"));
            }
        }
        assert_eq!(seen.len(), 39);
    }

    #[test]
    fn a_family_gets_only_its_own_manifest() {
        let env = |_: &str| None;
        assert!(family_grant("system-info", "guest-get-time", &env).is_some());
        assert!(family_grant("file", "guest-get-time", &env).is_none());
        assert!(family_grant("custom", "guest-get-time", &env).is_none());
        assert_eq!(builtin("custom-hello", &env), ungranted());
        assert!(is_embedded("storage") && !is_embedded("custom"));
    }
}
