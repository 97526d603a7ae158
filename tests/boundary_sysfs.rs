//! The sysfs preopens of guest-get-disks, attacked: a hostile `storage`
//! component (handlers/fixture-sysfs-escape), loaded with `--handlers` as a
//! pinned artifact, gets guest-get-disks' grant (read-only preopens of
//! `/sys/block`, `/sys/dev/block`, `/sys/devices`) and tries `..` out of
//! each preopen, absolute paths and the symlinks of `/sys/block` and
//! `/sys/dev/block` to reach debugfs, efivars, securityfs and
//! `/etc/shadow`. Every attempt fails; the same probes inside a preopen
//! succeed (positive control), and the agent itself (root) can read the
//! targets that exist here, so the refusals are the sandbox's.

mod support;

use std::path::Path;

use support::loopfs::LoopFs;
use support::{Agent, Scratch, artifacts};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_hostile_storage_component_cannot_leave_the_sysfs_preopens() {
    // At least one block device, so /sys/block has a symlink to follow.
    let _fs = LoopFs::new("sysfs-escape", 8 << 20);
    let dir = Scratch::new("sysfs-escape");
    let handlers = dir.path("handlers");
    std::fs::create_dir_all(&handlers).unwrap();
    let wasm = std::fs::read(env!("QGA_TEST_FIXTURE_SYSFS_ESCAPE")).unwrap();
    let digest = artifacts::install(&handlers, "storage", &wasm);
    let policy = dir.path("policy.toml");
    std::fs::write(&policy, artifacts::pin("storage", &digest)).unwrap();
    let agent = Agent::qga(&["--handlers", s(&handlers), "--policy", s(&policy)]);
    let reply: serde_json::Value =
        serde_json::from_str(&agent.connect().call(r#"{"execute":"guest-get-disks"}"#)).unwrap();
    let report = reply["error"]["desc"].as_str().unwrap_or_else(|| panic!("{reply}"));
    let lines: Vec<(&str, &str, &str)> = report
        .lines()
        .filter_map(|l| {
            let (kind, rest) = l.split_once(' ')?;
            let (path, outcome) = rest.split_once(": ")?;
            Some((kind, path, outcome))
        })
        .collect();
    eprintln!("{report}");
    let attacks: Vec<_> = lines.iter().filter(|(k, _, _)| *k == "attack").collect();
    let controls: Vec<_> = lines.iter().filter(|(k, _, _)| *k == "control").collect();

    // The positive control: the probes work inside the preopens (an
    // absolute path, `..` within the preopen, a listing, a symlink that
    // stays inside /sys/devices).
    assert_eq!(controls.len(), 5, "{report}");
    assert!(controls[4].1.ends_with("/bdi"), "{report}");
    for (_, path, outcome) in &controls {
        assert!(outcome.starts_with("reached"), "control {path}: {outcome}\n{report}");
    }
    // Every attack was tried (including through the /sys/block symlinks)
    // and every one was refused.
    assert!(
        attacks.iter().any(|(_, p, _)| p.starts_with("/sys/block/loop")),
        "no symlink of /sys/block was tried:\n{report}"
    );
    assert!(attacks.len() >= 22, "{report}");
    for (_, path, outcome) in &attacks {
        assert!(outcome.starts_with("refused"), "attack {path}: {outcome}\n{report}");
    }
    // The targets that exist on this machine are there for root: the
    // refusals come from the sandbox, not from their absence.
    let mut present = 0;
    for target in [
        "/sys/kernel/debug",
        "/sys/firmware/efi/efivars",
        "/sys/kernel/security",
        "/etc/shadow",
    ] {
        if std::fs::metadata(target).is_ok() {
            present += 1;
        }
    }
    assert!(present >= 2, "too few targets exist here to prove anything");
    assert!(std::fs::read("/etc/shadow").is_ok());
}
