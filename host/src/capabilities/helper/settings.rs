//! The helper capability's settings (the exact argument vectors it may run):
//! how a policy narrows them (`apply`) and how a grant manifest or a policy's
//! `[grant."…"]` table gives them (`grant`). Listed in the registry,
//! `crate::policy::SETTINGS`.

use serde_json::Value as Json;

use crate::capabilities::Grant;
use crate::capabilities::setting::*;

type Given = Result<(), String>;

pub const SETTINGS: &[Setting] = &[Setting {
    key: "helper.argv",
    kind: Kind::Argvs,
    help: "exact argument vectors (program first) the helper capability may run",
    apply: |g, v| {
        let keep = argvs(v);
        g.helper.argvs.retain(|argv| keep.contains(argv));
        Ok(())
    },
    grant: helper_argv,
    show: Some(|g| Json::from(g.helper.argvs.clone())),
}];

pub fn helper_argv(g: &mut Grant, v: &SettingValue) -> Given {
    if argvs(v).iter().any(|argv| argv.first().is_none_or(|p| p.is_empty())) {
        return Err("every helper argument vector starts with its program".into());
    }
    g.helper.argvs = argvs(v).to_vec();
    Ok(())
}
