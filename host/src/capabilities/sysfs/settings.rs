//! The sysfs capability's settings (which sysfs paths it may read and write):
//! how a policy narrows them (`apply`) and how a grant manifest or a policy's
//! `[grant."…"]` table gives them (`grant`). Listed in the registry,
//! `crate::policy::SETTINGS`.

use serde_json::Value as Json;

use crate::capabilities::Grant;
use crate::capabilities::setting::*;

type Given = Result<(), String>;

pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "sysfs.read",
        kind: Kind::Globs,
        help: "sysfs paths the sysfs capability may open, list and read (globs; `{n}` is a decimal number)",
        apply: |g, v| {
            g.sysfs.read = narrow_globs(&g.sysfs.read, strings(v));
            Ok(())
        },
        grant: sysfs_read,
        show: Some(|g| Json::from(g.sysfs.read.clone())),
    },
    Setting {
        key: "sysfs.write",
        kind: Kind::Globs,
        help: "sysfs paths the sysfs capability may write (globs; `{n}` is a decimal number)",
        apply: |g, v| {
            g.sysfs.write = narrow_globs(&g.sysfs.write, strings(v));
            Ok(())
        },
        grant: sysfs_write,
        show: Some(|g| Json::from(g.sysfs.write.clone())),
    },
];

pub fn sysfs_read(g: &mut Grant, v: &SettingValue) -> Given {
    g.sysfs.read = strings(v).to_vec();
    Ok(())
}

pub fn sysfs_write(g: &mut Grant, v: &SettingValue) -> Given {
    g.sysfs.write = strings(v).to_vec();
    Ok(())
}
