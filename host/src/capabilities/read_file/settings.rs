//! The read-file capability's settings (which exact files it may read, and how
//! much per read): how a policy narrows them (`apply`) and how a grant manifest
//! or a policy's `[grant."…"]` table gives them (`grant`). Listed in the
//! registry, `crate::policy::SETTINGS`.

use std::path::PathBuf;

use serde_json::Value as Json;

use crate::capabilities::Grant;
use crate::capabilities::setting::*;

type Given = Result<(), String>;

pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "read-file.paths",
        kind: Kind::Globs,
        help: "files read-file may read: the built-in ones matching these globs",
        apply: |g, v| {
            let globs = strings(v);
            g.read_file.paths.retain(|p| {
                globs
                    .iter()
                    .any(|glob| crate::capabilities::glob::matches(glob, &p.to_string_lossy()))
            });
            Ok(())
        },
        grant: read_file_paths,
        show: Some(|g| paths_json(&g.read_file.paths)),
    },
    Setting {
        key: "read-file.limit",
        kind: Kind::Size,
        help: "most bytes read-file returns per read (lowers the built-in limit)",
        apply: |g, v| {
            g.read_file.limit = g.read_file.limit.min(bytes(v));
            Ok(())
        },
        grant: read_file_limit,
        show: Some(|g| Json::from(human_size(g.read_file.limit))),
    },
];

pub fn read_file_paths(g: &mut Grant, v: &SettingValue) -> Given {
    g.read_file.paths = exact_paths(v, "read-file paths")?
        .into_iter()
        .map(PathBuf::from)
        .collect();
    Ok(())
}

pub fn read_file_limit(g: &mut Grant, v: &SettingValue) -> Given {
    g.read_file.limit = bytes(v);
    Ok(())
}
