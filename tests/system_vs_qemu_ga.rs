//! The read-only system commands (network interfaces, vCPUs, memory blocks,
//! memory block size, CPU statistics, authorized keys of accounts that have
//! none) answered by qga and by the real qemu-ga 7.2 on this machine,
//! compared byte for byte. Only counters that move between two calls are
//! masked (interface traffic counters, CPU times). Nothing here changes the
//! system: the write commands are exercised in the VM (tests/vm_system.rs).

mod support;

use support::{Agent, Client, mask};

const NET_COUNTERS: &[&str] = &[
    "rx-bytes",
    "rx-packets",
    "rx-errs",
    "rx-dropped",
    "tx-bytes",
    "tx-packets",
    "tx-errs",
    "tx-dropped",
];

const CPU_COUNTERS: &[&str] = &[
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guestnice",
];

fn both(request: &str) -> (String, String) {
    let qga = Agent::qga(&[]);
    let reference = Agent::qemu_ga(&[]);
    let a = Client::connect(&qga.socket).call(request);
    let b = Client::connect(&reference.socket).call(request);
    (a, b)
}

#[test]
fn network_interfaces_match_qemu_ga() {
    let (qga, reference) = both(r#"{"execute":"guest-network-get-interfaces"}"#);
    assert!(reference.starts_with(r#"{"return": [{"name": "lo""#), "{reference}");
    assert!(reference.contains("\"hardware-address\""), "{reference}");
    assert_eq!(mask(&qga, NET_COUNTERS), mask(&reference, NET_COUNTERS));
}

#[test]
fn vcpus_match_qemu_ga() {
    let (qga, reference) = both(r#"{"execute":"guest-get-vcpus","id":"v"}"#);
    assert!(reference.contains("\"logical-id\": 0"), "{reference}");
    assert_eq!(qga, reference);
}

#[test]
fn memory_blocks_match_qemu_ga() {
    let (qga, reference) = both(r#"{"execute":"guest-get-memory-blocks"}"#);
    assert!(reference.starts_with(r#"{"return": ["#), "{reference}");
    assert_eq!(qga, reference);
    let (qga, reference) = both(r#"{"execute":"guest-get-memory-block-info"}"#);
    assert!(reference.starts_with(r#"{"return": {"size": "#), "{reference}");
    assert_eq!(qga, reference);
}

#[test]
fn cpustats_match_qemu_ga() {
    let (qga, reference) = both(r#"{"execute":"guest-get-cpustats"}"#);
    assert!(reference.contains(r#""type": "linux""#), "{reference}");
    assert_eq!(mask(&qga, CPU_COUNTERS), mask(&reference, CPU_COUNTERS));
}

#[test]
fn authorized_keys_of_accounts_without_keys_match_qemu_ga() {
    // nobody's home is /nonexistent on Debian; a user that does not exist
    for user in ["nobody", "qga-no-such-user", "daemon"] {
        let request = format!(r#"{{"execute":"guest-ssh-get-authorized-keys","arguments":{{"username":"{user}"}}}}"#);
        let (qga, reference) = both(&request);
        assert!(reference.starts_with(r#"{"error""#), "{reference}");
        assert_eq!(qga, reference, "{user}");
    }
}

#[test]
fn guest_info_lists_the_system_commands_like_qemu_ga() {
    let (qga, reference) = both(r#"{"execute":"guest-info"}"#);
    for name in [
        "guest-network-get-interfaces",
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
        "guest-get-devices",
    ] {
        let entry = |reply: &str| {
            let at = reply
                .find(&format!("\"name\": \"{name}\""))
                .unwrap_or_else(|| panic!("{name} missing: {reply}"));
            let start = reply[..at].rfind('{').unwrap();
            let end = at + reply[at..].find('}').unwrap();
            reply[start..=end].to_owned()
        };
        assert_eq!(entry(&qga), entry(&reference), "{name}");
    }
}

#[test]
fn mask_replaces_only_the_named_numbers() {
    assert_eq!(
        mask(r#"{"cpu": 1, "user": 250, "idle": 9}"#, &["user", "idle"]),
        r#"{"cpu": 1, "user": 0, "idle": 0}"#
    );
}
