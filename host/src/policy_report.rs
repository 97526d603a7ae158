//! `qga policy audit | explain | check`: what the live policy lets each
//! command do, as a table for people and as stable JSON for tools.
//!
//! JSON format (version 1): `{"format": 1, "policy": {...}, "commands":
//! [...]}`; each command has `name`, `enabled`, `decision` ("allow", "deny",
//! "disabled"), `rule`, `native`, `component` (`{"family", "sha256"}` or
//! null), `imports` (capability interfaces the component imports),
//! `granted`, `grant-source` (the manifest or policy table the grant comes
//! from), `imported-not-granted`, `constraints` (every setting of
//! [`crate::policy::SETTINGS`] but `capabilities`, as effective for the
//! command), and `grant-error` when the grant cannot be computed.
//! `families` lists each loaded family: `family`, `source` ("embedded" or
//! its path), `sha256`, `signer` and the signing `key` (or null). Keys are
//! sorted; new settings add keys, existing keys keep their meaning.

use serde_json::{Map, Value as Json, json};

use crate::dispatch::{CommandState, Dispatcher};
use crate::policy::{Policy, SETTINGS, Ungranted};
use crate::runtime::{FamilyInfo, Runtime};

pub const FORMAT: u64 = 1;

/// How `granted` names the WASI filesystem of a command with preopens
/// (their paths are the `wasi.preopens` constraint).
pub const WASI_FILESYSTEM: &str = "wasi:filesystem";

/// One command's full report.
pub fn command_report(state: &CommandState, runtime: &Runtime, families: &[FamilyInfo], policy: &Policy) -> Json {
    let ungranted_mode = policy.ungranted;
    let family = families.iter().find(|f| f.commands.contains(&state.name));
    let (decision, rule) = match state.disabled_by {
        Some(flag) => ("disabled", flag.to_owned()),
        None if state.decision.allowed => ("allow", state.decision.rule.clone()),
        None => ("deny", state.decision.rule.clone()),
    };
    let mut m = Map::new();
    m.insert("name".into(), Json::from(state.name.clone()));
    m.insert("enabled".into(), Json::from(decision == "allow"));
    m.insert("decision".into(), Json::from(decision));
    m.insert("rule".into(), Json::from(rule));
    m.insert("native".into(), Json::from(state.native));
    // Capability interfaces (and any other non-WASI interface with
    // functions); `types` only carries type definitions.
    let imports: Vec<String> = family
        .map(|f| {
            f.imports
                .iter()
                .filter(|i| !i.starts_with("wasi:") && i.as_str() != "qga:agent/types")
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    m.insert(
        "component".into(),
        family.map_or(Json::Null, |f| json!({"family": f.family, "sha256": f.digest})),
    );
    let mut constraints = Map::new();
    let mut granted: Vec<String> = Vec::new();
    if let Some(f) = family {
        m.insert(
            "grant-source".into(),
            Json::from(policy.grant_source(Some(&f.family), &state.name).to_string()),
        );
        match runtime.grant(&state.name) {
            Ok(grant) => {
                granted = grant.capabilities.iter().map(|c| c.interface().to_owned()).collect();
                // A WASI preopen is a grant too: the filesystem it reaches.
                if !grant.preopens.is_empty() {
                    granted.push(WASI_FILESYSTEM.to_owned());
                }
                for setting in SETTINGS.iter().filter(|s| s.key != "capabilities") {
                    if let Some(show) = setting.show {
                        constraints.insert(setting.key.into(), show(&grant));
                    }
                }
            }
            Err(e) => {
                m.insert("grant-error".into(), Json::from(e.to_string()));
            }
        }
    }
    let ungranted: Vec<String> = imports
        .iter()
        .filter(|i| !granted.iter().any(|g| g == *i))
        .cloned()
        .collect();
    if ungranted_mode == Ungranted::Refuse && !ungranted.is_empty() && !m.contains_key("grant-error") {
        m.insert(
            "grant-error".into(),
            Json::from(format!(
                "does not load: the component imports {} (ungranted-imports = \"refuse\")",
                ungranted.join(", ")
            )),
        );
    }
    m.insert("imports".into(), Json::from(imports));
    m.insert("granted".into(), Json::from(granted));
    m.insert("imported-not-granted".into(), Json::from(ungranted));
    m.insert("constraints".into(), Json::Object(constraints));
    Json::Object(m)
}

fn policy_summary(policy: &Policy) -> Json {
    let pins: Map<String, Json> = policy
        .components
        .iter()
        .filter_map(|(family, rule)| {
            rule.sha256
                .as_ref()
                .map(|(d, _)| (family.clone(), Json::from(d.clone())))
        })
        .collect();
    json!({
        "source": policy.source.as_ref().map_or("built-in".to_owned(), |p| p.display().to_string()),
        "preset": policy.preset.name(),
        "ungranted-imports": policy.ungranted.name(),
        "pins": pins,
    })
}

/// Where a command's row goes: grouped by family, predictably. First the
/// commands the host answers itself, then each family in load order (the
/// embedded ones as built, then those from `--handlers`) with its commands
/// in the order the component exports them, last the commands no loaded
/// component runs, by name.
fn row_order(state: &CommandState, families: &[FamilyInfo]) -> (usize, usize, String) {
    if state.native {
        return (0, 0, state.name.clone());
    }
    for (i, f) in families.iter().enumerate() {
        if let Some(j) = f.commands.iter().position(|c| *c == state.name) {
            return (1 + i, j, String::new());
        }
    }
    (1 + families.len(), 0, state.name.clone())
}

/// `qga policy audit --json`.
pub fn audit_json(policy: &Policy, dispatcher: &Dispatcher, runtime: &Runtime) -> Json {
    let families = runtime.families();
    let mut states = dispatcher.describe();
    states.sort_by_key(|state| row_order(state, &families));
    let commands: Vec<Json> = states
        .iter()
        .map(|state| command_report(state, runtime, &families, policy))
        .collect();
    let families: Vec<Json> = families
        .iter()
        .map(|f| {
            json!({"family": f.family, "source": f.trust.origin, "sha256": f.digest,
                "signer": f.trust.signer.describe(), "key": f.trust.signer.key_id()})
        })
        .collect();
    json!({"format": FORMAT, "policy": policy_summary(policy), "commands": commands, "families": families})
}

fn list(v: &Json) -> String {
    let items: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str())
                .map(|s| s.strip_prefix("qga:agent/").unwrap_or(s).to_owned())
                .collect()
        })
        .unwrap_or_default();
    if items.is_empty() { "-".into() } else { items.join(",") }
}

/// `qga policy audit`: one row per command.
pub fn audit_table(report: &Json) -> String {
    let mut rows = vec![[
        "COMMAND".to_owned(),
        "STATE".to_owned(),
        "COMPONENT".to_owned(),
        "GRANTED".to_owned(),
        "IMPORTED-NOT-GRANTED".to_owned(),
    ]];
    for c in report["commands"].as_array().into_iter().flatten() {
        let component = match &c["component"] {
            Json::Null if c["native"] == true => "(host)".to_owned(),
            Json::Null => "-".to_owned(),
            comp => format!(
                "{}@{}",
                comp["family"].as_str().unwrap_or("?"),
                comp["sha256"].as_str().unwrap_or("").get(..12).unwrap_or("")
            ),
        };
        rows.push([
            c["name"].as_str().unwrap_or("").to_owned(),
            c["decision"].as_str().unwrap_or("").to_owned(),
            component,
            list(&c["granted"]),
            list(&c["imported-not-granted"]),
        ]);
    }
    let mut widths = [0usize; 5];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let p = &report["policy"];
    out.push_str(&format!(
        "policy: {} (preset {}, ungranted imports: {})\n\n",
        p["source"].as_str().unwrap_or(""),
        p["preset"].as_str().unwrap_or(""),
        p["ungranted-imports"].as_str().unwrap_or("")
    ));
    for row in rows {
        let line: Vec<String> = row.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    let preopens: Vec<(String, String)> = report["commands"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let dirs: Vec<String> = c["constraints"]["wasi.preopens"]
                .as_array()?
                .iter()
                .map(|p| {
                    format!(
                        "{} ({})",
                        p["host"].as_str().unwrap_or(""),
                        p["mode"].as_str().unwrap_or("")
                    )
                })
                .collect();
            let name = c["name"].as_str().unwrap_or("");
            (!dirs.is_empty()).then(|| (name.to_owned(), dirs.join(" ")))
        })
        .collect();
    if !preopens.is_empty() {
        let w = preopens
            .iter()
            .map(|(n, _)| n.len())
            .max()
            .unwrap_or(0)
            .max("COMMAND".len());
        out.push_str(&format!("\n{:<w$}  WASI-PREOPENS\n", "COMMAND"));
        for (name, dirs) in preopens {
            out.push_str(&format!("{name:<w$}  {dirs}\n"));
        }
    }
    out.push_str("\nFAMILY@SHA256  SOURCE  SIGNER\n");
    for f in report["families"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}@{}  {}  {}\n",
            f["family"].as_str().unwrap_or(""),
            f["sha256"].as_str().unwrap_or("").get(..12).unwrap_or(""),
            f["source"].as_str().unwrap_or(""),
            f["signer"].as_str().unwrap_or("")
        ));
    }
    out
}

/// `qga policy explain COMMAND` as text.
pub fn explain_text(c: &Json) -> String {
    let mut out = String::new();
    let name = c["name"].as_str().unwrap_or("");
    out.push_str(&format!("command:    {name}\n"));
    out.push_str(&format!(
        "decision:   {} by {}\n",
        c["decision"].as_str().unwrap_or(""),
        c["rule"].as_str().unwrap_or("")
    ));
    let component = match &c["component"] {
        Json::Null if c["native"] == true => "answered by the host itself".to_owned(),
        Json::Null => "-".to_owned(),
        comp => format!(
            "{} sha256 {}",
            comp["family"].as_str().unwrap_or(""),
            comp["sha256"].as_str().unwrap_or("")
        ),
    };
    out.push_str(&format!("component:  {component}\n"));
    out.push_str(&format!("imports:    {}\n", list(&c["imports"])));
    out.push_str(&format!("granted:    {}\n", list(&c["granted"])));
    if let Some(source) = c["grant-source"].as_str() {
        out.push_str(&format!("grant from: {source}\n"));
    }
    out.push_str(&format!("ungranted:  {}\n", list(&c["imported-not-granted"])));
    if let Some(e) = c["grant-error"].as_str() {
        out.push_str(&format!("grant error: {e}\n"));
    }
    if let Some(constraints) = c["constraints"].as_object()
        && !constraints.is_empty()
    {
        out.push_str("constraints:\n");
        for (k, v) in constraints {
            out.push_str(&format!("  {k} = {v}\n"));
        }
    }
    out
}

/// `qga policy check`: what each `[grant."…"]` table of `policy` allows,
/// as effective after the policy's narrowing: the capabilities, then every
/// setting that differs from a command granted nothing.
pub fn grants_text(policy: &Policy) -> String {
    use crate::policy::manifests;
    let nothing = manifests::ungranted();
    let mut out = String::new();
    for (command, rule) in &policy.grants {
        let granted = manifests::give(&rule.settings, &|_| None).and_then(|g| policy.grant(command, g));
        match granted {
            Ok(grant) => {
                let caps: Vec<&str> = grant.capabilities.iter().map(|c| c.interface()).collect();
                out.push_str(&format!(
                    "grant {command} ({}): {}\n",
                    rule.origin,
                    if caps.is_empty() {
                        "no capability".to_owned()
                    } else {
                        caps.join(", ")
                    }
                ));
                for setting in SETTINGS.iter().filter(|s| s.key != "capabilities") {
                    if let Some(show) = setting.show
                        && show(&grant) != show(&nothing)
                    {
                        out.push_str(&format!("  {} = {}\n", setting.key, show(&grant)));
                    }
                }
            }
            Err(e) => out.push_str(&format!("grant {command} ({}): error: {e}\n", rule.origin)),
        }
    }
    out
}
