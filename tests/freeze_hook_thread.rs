//! A freeze whose fsfreeze hook blocks holds nothing else up: the hook runs
//! to completion (qemu-ga's semantics, the freeze answers only after it) on
//! the freezing call's own blocking thread, while other clients' requests,
//! guest-fsfreeze-status included, are answered from the event loop. A
//! freeze in progress reads as frozen (non-fsfreeze-safe commands are
//! disabled from before the hook, as qemu-ga, which answers nothing else
//! until the freeze is done, would have it); once the freeze ends the
//! status says what happened: frozen, or thawed when the hook failed. On a
//! loop device, as root. Calls blocked in the hook step out of their call
//! slot, so they never starve other calls.

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
/// qemu-ga's thaw walks every mount, so one test's thaw would thaw (and
/// count) another test's loop filesystem: these tests run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

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
    let _serial = serial();
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
    let _serial = serial();
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

/// More than the agent's call slots (8).
const MANY: usize = 12;

/// A hook that logs its argument and, on `arg`, waits until the file
/// `release` exists (at most 120 s).
fn hook_waiting_on(dir: &Scratch, arg: &str) -> (PathBuf, PathBuf, PathBuf) {
    let script = dir.path("hook.sh");
    let log = dir.path("hook.log");
    let release = dir.path("release");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1\" >> {log}\nif [ \"$1\" = {arg} ]; then i=0; while [ ! -e {release} ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done; fi\nexit 0\n",
            log = log.display(),
            release = release.display()
        ),
    )
    .unwrap();
    run("chmod", &["+x", script.to_str().unwrap()]);
    (script, log, release)
}

fn lines_of(log: &Path, word: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == word)
        .count()
}

/// Calls blocked in the fsfreeze hook give their call slot back: with more
/// thaws blocked in their hook than the agent has slots, every one of them
/// runs its hook, and as many calls of another (non-prompt) command answer
/// meanwhile. Before, the eight slots were held by blocked hooks and every
/// other component call waited for them.
#[test]
fn calls_blocked_in_the_hook_leave_their_slots_to_other_calls() {
    let _serial = serial();
    let dir = Scratch::new("hookslots");
    let (script, log, release) = hook_waiting_on(&dir, "thaw");
    let hook_arg = format!("-F{}", script.display());
    let agent = Agent::qga(&[&hook_arg]);
    let thaws: Vec<_> = (0..MANY)
        .map(|_| {
            let mut c = agent.connect();
            std::thread::spawn(move || c.call(THAW))
        })
        .collect();
    // Every thaw is in its hook at once (not only as many as there are slots).
    let running = settle(Duration::from_secs(60), || lines_of(&log, "thaw"), |&n| n == MANY);
    assert_eq!(running, MANY, "thaws in their hook at once");
    // Meanwhile, as many calls of another command, each on its own client.
    let others: Vec<_> = (0..MANY)
        .map(|i| {
            let mut c = agent.connect();
            std::thread::spawn(move || {
                c.call(&format!(
                    r#"{{"execute":"guest-file-open","arguments":{{"path":"/dev/null"}},"id":{i}}}"#
                ))
            })
        })
        .collect();
    for other in others {
        let reply = other.join().unwrap();
        assert!(reply.starts_with(r#"{"return": "#), "{reply}");
    }
    assert!(
        thaws.iter().all(|t| !t.is_finished()),
        "a thaw answered before its hook ended"
    );
    std::fs::write(&release, "").unwrap();
    for thaw in thaws {
        assert_eq!(thaw.join().unwrap(), r#"{"return": 0}"#);
    }
}

/// Thaws sent while the freeze hook blocks wait for the freeze to finish
/// (qemu-ga answers requests one after the other), then the first thaws
/// what was frozen and the others find nothing frozen; the status says
/// thawed at the end.
#[test]
fn thaws_sent_during_a_blocked_freeze_hook_thaw_after_the_freeze() {
    let _serial = serial();
    let fs = LoopFs::new("hookthaws", 32 << 20);
    let dir = Scratch::new("hookthaws");
    let (script, log, release) = hook_waiting_on(&dir, "freeze");
    let hook_arg = format!("-F{}", script.display());
    let agent = Agent::qga(&[&hook_arg]);
    let mut other = agent.connect();
    let mut freezer = agent.connect();
    let line = freeze_line(&fs);
    let freeze = std::thread::spawn(move || freezer.call(&line));
    let started = settle(Duration::from_secs(20), || lines_of(&log, "freeze"), |&n| n == 1);
    assert_eq!(started, 1);
    let thaws: Vec<_> = (0..MANY)
        .map(|_| {
            let mut c = agent.connect();
            std::thread::spawn(move || c.call(THAW))
        })
        .collect();
    // The thaws wait for the freeze: none answers, no thaw hook runs.
    assert_eq!(other.call(STATUS), r#"{"return": "frozen"}"#);
    assert!(!freeze.is_finished());
    assert_eq!(lines_of(&log, "thaw"), 0);
    std::fs::write(&release, "").unwrap();
    assert_eq!(freeze.join().unwrap(), r#"{"return": 1}"#);
    let mut counts: Vec<String> = thaws.into_iter().map(|t| t.join().unwrap()).collect();
    counts.sort();
    let mut expected = vec![r#"{"return": 0}"#.to_owned(); MANY - 1];
    expected.push(r#"{"return": 1}"#.to_owned());
    assert_eq!(counts, expected);
    assert_eq!(other.call(STATUS), r#"{"return": "thawed"}"#);
    assert_eq!(lines_of(&log, "thaw"), MANY);
}
