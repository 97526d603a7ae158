//! What a call can make the agent hold or wait for: its own log writes on
//! a filesystem a freeze freezes (a real ext4 loop device, root as in CI),
//! host memory a hostile handler makes the host keep, resources, sockets
//! and preopens it may not have, helpers that never end. Each test is an
//! exploit that hung or exhausted the agent before these limits existed.

mod support;

use std::time::Duration;

use support::loopfs::LoopFs;
use support::{Agent, Client, settle};

/// guest-fsfreeze-thaw thaws every mounted filesystem: tests that freeze
/// run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

fn freeze_list(c: &mut Client, mnt: &str) -> String {
    c.call(&format!(
        r#"{{"execute":"guest-fsfreeze-freeze-list","arguments":{{"mountpoints":["{mnt}"]}}}}"#
    ))
}

fn request_lines(audit: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["event"] == "request")
        .collect()
}

/// qemu-ga 7.2 stops logging while frozen. qga with its audit log and
/// `-l -v` log on the filesystem it freezes: the freeze answers, requests
/// keep being served while frozen, thaw answers and thaws, and the lines
/// of the frozen period reach both files after the thaw.
#[test]
fn audit_and_log_on_the_frozen_filesystem_never_stall_the_agent() {
    let _serial = serial();
    let fs = LoopFs::new("frozen-logs", 64 << 20);
    let audit = fs.path().join("audit.log");
    let log = fs.path().join("qga.log");
    let agent = Agent::qga(&["--audit-log", s(&audit), "-l", s(&log), "-v"]);
    let mut c = agent.connect();
    assert_eq!(c.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
    assert_eq!(request_lines(&audit).len(), 1);

    assert_eq!(freeze_list(&mut c, fs.mnt()), r#"{"return": 1}"#);
    let log_when_frozen = std::fs::read_to_string(&log).unwrap();
    for _ in 0..3 {
        assert_eq!(c.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
    }
    assert_eq!(
        c.call(r#"{"execute":"guest-fsfreeze-status"}"#),
        r#"{"return": "frozen"}"#
    );
    assert_eq!(
        c.call(r#"{"execute":"guest-get-time"}"#),
        r#"{"error": {"class": "CommandNotFound", "desc": "Command guest-get-time has been disabled: the agent is in frozen state"}}"#
    );
    // Nothing of the frozen period is on disk yet: it waits in memory.
    assert_eq!(request_lines(&audit).len(), 1);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), log_when_frozen);

    assert_eq!(c.call(r#"{"execute":"guest-fsfreeze-thaw"}"#), r#"{"return": 1}"#);
    assert_eq!(
        c.call(r#"{"execute":"guest-fsfreeze-status"}"#),
        r#"{"return": "thawed"}"#
    );
    // ping, freeze, 3 pings, status, get-time, thaw, status.
    let lines = settle(Duration::from_secs(30), || request_lines(&audit), |l| l.len() >= 9);
    let commands: Vec<&str> = lines.iter().map(|l| l["command"].as_str().unwrap()).collect();
    assert_eq!(
        commands,
        [
            "guest-ping",
            "guest-fsfreeze-freeze-list",
            "guest-ping",
            "guest-ping",
            "guest-ping",
            "guest-fsfreeze-status",
            "guest-get-time",
            "guest-fsfreeze-thaw",
            "guest-fsfreeze-status"
        ]
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.matches("request").count() >= 9,
        "the -v request lines of the frozen period reached the log:\n{text}"
    );
    // The guest is thawed: a write on the filesystem completes.
    let after = fs.path().join("after");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::write(&after, "x").and_then(|()| std::fs::File::open(&after)?.sync_all()));
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("a write on the thawed filesystem completes")
        .unwrap();
}
