//! Hostile handler components inside the real agent (`--handlers DIR`):
//! the `fixture` family's stack overflow and ungranted-capability loop,
//! and handlers/fixture-hostile installed as the `file`, `exec` and
//! `system-info` families, where it receives those commands' real grants
//! and abuses them: opens without closing, starts children without end,
//! calls the clock, read-file and files.read until its deadline.
//!
//! Each costs one error reply and no more than its limits: the agent's
//! descriptors, threads, children and memory come back to where they were
//! (or stop at a cap while the handles or children live on), and another
//! client's pings and a normal component command (guest-fsfreeze-status,
//! storage family) are answered during and after the call.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::{Agent, Client, Scratch, artifacts, settle};

/// The deadline the test policy gives the commands that loop until it.
const DEADLINE: &str = "2s";
/// Memory the agent may keep after a hostile call, beyond its resident
/// size before it (pool slots and code pages touched for the first time).
const RSS_SLACK_KIB: u64 = 8 << 10;
/// How long a resource may take to come back (tokio's idle blocking
/// threads linger 10 s).
const SETTLE: Duration = Duration::from_secs(15);

/// An agent whose handlers directory holds the fixture family and the
/// hostile build as file, exec and system-info.
struct Hostile {
    agent: Agent,
    _dir: Scratch,
}

impl Hostile {
    fn start() -> Hostile {
        let dir = Scratch::new("hostile");
        let handlers = dir.path("handlers");
        std::fs::create_dir_all(&handlers).unwrap();
        let fixtures = std::path::Path::new(env!("QGA_TEST_FIXTURES"));
        // Precompiled and pinned: the operator trusts these builds (their
        // code), the sandbox still contains what they do.
        let mut text = String::new();
        let fixture = std::fs::read(fixtures.join("fixture.wasm")).unwrap();
        let digest = artifacts::install(&handlers, "fixture", &fixture);
        text.push_str(&artifacts::pin("fixture", &digest));
        let hostile = std::fs::read(env!("QGA_TEST_FIXTURE_HOSTILE")).unwrap();
        for family in ["file", "exec", "system-info"] {
            // The hostile build exports all three families' interfaces.
            let digest = artifacts::install(&handlers, family, &hostile);
            text.push_str(&artifacts::pin(family, &digest));
        }
        let policy = dir.path("policy.toml");
        for command in [
            "guest-get-time",
            "guest-get-osinfo",
            "guest-file-read",
            "guest-exec-status",
        ] {
            text.push_str(&format!("[command.\"{command}\"]\ndeadline = \"{DEADLINE}\"\n"));
        }
        std::fs::write(&policy, text).unwrap();
        let agent = Agent::qga(&[
            "--handlers",
            handlers.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ]);
        agent.wait_idle();
        // The other client's command loads its family before any figure
        // is taken.
        bystander_round(&mut agent.connect());
        Hostile { agent, _dir: dir }
    }
}

/// What the agent holds.
#[derive(Debug, Clone, Copy)]
struct Footprint {
    fds: usize,
    threads: usize,
    children: usize,
    rss_kib: u64,
}

/// The footprint once the agent's descriptor count has held still for half
/// a second (a connection just dropped is closed by the agent a moment
/// later).
fn footprint_at_rest(agent: &Agent) -> Footprint {
    let mut last = footprint(agent);
    let mut still = 0;
    for _ in 0..200 {
        std::thread::sleep(Duration::from_millis(50));
        let now = footprint(agent);
        still = if now.fds == last.fds { still + 1 } else { 0 };
        last = now;
        if still == 10 {
            break;
        }
    }
    last
}

fn footprint(agent: &Agent) -> Footprint {
    Footprint {
        fds: agent.open_fds(),
        threads: agent.threads(),
        children: agent.children().len(),
        rss_kib: agent.rss_kib(),
    }
}

/// One round of the other client: a ping and a normal component command.
fn bystander_round(c: &mut Client) {
    assert_eq!(c.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
    assert_eq!(
        c.call(r#"{"execute":"guest-fsfreeze-status"}"#),
        r#"{"return": "thawed"}"#
    );
}

/// Send `request` on a connection of its own while another client runs
/// rounds on its own thread. The one reply, and the rounds the other client
/// finished while the call ran.
fn hostile_call(agent: &Agent, request: &str) -> (String, usize) {
    let mut caller = agent.connect();
    let mut other = agent.connect();
    bystander_round(&mut other);
    let running = Arc::new(AtomicBool::new(true));
    caller.send_line(request);
    let bystander = {
        let running = running.clone();
        std::thread::spawn(move || {
            let mut during = 0;
            while running.load(Ordering::Acquire) {
                bystander_round(&mut other);
                during += 1;
            }
            bystander_round(&mut other);
            during
        })
    };
    let reply = caller.read_text();
    running.store(false, Ordering::Release);
    let during = bystander.join().unwrap();
    assert!(
        !caller.has_pending_reply(Duration::from_millis(300)),
        "more than one reply to {request}"
    );
    (reply, during)
}

fn error(desc: &str) -> String {
    format!(r#"{{"error": {{"class": "GenericError", "desc": "{desc}"}}}}"#)
}

/// After the calls: descriptors, threads and children back to `before`,
/// resident memory within [`RSS_SLACK_KIB`] of it.
fn assert_back_to(agent: &Agent, before: Footprint, what: &str) {
    // A call after a pause lets the agent hand freed memory back.
    std::thread::sleep(Duration::from_millis(1100));
    bystander_round(&mut agent.connect());
    let after = settle(
        SETTLE,
        || footprint(agent),
        |a| {
            a.fds == before.fds
                && a.threads <= before.threads
                && a.children == 0
                && a.rss_kib <= before.rss_kib + RSS_SLACK_KIB
        },
    );
    eprintln!("{what}: before {before:?}, after {after:?}");
    assert_eq!(after.fds, before.fds, "{what}: descriptors");
    assert!(
        after.threads <= before.threads,
        "{what}: threads {after:?} vs {before:?}"
    );
    assert_eq!(after.children, 0, "{what}: children");
    assert!(
        after.rss_kib <= before.rss_kib + RSS_SLACK_KIB,
        "{what}: resident memory {} KiB, {} KiB before",
        after.rss_kib,
        before.rss_kib
    );
}

#[test]
fn stack_overflow_costs_one_error_each_time_and_nothing_more() {
    let h = Hostile::start();
    let agent = &h.agent;
    let mut c = agent.connect();
    assert_eq!(
        c.call(r#"{"execute":"fixture-recurse","arguments":{"depth":1000}}"#),
        r#"{"return": 1000}"#
    );
    let overflow = r#"{"execute":"fixture-recurse","arguments":{"depth":100000000}}"#;
    let expected =
        error("fixture-recurse: handler crashed: out of bounds memory access (stack overflow or bad pointer)");
    assert_eq!(c.call(overflow), expected);
    drop(c);
    let before = footprint_at_rest(agent);
    for _ in 0..20 {
        let (reply, _) = hostile_call(agent, overflow);
        assert_eq!(reply, expected);
    }
    assert_back_to(agent, before, "20 stack overflows");
}

#[test]
fn a_panicking_prompt_handler_costs_one_error_and_the_agent_serves_on() {
    let h = Hostile::start();
    let agent = &h.agent;
    let mut c = agent.connect();
    // fixture-panic holds no capability: a prompt command, run on the event
    // loop. Its panic message goes to WASI stderr, which cannot be written
    // from there; the call is run again on a handler thread.
    let expected = error("fixture-panic: handler crashed (panic or wasm unreachable)");
    for _ in 0..5 {
        assert_eq!(c.call(r#"{"execute":"fixture-panic"}"#), expected);
        assert_eq!(c.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
    }
    assert!(!agent.log().contains("panicked"), "{}", agent.log());
}

#[test]
fn ungranted_capability_called_in_a_loop_costs_one_permission_error() {
    let h = Hostile::start();
    let agent = &h.agent;
    let request = r#"{"execute":"fixture-ungranted-loop","arguments":{"count":4000000000}}"#;
    let expected =
        error("fixture-ungranted-loop: permission denied: fixture-ungranted-loop is not granted qga:agent/clock");
    assert_eq!(agent.connect().call(request), expected);
    let before = footprint_at_rest(agent);
    // The first denied call ends the handler: a handler that went on with
    // its 4e9 calls would end on its deadline, with another error.
    for _ in 0..20 {
        let (reply, _) = hostile_call(agent, request);
        assert_eq!(reply, expected);
    }
    assert_back_to(agent, before, "20 denied loops");
}

/// guest-get-load is granted the load averages only: its (hostile) handler
/// cannot read the route table guest-network-get-route may read.
#[test]
fn load_handler_cannot_read_the_route_table() {
    let h = Hostile::start();
    assert_eq!(
        h.agent.connect().call(r#"{"execute":"guest-get-load"}"#),
        error("guest-get-load: permission denied: guest-get-load is not granted qga:agent/read-file")
    );
}

#[test]
fn clock_and_read_file_hammered_until_the_deadline() {
    let h = Hostile::start();
    let agent = &h.agent;
    for command in ["guest-get-time", "guest-get-osinfo"] {
        let request = format!(r#"{{"execute":"{command}"}}"#);
        let expected = error(&format!("{command}: handler exceeded its 2 s deadline"));
        // The first call loads the family.
        assert_eq!(agent.connect().call(&request), expected);
        let before = footprint_at_rest(agent);
        for _ in 0..2 {
            let (reply, during) = hostile_call(agent, &request);
            assert_eq!(reply, expected);
            assert!(during > 0, "{command}: no other request was answered during the call");
        }
        assert_back_to(agent, before, command);
    }
}

#[test]
fn open_without_close_stops_at_the_cap_and_48_mib_reads_leave_no_memory_behind() {
    let h = Hostile::start();
    let agent = &h.agent;
    let data = h._dir.path("data");
    std::fs::write(&data, vec![0x5au8; 48 << 20]).unwrap();
    // The family's first instance (its memory image) is not the test's.
    assert_eq!(
        agent
            .connect()
            .call(r#"{"execute":"guest-file-close","arguments":{"handle":1000}}"#),
        r#"{"return": {}}"#
    );
    let before = footprint_at_rest(agent);
    let open = format!(
        r#"{{"execute":"guest-file-open","arguments":{{"path":"{}"}}}}"#,
        data.display()
    );
    let (reply, _) = hostile_call(agent, &open);
    assert_eq!(reply, error("opened 512, then: Too many open files"));
    // The handles outlive the call (guest-file-* semantics), up to the cap:
    // one descriptor each, and a normal open is refused with EMFILE's text
    // until they are closed.
    let held = footprint_at_rest(agent);
    eprintln!("512 handles held: {held:?}");
    assert_eq!(held.fds, before.fds + 512);
    let (reply, _) = hostile_call(agent, &open);
    assert_eq!(reply, error("opened 0, then: Too many open files"));
    // Read 48 MiB from the first handle, then from the next ones (the read
    // grant has no seek), keeping each chunk.
    let read = r#"{"execute":"guest-file-read","arguments":{"handle":1000,"count":50331648}}"#;
    // The hostile read keeps every chunk: the blobs' data, held by the
    // host, count against the call's memory budget.
    let expected = error("guest-file-read: handler exceeded its 96 MiB memory limit");
    let (reply, during) = hostile_call(agent, read);
    assert_eq!(reply, expected);
    assert!(during > 0, "no other request was answered during the reads");
    let (reply, _) = hostile_call(agent, read);
    assert_eq!(reply, expected);
    eprintln!("peak resident memory of the agent: {} KiB", agent.peak_rss_kib());
    assert_eq!(
        agent
            .connect()
            .call(r#"{"execute":"guest-file-close","arguments":{"handle":1000}}"#),
        r#"{"return": {}}"#
    );
    assert_back_to(agent, before, "512 handles and 48 MiB reads");
}

#[test]
fn spawn_loop_stops_at_the_cap_and_killed_children_leave_nothing_behind() {
    let h = Hostile::start();
    let agent = &h.agent;
    // The family's first instance (its memory image) is not the test's.
    assert_eq!(
        agent
            .connect()
            .call(r#"{"execute":"guest-exec","arguments":{"path":"/nonexistent"}}"#),
        error(r"started 0, then: Failed to execute child process \u201C/nonexistent\u201D (No such file or directory)")
    );
    let before = footprint_at_rest(agent);
    let spawn = r#"{"execute":"guest-exec","arguments":{"path":"sleep","arg":["60"]}}"#;
    let killer = KillChildren(agent.pid());
    let (reply, _) = hostile_call(agent, spawn);
    assert_eq!(
        reply,
        error("started 64, then: cannot start another child: 64 children of guest-exec are running")
    );
    let running = footprint_at_rest(agent);
    eprintln!("64 children running: {running:?}");
    assert_eq!(running.children, 64);
    assert_eq!(running.fds, before.fds, "children hold no descriptor of the agent");
    // One waiting thread per child, no more (besides up to 8 threads of
    // calls that ran meanwhile and the one that trims memory after calls,
    // idle for a while before they end).
    assert!(running.threads <= before.threads + 64 + 8 + 1, "{running:?}");
    // Asking for a status again and again runs into the deadline.
    let status = r#"{"execute":"guest-exec-status","arguments":{"pid":1}}"#;
    let (reply, during) = hostile_call(agent, status);
    assert_eq!(reply, error("guest-exec-status: handler exceeded its 2 s deadline"));
    assert!(during > 0, "no other request was answered during the status loop");
    drop(killer);
    assert_back_to(agent, before, "64 children killed");
    // Exited children stay in the table until reported (qemu-ga's
    // semantics) and count against its cap of 1024: loops of short-lived
    // children stop there (or, for a moment, at 64 not yet reaped).
    let mut started = 0;
    for _ in 0..100 {
        let (reply, _) = hostile_call(agent, r#"{"execute":"guest-exec","arguments":{"path":"true"}}"#);
        let text = reply
            .strip_prefix(r#"{"error": {"class": "GenericError", "desc": "started "#)
            .unwrap_or_else(|| panic!("{reply}"));
        let (count, reason) = text.split_once(", then: ").unwrap();
        started += count.parse::<usize>().unwrap();
        if reason.contains("have not been reported") {
            break;
        }
        assert!(reason.contains("64 children of guest-exec are running"), "{reply}");
    }
    assert_eq!(started, 1024 - 64);
    assert_back_to(agent, before, "960 short-lived children");
}

/// Kills the agent's children (SIGKILL, by pid) when dropped, even after a
/// failed assertion.
struct KillChildren(u32);

impl Drop for KillChildren {
    fn drop(&mut self) {
        for (pid, _) in support::children_of(self.0) {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }
}
