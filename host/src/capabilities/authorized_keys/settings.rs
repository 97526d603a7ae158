//! The authorized-keys capability's settings (whose keys the ssh-key commands
//! may touch): how a policy narrows them (`apply`) and how a grant manifest or
//! a policy's `[grant."…"]` table gives them (`grant`). Listed in the registry,
//! `crate::policy::SETTINGS`.

use serde_json::Value as Json;

use crate::capabilities::Grant;
use crate::capabilities::setting::*;

type Given = Result<(), String>;

pub const SETTINGS: &[Setting] = &[Setting {
    key: "ssh.users",
    kind: Kind::Strings,
    help: "users whose ~/.ssh/authorized_keys the ssh-key commands may touch",
    apply: |g, v| {
        let users = strings(v);
        g.authorized_keys.users = Some(match &g.authorized_keys.users {
            None => users.to_vec(),
            Some(granted) => granted.iter().filter(|u| users.contains(u)).cloned().collect(),
        });
        Ok(())
    },
    grant: ssh_users,
    show: Some(|g| match &g.authorized_keys.users {
        None => Json::from("*"),
        Some(users) => Json::from(users.clone()),
    }),
}];

pub fn ssh_users(g: &mut Grant, v: &SettingValue) -> Given {
    g.authorized_keys.users = names_or_any(v);
    Ok(())
}
