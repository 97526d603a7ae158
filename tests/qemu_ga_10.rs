//! qemu-ga 10.0's additions, compared with the real qemu-ga 10.0 (Debian
//! 13's package, run by ../shared/tools/qemu-ga-10.sh without installing
//! it): the transcripts of tests/fixtures/qemu-ga-10/ replayed against both,
//! and the machine-dependent replies (load averages, routes, the command
//! list) compared live.

mod support;

use support::{Agent, Client, fixture, qemu_ga_10_binary, qga_binary};

fn qemu_ga_10_dir() -> std::path::PathBuf {
    fixture::fixtures_dir().join("qemu-ga-10")
}

#[test]
fn qemu_ga_10_fixtures_replay_against_qga() {
    fixture::replay_all(&qemu_ga_10_dir(), || Agent::qga(&[]));
}

#[test]
fn qemu_ga_10_fixtures_replay_against_real_qemu_ga_10() {
    qemu_ga_10_binary();
    fixture::replay_all(&qemu_ga_10_dir(), || Agent::qemu_ga_10(&[]));
}

#[test]
fn routes_match_qemu_ga_10() {
    let qga = Agent::qga(&[]);
    let reference = Agent::qemu_ga_10(&[]);
    let request = r#"{"execute":"guest-network-get-route","id":"r"}"#;
    let theirs = Client::connect(&reference.socket).call(request);
    assert!(theirs.starts_with(r#"{"return": ["#), "{theirs}");
    // the kernel's tables do not change under a test: byte for byte
    assert_eq!(Client::connect(&qga.socket).call(request), theirs);
}

#[test]
fn load_averages_match_qemu_ga_10() {
    let qga = Agent::qga(&[]);
    let reference = Agent::qemu_ga_10(&[]);
    let request = r#"{"execute":"guest-get-load"}"#;
    let (mut qga_client, mut ref_client) = (Client::connect(&qga.socket), Client::connect(&reference.socket));
    // The kernel recomputes the averages every 5 s: an answer of qga's
    // between two equal answers of qemu-ga's must equal them. Retry a few
    // times when an update falls between the calls.
    for _ in 0..20 {
        let before = ref_client.call(request);
        let ours = qga_client.call(request);
        let after = ref_client.call(request);
        assert!(before.starts_with(r#"{"return": {"load15m": "#), "{before}");
        if before == after {
            assert_eq!(ours, before);
            return;
        }
    }
    panic!("the load averages changed between every pair of calls");
}

fn command_names(reply: &str) -> Vec<String> {
    reply
        .split(r#"{"enabled": "#)
        .skip(1)
        .filter_map(|entry| {
            let at = entry.find(r#""name": ""#)? + 9;
            Some(entry[at..].split('"').next()?.to_owned())
        })
        .collect()
}

/// qga lists every command 10.0 lists, in 10.0's order, and keeps 7.2's
/// guest-get-devices (registered but disabled, as in 7.2), which 10.0 no
/// longer registers on Linux.
#[test]
fn guest_info_lists_commands_in_qemu_ga_10_order() {
    let request = r#"{"execute":"guest-info"}"#;
    let ours = command_names(&Client::connect(&Agent::qga(&[]).socket).call(request));
    let theirs = command_names(&Client::connect(&Agent::qemu_ga_10(&[]).socket).call(request));
    assert_eq!(theirs.len(), 43, "{theirs:?}");
    assert_eq!(theirs[..2], ["guest-network-get-route", "guest-get-load"]);
    let without_devices: Vec<_> = ours.iter().filter(|n| *n != "guest-get-devices").cloned().collect();
    assert_eq!(without_devices, theirs);
    assert!(ours.iter().any(|n| n == "guest-get-devices"));
}

#[test]
fn block_rpcs_help_lists_commands_in_qemu_ga_10_order() {
    let list = |binary: std::path::PathBuf| {
        let out = std::process::Command::new(binary)
            .args(["-b", "help"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|n| *n != "guest-get-devices")
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let theirs = list(qemu_ga_10_binary());
    assert_eq!(
        theirs[theirs.len() - 2..],
        ["guest-get-load", "guest-network-get-route"]
    );
    assert_eq!(list(qga_binary()), theirs);
}
