//! The process capability's settings (which programs guest-exec may run and
//! which environment variables a request may set): how a policy narrows them
//! (`apply`) and how a grant manifest or a policy's `[grant."…"]` table gives
//! them (`grant`). Listed in the registry, `crate::policy::SETTINGS`.

use serde_json::Value as Json;

use crate::capabilities::Grant;
use crate::capabilities::setting::*;

type Given = Result<(), String>;

pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "process.programs",
        kind: Kind::Globs,
        help: "programs guest-exec may run (globs over the resolved path), within the built-in ones",
        apply: |g, v| {
            g.process.programs = narrow_globs(&g.process.programs, strings(v));
            Ok(())
        },
        grant: process_programs,
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
        grant: process_env,
        show: Some(|g| match &g.process.env_names {
            None => Json::from("*"),
            Some(names) => Json::from(names.clone()),
        }),
    },
];

pub fn process_programs(g: &mut Grant, v: &SettingValue) -> Given {
    g.process.programs = strings(v).to_vec();
    Ok(())
}

pub fn process_env(g: &mut Grant, v: &SettingValue) -> Given {
    g.process.env_names = names_or_any(v);
    Ok(())
}
