//! What a call can make the agent hold or wait for: its own log writes on
//! a filesystem a freeze freezes (a real ext4 loop device, root as in CI),
//! host memory a hostile handler makes the host keep, resources, sockets
//! and preopens it may not have, helpers that never end. Each test is an
//! exploit that hung or exhausted the agent before these limits existed.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::loopfs::LoopFs;
use support::{Agent, Client, Scratch, s, settle};

/// guest-fsfreeze-thaw thaws every mounted filesystem: tests that freeze
/// run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
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

/// A handlers directory for `agent`: the given components, precompiled as
/// `<family>.cwasm`, and a policy file (`policy.toml`) that pins them after
/// `policy`'s own lines.
fn handlers_dir(scratch: &Scratch, files: &[(&str, &[u8])], policy: &str) -> (PathBuf, PathBuf) {
    let dir = scratch.path("handlers");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = policy.to_owned();
    for (family, bytes) in files {
        let digest = support::artifacts::install(&dir, family, bytes);
        text.push_str(&support::artifacts::pin(family, &digest));
    }
    let policy_path = scratch.path("policy.toml");
    std::fs::write(&policy_path, text).unwrap();
    (dir, policy_path)
}

fn error(desc: &str) -> String {
    format!(r#"{{"error": {{"class": "GenericError", "desc": "{desc}"}}}}"#)
}

/// The issue's exploit: a hostile guest-file-read (handlers/fixture-hostile
/// installed as the file family) that reads 48 MiB, seeks back and keeps
/// every chunk; the host holds the chunks' data. Before the blob budget the
/// root agent reached 2.1 GiB in one 2 s call. Now the blobs count against
/// the call's memory budget: the call fails with the memory-limit error
/// after a few reads, and the agent's peak resident memory stays far below.
#[test]
fn hoarded_file_reads_hit_the_call_budget_and_host_memory_stays_bounded() {
    let scratch = Scratch::new("hoard");
    let hostile = std::fs::read(env!("QGA_TEST_FIXTURE_HOSTILE")).unwrap();
    let (handlers, policy) = handlers_dir(
        &scratch,
        &[("file", &hostile)],
        "[command.\"guest-file-read\"]\ndeadline = \"2s\"\n",
    );
    let data = scratch.path("data");
    std::fs::write(&data, vec![0x5au8; 48 << 20]).unwrap();
    let agent = Agent::qga(&["--handlers", s(&handlers), "--policy", s(&policy)]);
    let mut c = agent.connect();
    // The hostile open opens until the host refuses; handle 1000 is one.
    let open = c.call(&format!(
        r#"{{"execute":"guest-file-open","arguments":{{"path":"{}"}}}}"#,
        data.display()
    ));
    assert!(open.contains("then: Too many open files"), "{open}");
    let read = r#"{"execute":"guest-file-read","arguments":{"handle":1000,"count":50331648}}"#;
    for _ in 0..3 {
        assert_eq!(
            c.call(read),
            error("guest-file-read: handler exceeded its 96 MiB memory limit")
        );
    }
    let peak_mib = agent.peak_rss_kib() >> 10;
    eprintln!("peak resident memory of the agent: {peak_mib} MiB");
    assert!(peak_mib < 600, "the agent reached {peak_mib} MiB");
    // The handles are still there, and the agent still serves.
    assert_eq!(
        c.call(r#"{"execute":"guest-file-close","arguments":{"handle":1000}}"#),
        r#"{"return": {}}"#
    );
    assert_eq!(c.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
}

/// `(memory 1)` as a core module, and the section appending `count`
/// instances of it to a component.
fn leb(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn section(id: u8, body: &[u8], out: &mut Vec<u8>) {
    out.push(id);
    leb(body.len(), out);
    out.extend_from_slice(body);
}

/// `component` with a core module holding one memory appended, instantiated
/// `count` times: each instance of the component takes `count` more linear
/// memories, which nothing uses.
fn with_extra_memories(component: &[u8], count: usize) -> Vec<u8> {
    use wasmtime::wasmparser::{Parser, Payload};
    let mut depth = 0usize;
    let mut modules = 0usize;
    for payload in Parser::new(0).parse_all(component) {
        match payload.unwrap() {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            Payload::ModuleSection { .. } if depth == 1 => modules += 1,
            _ => {}
        }
    }
    let mut out = component.to_vec();
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    section(5, &[1, 0, 1], &mut module);
    section(1, &module, &mut out);
    let mut instances = Vec::new();
    leb(count, &mut instances);
    for _ in 0..count {
        instances.push(0x00);
        leb(modules, &mut instances);
        leb(0, &mut instances);
    }
    section(2, &instances, &mut out);
    out
}

/// The pool holds 64 linear memories for every call at once. A component
/// declaring 63 memories besides its own took them all for as long as its
/// call ran (here: fixture-loop, until its deadline), and every other
/// component call failed meanwhile, thaw included. Now one call may create
/// at most a few memories: the hostile call fails at once with the limit
/// named, and thaw and ping work.
#[test]
fn a_component_declaring_many_memories_cannot_take_the_pool_from_other_calls() {
    let _serial = serial();
    let scratch = Scratch::new("memories");
    let fixture = std::fs::read(std::path::Path::new(env!("QGA_TEST_FIXTURES")).join("fixture.wasm")).unwrap();
    let hostile = with_extra_memories(&fixture, 63);
    let (handlers, policy) = handlers_dir(&scratch, &[("fixture", &hostile)], "");
    let agent = Agent::qga(&["--handlers", s(&handlers), "--policy", s(&policy)]);
    let mut hog = agent.connect();
    let mut other = agent.connect();
    assert_eq!(other.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
    let cpu_before = agent.cpu_time();
    hog.send_line(r#"{"execute":"fixture-loop"}"#);
    // Either the call was refused, or its instance runs (the agent spins).
    settle(
        Duration::from_secs(30),
        || {
            hog.has_pending_reply(Duration::from_millis(20))
                || agent.cpu_time() > cpu_before + Duration::from_millis(300)
        },
        |done| *done,
    );
    assert_eq!(
        other.call(r#"{"execute":"guest-fsfreeze-thaw"}"#),
        r#"{"return": 0}"#,
        "thaw failed while the hostile call ran"
    );
    assert_eq!(other.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
    let reply = hog.read_text();
    assert!(
        reply.starts_with(r#"{"error": {"class": "GenericError", "desc": "fixture-loop: handler failed: "#)
            && reply.contains("memory count too high"),
        "{reply}"
    );
}

/// No command is granted the network. A component whose handler opens a
/// TCP socket through WASI (handlers/fixture-socket) created a socket in
/// the root agent before (the default WASI context allows socket creation;
/// only addresses were refused). Now `wasi:sockets` is never linked: its
/// command does not load, and says why.
#[test]
fn a_component_importing_wasi_sockets_does_not_load() {
    let scratch = Scratch::new("sockets");
    let fixtures = std::path::Path::new(env!("QGA_TEST_FIXTURES"));
    let bytes = std::fs::read(fixtures.join("fixture-socket.wasm")).unwrap();
    let (handlers, policy) = handlers_dir(&scratch, &[("fixture-socket", &bytes)], "");
    let agent = Agent::qga(&["--handlers", s(&handlers), "--policy", s(&policy)]);
    let mut c = agent.connect();
    let reply = c.call(r#"{"execute":"fixture-socket-bind"}"#);
    assert!(
        reply.starts_with(
            r#"{"error": {"class": "GenericError", "desc": "fixture-socket-bind: handler unavailable: cannot link: "#
        ) && reply.contains("wasi:sockets/"),
        "{reply}"
    );
    assert_eq!(c.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

/// A helper that never ends (here a `chpasswd` first in the agent's PATH
/// that waits on a child of its own) held guest-set-user-password, and its
/// call slot, forever: no reply ever came. Now the helper runs at most the
/// command's deadline; then its whole session is killed and the call
/// answers with the reason.
#[test]
fn a_helper_that_never_ends_is_killed_at_the_deadline() {
    let scratch = Scratch::new("hung-helper");
    let bin = scratch.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let sleeper = bin.join("qga-hung-helper-sleep");
    std::fs::copy("/bin/sleep", &sleeper).unwrap();
    let chpasswd = bin.join("chpasswd");
    std::fs::write(&chpasswd, format!("#!/bin/sh\n{} 1000 &\nwait\n", sleeper.display())).unwrap();
    let wrapper = scratch.path("qga-with-path");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nPATH={}:$PATH exec {} \"$@\"\n",
            bin.display(),
            support::qga_binary().display()
        ),
    )
    .unwrap();
    support::run("chmod", &["+x", s(&chpasswd), s(&wrapper)]);
    let policy = scratch.path("policy.toml");
    std::fs::write(&policy, "[command.\"guest-set-user-password\"]\ndeadline = \"2s\"\n").unwrap();
    let agent = Agent::start(&wrapper, &["--policy", s(&policy)]);
    let mut c = agent.connect();
    c.send_line(
        r#"{"execute":"guest-set-user-password","arguments":{"username":"qga-test-no-such-user","password":"eA==","crypted":false}}"#,
    );
    assert!(
        c.has_pending_reply(Duration::from_secs(60)),
        "no reply: the hung helper holds the call"
    );
    assert_eq!(
        c.read_text(),
        error(&format!(
            "failed to create child process: {} did not finish within 2 s and was killed",
            chpasswd.display()
        ))
    );
    let left = settle(
        Duration::from_secs(10),
        || processes_mentioning(s(&sleeper)),
        |pids| pids.is_empty(),
    );
    assert!(left.is_empty(), "the helper's child survived: {left:?}");
    assert_eq!(c.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
}

/// input-data given to children that never read it stays in the agent
/// until they exit: 64 such children of 48 MiB each held 3 GiB. Now the
/// input held for all running children together is capped (256 MiB):
/// past it guest-exec refuses to start another child and says why.
#[test]
fn input_data_held_for_children_that_never_read_it_is_capped() {
    use base64::Engine as _;
    let agent = Agent::qga(&[]);
    let mut c = agent.connect();
    let data = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; 40 << 20]);
    let request =
        format!(r#"{{"execute":"guest-exec","arguments":{{"path":"sleep","arg":["60"],"input-data":"{data}"}}}}"#);
    let mut pids = Vec::new();
    let mut refused = None;
    for _ in 0..7 {
        // 53 MiB of JSON each: allow a loaded machine more than the usual
        // reply timeout.
        c.send_line(&request);
        assert!(c.has_pending_reply(Duration::from_secs(120)), "no reply to guest-exec");
        let reply = c.read_text();
        match reply
            .strip_prefix(r#"{"return": {"pid": "#)
            .and_then(|r| r.strip_suffix("}}"))
        {
            Some(pid) => pids.push(pid.parse::<i32>().unwrap()),
            None => {
                refused = Some(reply);
                break;
            }
        }
    }
    for pid in &pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::SIGKILL);
    }
    assert_eq!(pids.len(), 6, "six children of 40 MiB input fit under the cap");
    assert_eq!(
        refused.unwrap(),
        error(
            "Guest agent command failed, error was 'cannot start another child: the input-data of running children would exceed 256 MiB'"
        )
    );
    let peak_mib = agent.peak_rss_kib() >> 10;
    eprintln!("peak resident memory of the agent: {peak_mib} MiB");
    assert_eq!(c.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
}

/// A runtime generation carries its policy: the dispatcher decides by it
/// (see tests/reload.rs), and a direct call on the runtime gets the same
/// decision, so nothing runs under a generation whose policy denies it.
#[test]
fn a_runtime_generation_refuses_what_its_own_policy_denies() {
    let scratch = Scratch::new("generation-policy");
    let policy = scratch.path("policy.toml");
    std::fs::write(&policy, "[command.\"guest-get-time\"]\nallow = false\n").unwrap();
    let mut config = qga::runtime::RuntimeConfig::new(scratch.path("state"));
    config.policy = std::sync::Arc::new(qga::policy::Policy::load(&policy).unwrap());
    let rt = qga::runtime::Runtime::new(config).unwrap();
    let err = rt.call("guest-get-time", None).unwrap_err();
    assert_eq!(
        err.desc,
        format!(
            "Command guest-get-time is denied by policy rule command.\"guest-get-time\".allow = false ({}:2)",
            policy.display()
        )
    );
    assert!(rt.call("guest-get-host-name", None).unwrap().is_some());
}

/// The audit log and `-l` are opened as root at start. A symlink at either
/// path (a local user's, pointing at a file of root's) was followed, and
/// the audit log chmod'ed its target to 0600. Now the agent refuses to
/// start and the target is untouched.
#[test]
fn audit_log_and_log_file_symlinks_are_refused_and_their_targets_untouched() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new("log-symlinks");
    let target = scratch.path("roots-file");
    std::fs::write(&target, "precious\n").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = scratch.path("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for option in ["--audit-log", "-l"] {
        let log = scratch.path("stderr");
        let mut child = std::process::Command::new(support::qga_binary())
            .args(["-m", "unix-listen", "-p"])
            .arg(scratch.path("agent.sock"))
            .arg("-t")
            .arg(scratch.path("state"))
            .args([option, s(&link)])
            .env("QGA_CONF", scratch.path("none.conf"))
            .stdin(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // It exits at once; one that serves instead is stopped and fails.
        let status = settle(Duration::from_secs(30), || child.try_wait().unwrap(), Option::is_some);
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let stderr = std::fs::read_to_string(&log).unwrap();
        assert!(
            status.is_some_and(|s| !s.success()),
            "{option} through a symlink: the agent started"
        );
        assert!(stderr.contains(s(&link)), "{option}: {stderr}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        assert_eq!(
            std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o644,
            "{option}: the symlink's target was chmod'ed"
        );
    }
}

/// KiB of the agent's own program file it has mapped in (its `Rss:` over
/// the mappings of `/proc/PID/exe`).
fn program_rss_kib(pid: u32) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(format!("/proc/{pid}/exe")).unwrap().ino();
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut total = 0;
    let mut ours = false;
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first().is_some_and(|f| f.contains('-') && !f.ends_with(':')) {
            ours = fields.get(4).and_then(|i| i.parse::<u64>().ok()) == Some(inode);
        } else if ours && fields.first() == Some(&"Rss:") {
            total += fields[1].parse::<u64>().unwrap();
        }
    }
    total
}

/// Start-up maps in ~6 MiB of the program (argument parsing, policy,
/// engine set-up, the embedded families' headers), which stayed resident
/// in the idle agent. Once quiet, the agent unmaps its program's clean
/// pages (they stay in the page cache): the idle agent keeps a fraction,
/// and everything still works afterwards — the pages fault back in.
#[test]
fn an_idle_agent_unmaps_the_program_pages_start_up_used() {
    let agent = Agent::qga(&[]);
    let mut c = agent.connect();
    assert_eq!(c.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
    let idle = settle(
        Duration::from_secs(30),
        || program_rss_kib(agent.pid()),
        |kib| *kib <= 3 << 10,
    );
    assert!(idle <= 3 << 10, "{idle} KiB of the program still mapped when idle");
    // Code and constants come back from the file.
    assert!(
        c.call(r#"{"execute":"guest-get-osinfo"}"#)
            .starts_with(r#"{"return": {"#)
    );
    assert!(
        c.call(r#"{"execute":"guest-get-fsinfo"}"#)
            .starts_with(r#"{"return": ["#)
    );
    assert_eq!(c.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
}
