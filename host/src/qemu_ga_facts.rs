//! What qemu-ga itself decides, kept in one table: the order in which
//! `guest-info` lists its commands, the commands that still run while
//! filesystems are frozen, the commands the agent answers without any
//! handler, and the command it registers but disables on Linux. Dispatch
//! and the policy read these; nothing else keeps a copy.

/// The order in which qemu-ga lists its commands in `guest-info` (10.0's
/// two additions first, then 7.2's list, the reverse of the schema's
/// order); commands it does not know come after these, by name.
pub const QEMU_GA_ORDER: &[&str] = &[
    "guest-network-get-route",
    "guest-get-load",
    "guest-get-cpustats",
    "guest-get-diskstats",
    "guest-ssh-remove-authorized-keys",
    "guest-ssh-add-authorized-keys",
    "guest-ssh-get-authorized-keys",
    "guest-get-devices",
    "guest-get-osinfo",
    "guest-get-timezone",
    "guest-get-users",
    "guest-get-host-name",
    "guest-exec",
    "guest-exec-status",
    "guest-get-memory-block-info",
    "guest-set-memory-blocks",
    "guest-get-memory-blocks",
    "guest-set-user-password",
    "guest-get-fsinfo",
    "guest-get-disks",
    "guest-set-vcpus",
    "guest-get-vcpus",
    "guest-network-get-interfaces",
    "guest-suspend-hybrid",
    "guest-suspend-ram",
    "guest-suspend-disk",
    "guest-fstrim",
    "guest-fsfreeze-thaw",
    "guest-fsfreeze-freeze-list",
    "guest-fsfreeze-freeze",
    "guest-fsfreeze-status",
    "guest-file-flush",
    "guest-file-seek",
    "guest-file-write",
    "guest-file-read",
    "guest-file-close",
    "guest-file-open",
    "guest-shutdown",
    "guest-info",
    "guest-set-time",
    "guest-get-time",
    "guest-ping",
    "guest-sync",
    "guest-sync-delimited",
];

/// Where `name` goes in `guest-info`'s list: its place in
/// [`QEMU_GA_ORDER`], or after all of them.
pub fn guest_info_rank(name: &str) -> usize {
    QEMU_GA_ORDER
        .iter()
        .position(|known| *known == name)
        .unwrap_or(QEMU_GA_ORDER.len())
}

/// qemu-ga's `ga_freeze_allowlist`: what still runs while frozen.
pub const FREEZE_ALLOWLIST: &[&str] = &[
    "guest-ping",
    "guest-info",
    "guest-sync",
    "guest-sync-delimited",
    "guest-fsfreeze-status",
    "guest-fsfreeze-thaw",
];

/// Commands the host answers itself, without any component: qemu-ga's
/// protocol commands, which the hardened preset keeps so the protocol
/// still works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeCommand {
    SyncDelimited,
    Sync,
    Ping,
    Info,
}

impl NativeCommand {
    /// Every native command, in the order the command table adds them.
    pub const ALL: [NativeCommand; 4] = [
        NativeCommand::SyncDelimited,
        NativeCommand::Sync,
        NativeCommand::Ping,
        NativeCommand::Info,
    ];

    /// The command's QAPI name.
    pub const fn name(self) -> &'static str {
        match self {
            NativeCommand::SyncDelimited => "guest-sync-delimited",
            NativeCommand::Sync => "guest-sync",
            NativeCommand::Ping => "guest-ping",
            NativeCommand::Info => "guest-info",
        }
    }
}

/// The names of [`NativeCommand::ALL`].
pub const NATIVE_COMMANDS: [&str; NativeCommand::ALL.len()] = {
    let mut names = [""; NativeCommand::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = NativeCommand::ALL[i].name();
        i += 1;
    }
    names
};

/// Registered by qemu-ga but disabled on Linux: `guest-info` lists them
/// as disabled and a call answers CommandNotFound, unless a loaded
/// family brings the command.
pub const DISABLED_ON_LINUX: &[&str] = &["guest-get-devices"];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    /// Commands qemu-ga 7.2 and 10.0 answer that the 7.1-era schema
    /// (`../shared/spec/qga-qapi-schema.json`) does not declare.
    const NEWER_THAN_SCHEMA: [&str; 3] = ["guest-get-cpustats", "guest-get-load", "guest-network-get-route"];

    /// The command names the schema declares, in its order. The schema
    /// lies beside the project (one level further up from a worktree);
    /// the test fails loudly when it cannot find it.
    fn schema_commands() -> Vec<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let path = [
            "../shared/spec/qga-qapi-schema.json",
            "../../shared/spec/qga-qapi-schema.json",
        ]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.is_file())
        .expect("../shared/spec/qga-qapi-schema.json beside the project");
        let text = std::fs::read_to_string(&path).unwrap();
        let key = "{ 'command': '";
        let names: Vec<String> = text
            .match_indices(key)
            .map(|(at, _)| {
                let rest = &text[at + key.len()..];
                rest[..rest.find('\'').expect("closing quote")].to_owned()
            })
            .collect();
        assert!(
            names.len() > 30,
            "{}: only {} commands found",
            path.display(),
            names.len()
        );
        names
    }

    #[test]
    fn guest_info_order_is_the_schema_reversed_after_the_newer_commands() {
        let schema = schema_commands();
        let known: Vec<&str> = QEMU_GA_ORDER
            .iter()
            .copied()
            .filter(|name| !NEWER_THAN_SCHEMA.contains(name))
            .collect();
        let reversed: Vec<&str> = schema.iter().rev().map(String::as_str).collect();
        assert_eq!(known, reversed);
        for newer in NEWER_THAN_SCHEMA {
            assert!(QEMU_GA_ORDER.contains(&newer), "{newer}");
            assert!(!schema.iter().any(|s| s == newer), "{newer} is in the schema now");
        }
    }

    #[test]
    fn order_names_each_command_once() {
        let unique: BTreeSet<&str> = QEMU_GA_ORDER.iter().copied().collect();
        assert_eq!(unique.len(), QEMU_GA_ORDER.len());
    }

    #[test]
    fn freeze_native_and_disabled_commands_are_schema_commands() {
        let schema = schema_commands();
        let lists: [&[&str]; 3] = [FREEZE_ALLOWLIST, &NATIVE_COMMANDS, DISABLED_ON_LINUX];
        for name in lists.into_iter().flatten() {
            assert!(schema.iter().any(|s| s == name), "{name} is not in the schema");
            assert!(QEMU_GA_ORDER.contains(name), "{name} is not in QEMU_GA_ORDER");
        }
    }

    #[test]
    fn every_native_command_runs_while_frozen() {
        for name in NATIVE_COMMANDS {
            assert!(FREEZE_ALLOWLIST.contains(&name), "{name}");
        }
    }

    #[test]
    fn native_names_follow_the_enum() {
        assert_eq!(
            NATIVE_COMMANDS,
            ["guest-sync-delimited", "guest-sync", "guest-ping", "guest-info"]
        );
    }

    #[test]
    fn unknown_commands_rank_after_qemu_ga_commands() {
        assert_eq!(guest_info_rank("guest-network-get-route"), 0);
        assert_eq!(guest_info_rank("guest-sync-delimited"), QEMU_GA_ORDER.len() - 1);
        assert_eq!(guest_info_rank("guest-custom-thing"), QEMU_GA_ORDER.len());
    }
}
