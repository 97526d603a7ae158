//! A freeze whose fsfreeze hook blocks holds nothing else up: the hook runs
//! to completion (qemu-ga's semantics, the freeze answers only after it) on
//! the freezing call's own blocking thread, while other clients' requests,
//! guest-fsfreeze-status included, are answered from the event loop. A
//! freeze in progress reads as frozen (non-fsfreeze-safe commands are
//! disabled from before the hook, as qemu-ga, which answers nothing else
//! until the freeze is done, would have it); once the freeze ends the
//! status says what happened: frozen, or thawed when the hook failed. On a
//! loop device, as root.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::loopfs::LoopFs;
use support::{Agent, Client, Scratch, run, settle};

const STATUS: &str = r#"{"execute":"guest-fsfreeze-status"}"#;
const THAW: &str = r#"{"execute":"guest-fsfreeze-thaw"}"#;

/// A hook that logs its argument and, on freeze, waits until a writer
/// opens and closes `fifo` (at most 120 s, so a failed test leaves no
/// process behind for long).
fn blocking_hook(dir: &Scratch, status: u8) -> (PathBuf, PathBuf, PathBuf) {
    let script = dir.path("hook.sh");
    let log = dir.path("hook.log");
    let fifo = dir.path("release");
    run("mkfifo", &[fifo.to_str().unwrap()]);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1\" >> {log}\nif [ \"$1\" = freeze ]; then timeout 120 cat {fifo} > /dev/null; exit {status}; fi\nexit 0\n",
            log = log.display(),
            fifo = fifo.display()
        ),
    )
    .unwrap();
    run("chmod", &["+x", script.to_str().unwrap()]);
    (script, log, fifo)
}

fn freeze_line(fs: &LoopFs) -> String {
    format!(
        r#"{{"execute":"guest-fsfreeze-freeze-list","arguments":{{"mountpoints":["{}"]}}}}"#,
        fs.mnt()
    )
}

/// Start a freeze on its own client and wait until its hook blocks; the
/// freeze's reply comes from the returned thread.
fn freeze_until_hook_blocks(agent: &Agent, fs: &LoopFs, log: &Path) -> std::thread::JoinHandle<String> {
    let mut freezer = agent.connect();
    let line = freeze_line(fs);
    let freeze = std::thread::spawn(move || freezer.call(&line));
    let started = settle(
        Duration::from_secs(20),
        || std::fs::read_to_string(log).unwrap_or_default(),
        |text| text == "freeze\n",
    );
    assert_eq!(started, "freeze\n");
    freeze
}

fn release(fifo: &Path) {
    drop(std::fs::OpenOptions::new().write(true).open(fifo).unwrap());
}

/// A loop filesystem, an agent whose hook blocks on freeze (then exits
/// with `status`), a second client, and a freeze of the filesystem waiting
/// in its hook. Fields drop in order: the client, the agent, then the
/// filesystem.
struct BlockedFreeze {
    other: Client,
    agent: Agent,
    log: PathBuf,
    fifo: PathBuf,
    _dir: Scratch,
    _fs: LoopFs,
}

fn blocked_freeze(tag: &str, status: u8) -> (BlockedFreeze, std::thread::JoinHandle<String>) {
    let fs = LoopFs::new(tag, 32 << 20);
    let dir = Scratch::new(tag);
    let (script, log, fifo) = blocking_hook(&dir, status);
    let hook_arg = format!("-F{}", script.display());
    let agent = Agent::qga(&[&hook_arg]);
    let other = agent.connect();
    let freeze = freeze_until_hook_blocks(&agent, &fs, &log);
    let setup = BlockedFreeze {
        other,
        agent,
        log,
        fifo,
        _dir: dir,
        _fs: fs,
    };
    (setup, freeze)
}

#[test]
fn a_blocked_freeze_hook_holds_up_no_other_request_and_status_follows_it() {
    let (mut setup, freeze) = blocked_freeze("hookblock", 0);
    let other = &mut setup.other;

    // While the hook blocks, the agent answers other clients: ping, the
    // status (a freeze in progress), guest-info, a disabled command.
    assert_eq!(other.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
    assert_eq!(other.call(STATUS), r#"{"return": "frozen"}"#);
    assert!(
        other
            .call(r#"{"execute":"guest-info"}"#)
            .starts_with(r#"{"return": {"version": "#)
    );
    assert_eq!(
        other.call(r#"{"execute":"guest-get-time"}"#),
        r#"{"error": {"class": "CommandNotFound", "desc": "Command guest-get-time has been disabled: the agent is in frozen state"}}"#
    );
    assert!(!freeze.is_finished(), "the freeze answered before its hook finished");

    // The hook finishes: FIFREEZE runs, the freeze answers, the status says frozen.
    release(&setup.fifo);
    assert_eq!(freeze.join().unwrap(), r#"{"return": 1}"#);
    assert_eq!(other.call(STATUS), r#"{"return": "frozen"}"#);
    assert_eq!(other.call(THAW), r#"{"return": 1}"#);
    assert_eq!(other.call(STATUS), r#"{"return": "thawed"}"#);
    assert_eq!(std::fs::read_to_string(&setup.log).unwrap(), "freeze\nthaw\n");
}

#[test]
fn a_blocked_freeze_hook_that_then_fails_leaves_the_agent_thawed() {
    let (mut setup, freeze) = blocked_freeze("hookfail", 3);
    let other = &mut setup.other;
    assert_eq!(other.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
    assert_eq!(other.call(STATUS), r#"{"return": "frozen"}"#);

    release(&setup.fifo);
    assert_eq!(
        freeze.join().unwrap(),
        r#"{"error": {"class": "GenericError", "desc": "fsfreeze hook has failed with status 3"}}"#
    );
    // Nothing was frozen: the status and the commands say so.
    assert_eq!(other.call(STATUS), r#"{"return": "thawed"}"#);
    assert!(
        other
            .call(r#"{"execute":"guest-get-time"}"#)
            .starts_with(r#"{"return": "#)
    );
    let state_file_dir = setup.agent.scratch.path("state");
    assert!(!state_file_dir.join("qga.state.isfrozen").exists());
}
