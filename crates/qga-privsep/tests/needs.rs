//! The broker's capability set, computed from the granted operations.

use qga_privsep::needs::{broker_capabilities, capabilities_for};
use qga_privsep::privilege::CapSet;
use qga_privsep::wire::Operation;

fn names(set: CapSet) -> Vec<String> {
    set.names().collect()
}

const NEVER_UNDER_HARDENED: &[&str] = &[
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_TIME",
    "CAP_SYS_MODULE",
    "CAP_SYS_PTRACE",
    "CAP_NET_ADMIN",
];

#[test]
fn each_operation_needs_only_its_own_capabilities() {
    assert_eq!(names(capabilities_for(Operation::Freeze)), ["CAP_SYS_ADMIN"]);
    assert_eq!(capabilities_for(Operation::Thaw), capabilities_for(Operation::Freeze));
    assert_eq!(capabilities_for(Operation::Trim), capabilities_for(Operation::Freeze));
    assert_eq!(names(capabilities_for(Operation::SetTime)), ["CAP_SYS_TIME"]);
    assert_eq!(names(capabilities_for(Operation::Shutdown)), ["CAP_SYS_BOOT"]);
    assert_eq!(
        names(capabilities_for(Operation::OpenFile)),
        ["CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH"]
    );
    assert_eq!(capabilities_for(Operation::WriteSysfs), CapSet::EMPTY);
    assert_eq!(capabilities_for(Operation::ReopenChannel), CapSet::EMPTY);
    for op in Operation::ALL.iter().filter(|op| **op != Operation::Spawn) {
        for cap in [
            "CAP_SYS_MODULE",
            "CAP_SYS_PTRACE",
            "CAP_NET_ADMIN",
            "CAP_SETUID",
            "CAP_SETPCAP",
        ] {
            assert!(
                !names(capabilities_for(*op)).iter().any(|n| n == cap),
                "{op:?} needs {cap}"
            );
        }
    }
}

#[test]
fn a_hardened_grant_keeps_no_dangerous_capability() {
    // policies/hardened.toml grants reads (get-time, timezone, host-name,
    // osinfo with /etc/os-release): at most file opens reach the broker.
    let kept = names(broker_capabilities([Operation::OpenFile, Operation::ReopenChannel]));
    for cap in NEVER_UNDER_HARDENED {
        assert!(!kept.iter().any(|k| k == cap), "hardened keeps {cap}: {kept:?}");
    }
    assert_eq!(broker_capabilities([]), CapSet::EMPTY);
}

#[test]
fn granting_guest_exec_keeps_what_qemu_ga_children_get() {
    let compat = broker_capabilities(Operation::ALL.iter().copied());
    assert_eq!(compat, capabilities_for(Operation::Spawn));
    let last = qga_privsep::privilege::last_cap().unwrap();
    for cap in 0..=last {
        assert!(compat.contains(cap), "compat broker lacks capability {cap}");
    }
    // Without guest-exec, every other operation together still drops the
    // module, ptrace and network ones.
    let without_exec = broker_capabilities(Operation::ALL.iter().copied().filter(|op| *op != Operation::Spawn));
    assert_eq!(
        names(without_exec),
        [
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_DAC_READ_SEARCH",
            "CAP_FOWNER",
            "CAP_SYS_ADMIN",
            "CAP_SYS_BOOT",
            "CAP_SYS_TIME",
            "CAP_AUDIT_WRITE"
        ]
    );
}
