//! The files capability's settings (which paths guest-file-open may open in
//! which modes, and which handle operations each command may use): how a policy
//! narrows them (`apply`) and how a grant manifest or a policy's `[grant."…"]`
//! table gives them (`grant`). Listed in the registry,
//! `crate::policy::SETTINGS`.

use serde_json::Value as Json;

use crate::capabilities::Grant;
use crate::capabilities::files::{ALL_MODES, FileOp, FileRule};
use crate::capabilities::setting::*;

type Given = Result<(), String>;

pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "files.paths",
        kind: Kind::Globs,
        help: "paths guest-file-open may open (globs, matched after `..` and symlinks are resolved), within the built-in ones",
        apply: |g, v| {
            let rules = std::mem::take(&mut g.files.rules);
            for rule in rules {
                for pattern in narrow_globs(std::slice::from_ref(&rule.pattern), strings(v)) {
                    g.files.rules.push(crate::capabilities::files::FileRule {
                        pattern,
                        modes: rule.modes.clone(),
                    });
                }
            }
            Ok(())
        },
        grant: files_paths,
        show: Some(|g| Json::from(g.files.rules.iter().map(|r| r.pattern.clone()).collect::<Vec<_>>())),
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
            for rule in &mut g.files.rules {
                rule.modes.retain(|m| modes.contains(m));
            }
            Ok(())
        },
        grant: files_modes,
        show: Some(|g| {
            let mut modes: Vec<String> = g.files.rules.iter().flat_map(|r| r.modes.iter().cloned()).collect();
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
            g.files.ops.retain(|op| names.iter().any(|n| n == op.name()));
            Ok(())
        },
        grant: files_operations,
        show: Some(|g| Json::from(g.files.ops.iter().map(|op| op.name()).collect::<Vec<_>>())),
    },
];

/// Every pattern in every mode; `files.modes` then narrows the modes.
pub fn files_paths(g: &mut Grant, v: &SettingValue) -> Given {
    g.files.rules = strings(v).iter().map(|p| FileRule::any_mode(p)).collect();
    Ok(())
}

pub fn files_modes(g: &mut Grant, v: &SettingValue) -> Given {
    let modes = strings(v);
    if let Some(bad) = modes.iter().find(|m| !ALL_MODES.contains(&m.as_str())) {
        return Err(format!(
            "unknown file mode '{bad}' (expected one of r, r+, w, w+, a, a+)"
        ));
    }
    for rule in &mut g.files.rules {
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
        g.files.ops.insert(op);
    }
    Ok(())
}
