//! The grant manifests (`handlers/<family>/grants.toml`) give every
//! built-in command exactly the grant it had when grants were a Rust
//! `match` in the host: `tests/fixtures/builtin-grants.txt` is that table,
//! dumped before the manifests existed. Regenerate only for an intended
//! change: `QGA_UPDATE_GOLDEN=1 cargo test --release --test grant_manifests`.

use std::path::Path;

use qga::capabilities::Grant;

/// Every command of the embedded families, and one no manifest names.
const COMMANDS: &[&str] = &[
    "guest-get-time",
    "guest-get-host-name",
    "guest-get-timezone",
    "guest-get-osinfo",
    "guest-get-users",
    "guest-get-load",
    "guest-fsfreeze-status",
    "guest-fsfreeze-freeze",
    "guest-fsfreeze-freeze-list",
    "guest-fsfreeze-thaw",
    "guest-fstrim",
    "guest-get-fsinfo",
    "guest-get-disks",
    "guest-get-diskstats",
    "guest-file-open",
    "guest-file-close",
    "guest-file-read",
    "guest-file-write",
    "guest-file-seek",
    "guest-file-flush",
    "guest-exec-status",
    "guest-exec",
    "guest-network-get-interfaces",
    "guest-network-get-route",
    "guest-get-vcpus",
    "guest-set-vcpus",
    "guest-get-memory-blocks",
    "guest-set-memory-blocks",
    "guest-get-memory-block-info",
    "guest-get-cpustats",
    "guest-shutdown",
    "guest-suspend-disk",
    "guest-suspend-ram",
    "guest-suspend-hybrid",
    "guest-set-time",
    "guest-set-user-password",
    "guest-ssh-get-authorized-keys",
    "guest-ssh-add-authorized-keys",
    "guest-ssh-remove-authorized-keys",
    "fixture-echo",
];

/// A grant as text, without the preopen of udev's database, which exists
/// on some machines only.
fn dump(command: &str, mut grant: Grant, prompt: bool) -> String {
    grant.preopens.retain(|p| p.host != Path::new("/run/udev/data"));
    format!("== {command} (prompt: {prompt})\n{grant:#?}\n")
}

fn table(env: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    for command in COMMANDS {
        let grant = qga::policy::manifests::builtin(command, env);
        let prompt = grant.is_prompt();
        out.push_str(&dump(command, grant, prompt));
    }
    out
}

#[test]
fn manifests_give_every_command_its_grant_of_before() {
    let mut text = table(&|_| None);
    text.push_str("\n# with QGA_OS_RELEASE=/tmp/os-release\n");
    let env = |k: &str| (k == "QGA_OS_RELEASE").then(|| "/tmp/os-release".to_owned());
    text.push_str(&dump(
        "guest-get-osinfo",
        qga::policy::manifests::builtin("guest-get-osinfo", &env),
        qga::policy::manifests::builtin("guest-get-osinfo", &env).is_prompt(),
    ));
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/builtin-grants.txt");
    if std::env::var_os("QGA_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &text).unwrap();
    }
    let want = std::fs::read_to_string(&golden).expect("golden file missing");
    assert!(text == want, "grants changed:\n{text}");
}

#[test]
fn the_udev_preopen_follows_the_machine() {
    let g = qga::policy::manifests::builtin("guest-get-disks", &|_| None);
    let has = g.preopens.iter().any(|p| p.host == Path::new("/run/udev/data"));
    assert_eq!(has, Path::new("/run/udev/data").is_dir());
}

/// Every command an embedded family exports is named by that family's
/// manifest, and every manifest entry is a command its family exports: a
/// command added without a grant, or a grant left behind, fails here.
#[test]
fn each_manifest_names_exactly_its_familys_commands() {
    use qga::policy::manifests;
    let state = std::env::temp_dir().join(format!("qga-grant-manifests-{}", std::process::id()));
    std::fs::create_dir_all(&state).unwrap();
    let rt = qga::runtime::Runtime::new(qga::runtime::RuntimeConfig::new(&state)).unwrap();
    let families = rt.families();
    assert_eq!(families.len(), 9);
    for f in &families {
        for command in &f.commands {
            assert_eq!(manifests::covering(command), Some(f.family.as_str()), "{command}");
        }
        let manifest = manifests::all()
            .iter()
            .filter_map(|m| m.as_ref().ok())
            .find(|m| m.family == f.family)
            .unwrap_or_else(|| panic!("no manifest for {}", f.family));
        let mut named: Vec<&String> = manifest.commands.keys().collect();
        let mut exported: Vec<&String> = f.commands.iter().collect();
        named.sort();
        exported.sort();
        assert_eq!(named, exported, "{}", f.family);
    }
    let _ = std::fs::remove_dir_all(&state);
}
