//! Faults around the agent, each answered with a clear error reply or log
//! line, nothing lost and the agent alive: a read-only and a full state
//! directory (real tmpfs mounts), a client vanishing in the middle of a
//! large reply, a child killed from outside while guest-exec runs it,
//! corrupt, unpinned or uncompiled components in a watched handlers
//! directory, a long run of new builds swapped in, and two qemu-ga 7.2
//! defects (descriptors leaked to guest-exec children; a busy loop after
//! input-data to a child that exits). Where qemu-ga has an answer, both
//! agents are run and compared. Needs root (mounts, loop devices); CI is
//! root.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::loopfs::LoopFs;
use support::{Agent, Client, Scratch, artifacts, audit, qemu_ga_binary, qga_binary, run, s, settle};

/// A tmpfs of `size` mounted on a fresh directory; unmounted on drop, even
/// after a failed assertion (lazily, should an agent still hold it).
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        run(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs", s(&dir)],
        );
        Tmpfs { dir }
    }

    fn remount(&self, mode: &str) {
        run("mount", &["-o", &format!("remount,{mode}"), s(&self.dir)]);
    }

    /// Fill it up: a file as large as it takes.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.dir.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        // Whatever is left (less than a page) goes too.
        while f.write_all(&[0]).is_ok() {}
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// guest-fsfreeze-thaw thaws every mounted filesystem: tests that freeze
/// run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Start `binary` on `state` through `bash -c 'exec … <redirects>'`, so the
/// agent inherits whatever descriptors `redirects` opens (not close-on-exec).
fn start(binary: &Path, state: &Path, args: &[&str], redirects: &str) -> Agent {
    Agent::start_with(binary, args, Some(state), Some(redirects))
}

fn error(desc: &str) -> String {
    format!(r#"{{"error": {{"class": "GenericError", "desc": "{desc}"}}}}"#)
}

fn open(c: &mut Client, path: &Path) -> String {
    c.call(&format!(
        r#"{{"execute":"guest-file-open","arguments":{{"path":"{}"}}}}"#,
        path.display()
    ))
}

fn freeze_list(c: &mut Client, mnt: &str) -> String {
    c.call(&format!(
        r#"{{"execute":"guest-fsfreeze-freeze-list","arguments":{{"mountpoints":["{mnt}"]}}}}"#
    ))
}

const STATUS: &str = r#"{"execute":"guest-fsfreeze-status"}"#;
const THAW: &str = r#"{"execute":"guest-fsfreeze-thaw"}"#;
const COMMIT_FAILED: &str = "failed to commit persistent state to disk";

/// The names in `dir`, sorted (dot files included).
fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// qga and qemu-ga on state directories inside one tmpfs (`<tmpfs>/qga`,
/// `<tmpfs>/qemu-ga`), each holding a state file with counter 1000.
struct Pair {
    qga: Agent,
    qemu: Agent,
}

fn prepare_states(fs: &Tmpfs) -> (PathBuf, PathBuf) {
    let ours = fs.dir.join("qga");
    let theirs = fs.dir.join("qemu-ga");
    for dir in [&ours, &theirs] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("qga.state"), "[global]\nfd_counter=1000\n").unwrap();
    }
    (ours, theirs)
}

/// The file commands on a state directory that cannot be written: the
/// same replies as qemu-ga (the handle whose commit failed is used up, in
/// both), a log line naming the file and the reason, and every handle
/// that was answered still works once the directory is writable again.
fn file_commands_match_qemu_ga(pair: &Pair, ours: &Path, file: &Path, reason: &str, make_writable: impl FnOnce()) {
    let mut a = pair.qga.connect();
    let mut b = pair.qemu.connect();
    // The file family's first instance (its memory image) comes first.
    let close = r#"{"execute":"guest-file-close","arguments":{"handle":5}}"#;
    assert_eq!(a.call(close), b.call(close));
    let fds = pair.qga.open_fds();
    for _ in 0..2 {
        let reply = open(&mut a, file);
        assert_eq!(reply, error(COMMIT_FAILED));
        assert_eq!(reply, open(&mut b, file));
    }
    // The file opened for a failed commit is closed again.
    assert_eq!(pair.qga.open_fds(), fds);
    make_writable();
    let reply = open(&mut a, file);
    assert_eq!(reply, r#"{"return": 1002}"#);
    assert_eq!(reply, open(&mut b, file));
    let read = r#"{"execute":"guest-file-read","arguments":{"handle":1002}}"#;
    assert_eq!(a.call(read), b.call(read));
    let log = pair.qga.log();
    let line = format!(
        "failed to write persistent state to {}/qga.state: {reason}",
        ours.display()
    );
    assert_eq!(log.matches(&line).count(), 2, "{log}");
    assert!(pair.qemu.log().contains("failed to write persistent state to"));
}

/// Freeze and thaw a loop filesystem with qga on `state`: the replies of a
/// healthy agent, the state file's failure in the log, and whatever could
/// be kept of the state file checked by `state_file`.
fn freeze_and_thaw(agent: &Agent, state: &Path, reason: &str, state_file: impl Fn(&Path)) {
    let fs = LoopFs::new("faults-freeze", 32 << 20);
    let mut c = agent.connect();
    assert_eq!(freeze_list(&mut c, fs.mnt()), r#"{"return": 1}"#);
    assert_eq!(c.call(STATUS), r#"{"return": "frozen"}"#);
    state_file(&state.join("qga.state.isfrozen"));
    assert_eq!(c.call(THAW), r#"{"return": 1}"#);
    assert_eq!(c.call(STATUS), r#"{"return": "thawed"}"#);
    let log = agent.log();
    let line = format!(
        "unable to create {}/qga.state.isfrozen, fsfreeze may not function properly: {reason}",
        state.display()
    );
    assert!(log.contains(&line), "{log}");
}

#[test]
fn read_only_state_directory_fails_guest_file_open_as_qemu_ga_and_serves_on() {
    let _serial = serial();
    let scratch = Scratch::new("faults-ro");
    let fs = Tmpfs::mount(scratch.path("state"), "16m");
    let (ours, theirs) = prepare_states(&fs);
    let empty = fs.dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let file = scratch.path("data");
    std::fs::write(&file, "twelve bytes").unwrap();
    fs.remount("ro");
    // Without a state file that can be created, qemu-ga does not start;
    // qga starts, says why in its log, and fails only guest-file-open.
    let refused_log = scratch.path("refused.log");
    let mut refused = Command::new(qemu_ga_binary())
        .args([
            "-m",
            "unix-listen",
            "-p",
            s(&scratch.path("refused.sock")),
            "-t",
            s(&empty),
        ])
        .env("QGA_CONF", scratch.path("none.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&refused_log).unwrap())
        .spawn()
        .unwrap();
    let exited = settle(Duration::from_secs(10), || refused.try_wait().unwrap(), Option::is_some);
    if exited.is_none() {
        let _ = refused.kill();
        let _ = refused.wait();
        panic!("qemu-ga started on a read-only state directory without a state file");
    }
    let stderr = std::fs::read_to_string(&refused_log).unwrap();
    assert!(stderr.contains("failed to load persistent state"), "{stderr}");
    let started = start(&qga_binary(), &empty, &[], "");
    assert_eq!(open(&mut started.connect(), &file), error(COMMIT_FAILED));
    let log = started.log();
    let line = format!(
        "unable to create state file at path {}/qga.state: Read-only file system",
        empty.display()
    );
    assert!(log.contains(&line), "{log}");
    drop(started);
    let pair = Pair {
        qga: start(&qga_binary(), &ours, &[], ""),
        qemu: start(&qemu_ga_binary(), &theirs, &[], ""),
    };
    // Nothing compiled needs writing: the families are precompiled.
    let mut c = pair.qga.connect();
    assert_eq!(c.call(STATUS), r#"{"return": "thawed"}"#);
    freeze_and_thaw(&pair.qga, &ours, "Read-only file system", |f| assert!(!f.exists()));
    file_commands_match_qemu_ga(&pair, &ours, &file, "Read-only file system", || fs.remount("rw"));
    // Nothing left behind, the counter where qemu-ga has it.
    assert_eq!(names(&ours), ["qga.state"]);
    assert_eq!(
        std::fs::read_to_string(ours.join("qga.state")).unwrap(),
        std::fs::read_to_string(theirs.join("qga.state")).unwrap()
    );
    assert_eq!(c.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
}

#[test]
fn full_state_directory_fails_guest_file_open_as_qemu_ga_and_leaves_no_temporary_files() {
    let _serial = serial();
    let scratch = Scratch::new("faults-full");
    let fs = Tmpfs::mount(scratch.path("state"), "64k");
    let (ours, theirs) = prepare_states(&fs);
    let file = scratch.path("data");
    std::fs::write(&file, "twelve bytes").unwrap();
    fs.fill();
    let pair = Pair {
        qga: start(&qga_binary(), &ours, &[], ""),
        qemu: start(&qemu_ga_binary(), &theirs, &[], ""),
    };
    let mut c = pair.qga.connect();
    assert_eq!(c.call(STATUS), r#"{"return": "thawed"}"#);
    pair.qga.wait_idle();
    // The frozen state's file is created even when its contents do not
    // fit: a restart would still know the filesystems are frozen.
    freeze_and_thaw(&pair.qga, &ours, "No space left on device", |f| assert!(f.exists()));
    file_commands_match_qemu_ga(&pair, &ours, &file, "No space left on device", || {
        std::fs::remove_file(fs.dir.join("filler")).unwrap()
    });
    assert_eq!(names(&ours), ["qga.state"]);
    assert_eq!(
        std::fs::read_to_string(ours.join("qga.state")).unwrap(),
        std::fs::read_to_string(theirs.join("qga.state")).unwrap()
    );
}

#[test]
fn client_vanishing_mid_reply_leaves_the_agent_and_other_clients_as_they_were() {
    let agent = Agent::qga(&[]);
    let data = agent.scratch.path("big");
    std::fs::write(&data, vec![0xa5u8; 48 << 20]).unwrap();
    let read = r#"{"execute":"guest-file-read","arguments":{"handle":1000,"count":50331648}}"#;
    let mut keeper = agent.connect();
    assert_eq!(open(&mut keeper, &data), r#"{"return": 1000}"#);
    // One whole read first: the family is loaded and its instance warm.
    assert!(keeper.call(read).starts_with(r#"{"return": {"count": 50331648, "#));
    let seek = r#"{"execute":"guest-file-seek","arguments":{"handle":1000,"offset":0,"whence":"set"}}"#;
    assert_eq!(keeper.call(seek), r#"{"return": {"eof": false, "position": 0}}"#);
    agent.wait_idle();
    let fds = agent.open_fds();
    let rss = agent.rss_kib();
    let mut other = agent.connect();
    for i in 0..5 {
        let mut gone = agent.connect().into_stream();
        gone.write_all(read.as_bytes()).unwrap();
        gone.write_all(b"\n").unwrap();
        let mut first = [0u8; 16];
        gone.read_exact(&mut first).unwrap();
        assert_eq!(&first, br#"{"return": {"cou"#);
        drop(gone);
        assert_eq!(
            other.call(&format!(r#"{{"execute":"guest-ping","id":{i}}}"#)),
            format!(r#"{{"return": {{}}, "id": {i}}}"#)
        );
        assert_eq!(keeper.call(seek), r#"{"return": {"eof": false, "position": 0}}"#);
    }
    drop(other);
    let after = settle(Duration::from_secs(10), || agent.open_fds(), |n| *n == fds);
    assert_eq!(after, fds, "descriptors");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(keeper.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
    let rss_after = settle(Duration::from_secs(10), || agent.rss_kib(), |r| *r <= rss + (8 << 10));
    eprintln!("5 vanished 64 MiB replies: fds {fds} -> {after}, RSS {rss} KiB -> {rss_after} KiB");
    assert!(rss_after <= rss + (8 << 10), "RSS {rss} KiB -> {rss_after} KiB");
    // The handle still reads from where it was.
    assert_eq!(
        keeper.call(r#"{"execute":"guest-file-read","arguments":{"handle":1000,"count":3}}"#),
        r#"{"return": {"count": 3, "buf-b64": "paWl", "eof": false}}"#
    );
}

fn exec_pid(c: &mut Client, args: &str) -> u32 {
    let reply = c.call(&format!(r#"{{"execute":"guest-exec","arguments":{args}}}"#));
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
    v["return"]["pid"].as_u64().unwrap_or_else(|| panic!("{reply}")) as u32
}

fn wait_exited(c: &mut Client, pid: u32) -> String {
    let request = format!(r#"{{"execute":"guest-exec-status","arguments":{{"pid":{pid}}}}}"#);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = c.call(&request);
        if !reply.contains(r#""exited": false"#) {
            return reply;
        }
        assert!(Instant::now() < deadline, "child {pid} still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn child_killed_from_outside_mid_exec_is_reported_as_qemu_ga_reports_it() {
    let cases = [
        (r#"{"path":"sleep","arg":["100"]}"#, "-9"),
        (r#"{"path":"sleep","arg":["100"],"capture-output":true}"#, "-9"),
        (
            r#"{"path":"sh","arg":["-c","echo started; exec sleep 100"],"capture-output":true}"#,
            "-9",
        ),
        (r#"{"path":"sleep","arg":["100"],"input-data":"aGVsbG8="}"#, "-TERM"),
    ];
    let qga = Agent::qga(&[]);
    let qemu = Agent::qemu_ga(&[]);
    for (args, signal) in cases {
        let mut replies = Vec::new();
        for agent in [&qga, &qemu] {
            let mut c = agent.connect();
            let pid = exec_pid(&mut c, args);
            assert_eq!(
                c.call(&format!(
                    r#"{{"execute":"guest-exec-status","arguments":{{"pid":{pid}}}}}"#
                )),
                r#"{"return": {"exited": false}}"#
            );
            if args.contains("echo started") {
                // It has written its line once the shell became sleep.
                let comm = settle(
                    Duration::from_secs(5),
                    || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default(),
                    |c| c == "sleep\n",
                );
                assert_eq!(comm, "sleep\n");
            }
            run("kill", &[signal, &pid.to_string()]);
            replies.push(wait_exited(&mut c, pid));
            assert!(agent.children().is_empty(), "{:?}", agent.children());
        }
        assert_eq!(replies[0], replies[1], "{args}");
        let number = if signal == "-9" { 9 } else { 15 };
        assert!(replies[0].contains(&format!(r#""signal": {number}"#)), "{}", replies[0]);
    }
    assert_eq!(qga.connect().call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
}

/// `fixture.cwasm` (v1, precompiled) in a handlers directory the agent
/// watches, pinned by `scratch/policy.toml` (the agent re-reads it at
/// each reload). Returns the agent, the handlers directory, the audit log
/// and the policy.
fn watched_agent(scratch: &Scratch) -> (Agent, PathBuf, PathBuf, PathBuf) {
    let handlers = scratch.path("handlers");
    std::fs::create_dir_all(&handlers).unwrap();
    let digest = artifacts::install(&handlers, "fixture", &v1_wasm());
    let policy = scratch.path("policy.toml");
    std::fs::write(&policy, artifacts::pin("fixture", &digest)).unwrap();
    let audit = scratch.path("audit.log");
    let agent = Agent::qga(&[
        "--handlers",
        s(&handlers),
        "--watch-handlers",
        "--audit-log",
        s(&audit),
        "--policy",
        s(&policy),
    ]);
    (agent, handlers, audit, policy)
}

fn v1_wasm() -> Vec<u8> {
    std::fs::read(Path::new(env!("QGA_TEST_FIXTURES")).join("fixture.wasm")).unwrap()
}

fn install(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(".install.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn corrupt_components_in_a_watched_directory_are_rejected_and_the_old_build_serves_on() {
    let scratch = Scratch::new("faults-swap");
    let (agent, handlers, audit, policy) = watched_agent(&scratch);
    let v1 = std::fs::read(handlers.join("fixture.cwasm")).unwrap();
    let v1_digest = sha256(&v1);
    let mut c = agent.connect();
    let version = r#"{"execute":"fixture-version"}"#;
    assert_eq!(c.call(version), r#"{"return": 1}"#);
    let hostile = std::fs::read(env!("QGA_TEST_FIXTURE_HOSTILE")).unwrap();
    let v2 = std::fs::read(env!("QGA_TEST_FIXTURE_V2")).unwrap();
    let mut garbage = vec![0u8; 4096];
    for (i, b) in garbage.iter_mut().enumerate() {
        *b = (i * 7919 % 251) as u8;
    }
    // (what, file, bytes, whether the policy pins these bytes, reason). A
    // pin is the operator's word that the bytes are a trusted compile; the
    // pinned cases are damaged files an operator pinned by mistake, which
    // must still be refused with a reason (never mapped half-way).
    let cases: [(&str, &str, Vec<u8>, bool, &str); 7] = [
        (
            "a .wasm, and no compiler",
            "broken.wasm",
            v1_wasm(),
            false,
            "is a .wasm component and this agent has no compiler: run `qga compile ",
        ),
        (
            "an artifact nobody pinned",
            "broken.cwasm",
            v1.clone(),
            false,
            "is precompiled native code that the policy does not trust",
        ),
        (
            "a good build, not the pinned one",
            "fixture.cwasm",
            artifacts::compile("fixture", &v2),
            false,
            "but the policy pins",
        ),
        (
            "truncated",
            "fixture.cwasm",
            v1[..v1.len() / 2].to_vec(),
            true,
            "cannot load the precompiled artifact: ",
        ),
        ("garbage", "fixture.cwasm", garbage, true, "not a qga artifact"),
        ("empty", "fixture.cwasm", Vec::new(), true, "not a qga artifact"),
        (
            "wrong exports",
            "fixture.cwasm",
            artifacts::compile("file", &hostile),
            true,
            "does not export qga:agent/fixture",
        ),
    ];
    for (what, name, bytes, pinned, reason) in cases {
        let digest = sha256(&bytes);
        let family = name.split('.').next().unwrap();
        let pin = if pinned { digest.clone() } else { v1_digest.clone() };
        std::fs::write(&policy, artifacts::pin("fixture", &pin)).unwrap();
        install(&handlers, name, &bytes);
        let rejects = settle(
            Duration::from_secs(30),
            || audit::events(&audit, "component-reject"),
            |r| r.iter().any(|e| e["sha256"] == digest),
        );
        let event = rejects
            .iter()
            .find(|e| e["sha256"] == digest)
            .unwrap_or_else(|| panic!("{what}: not rejected"));
        assert!(event["reason"].as_str().unwrap().contains(reason), "{what}: {event}");
        let kept = if family == "fixture" {
            format!("sha256 {v1_digest} keeps serving")
        } else {
            "the family is not loaded".to_owned()
        };
        let line = format!("component {family} (sha256 {digest}) rejected: ");
        let log = agent.log();
        let logged = log
            .lines()
            .find(|l| l.contains(&line))
            .unwrap_or_else(|| panic!("{what}: {log}"));
        assert!(logged.ends_with(&kept), "{what}: {logged}");
        assert_eq!(c.call(version), r#"{"return": 1}"#, "{what}");
        assert_eq!(
            c.call(r#"{"execute":"fixture-echo","arguments":{"arg":{"i":7}}}"#),
            r#"{"return": {"i": 7}}"#
        );
        if family != "fixture" {
            std::fs::remove_file(handlers.join(name)).unwrap();
        }
    }
    // A good build, pinned, after all that swaps in.
    std::fs::write(
        &policy,
        artifacts::pin("fixture", &sha256(&artifacts::compile("fixture", &v2))),
    )
    .unwrap();
    artifacts::install(&handlers, "fixture", &v2);
    let answer = settle(Duration::from_secs(30), || c.call(version), |r| r == r#"{"return": 2}"#);
    assert_eq!(answer, r#"{"return": 2}"#);
}

/// `bytes` with a custom section appended: the same component, another
/// build (another sha256).
fn rebuilt(bytes: &[u8], tag: usize) -> Vec<u8> {
    let name = b"qga-test-build";
    let payload = format!("build {tag}");
    let mut body = vec![name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(payload.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    out
}

#[test]
fn a_long_run_of_new_builds_leaves_no_code_descriptors_or_artifacts_behind() {
    let scratch = Scratch::new("faults-builds");
    let handlers = scratch.path("handlers");
    std::fs::create_dir_all(&handlers).unwrap();
    let v1 = v1_wasm();
    let policy = scratch.path("policy.toml");
    let digest = artifacts::install(&handlers, "fixture", &v1);
    std::fs::write(&policy, artifacts::pin("fixture", &digest)).unwrap();
    let audit = scratch.path("audit.log");
    let agent = Agent::qga(&[
        "--handlers",
        s(&handlers),
        "--audit-log",
        s(&audit),
        "--policy",
        s(&policy),
    ]);
    let mut c = agent.connect();
    let version = r#"{"execute":"fixture-version"}"#;
    agent.wait_idle();
    let swap = |n: usize| {
        let build = rebuilt(&v1, n);
        let digest = sha256(&artifacts::compile("fixture", &build));
        std::fs::write(&policy, artifacts::pin("fixture", &digest)).unwrap();
        artifacts::install(&handlers, "fixture", &build);
        agent.signal(1);
        let swaps = settle(
            Duration::from_secs(30),
            || audit::events(&audit, "component-swap").len(),
            |k| *k >= n,
        );
        assert_eq!(swaps, n, "swap {n} did not happen");
    };
    swap(1);
    assert_eq!(c.call(version), r#"{"return": 1}"#);
    agent.wait_idle();
    let fds = agent.open_fds();
    let rss = agent.rss_kib();
    for n in 2..=21 {
        swap(n);
        assert_eq!(c.call(version), r#"{"return": 1}"#);
    }
    let after = agent.open_fds();
    // A call after a pause lets the agent hand freed memory back.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(c.call(version), r#"{"return": 1}"#);
    let rss_after = settle(Duration::from_secs(5), || agent.rss_kib(), |r| *r <= rss + (4 << 10));
    eprintln!("20 new builds: fds {fds} -> {after}, RSS {rss} KiB -> {rss_after} KiB");
    // Each build's code and memory image (a descriptor) went with it.
    assert_eq!(after, fds);
    assert!(rss_after <= rss + (4 << 10), "RSS {rss} KiB -> {rss_after} KiB");
}

/// The descriptor numbers a guest-exec'd shell holds, as `ls` lists them.
fn child_fds(c: &mut Client) -> Vec<u32> {
    let pid = exec_pid(
        c,
        r#"{"path":"sh","arg":["-c","ls /proc/$$/fd; true"],"capture-output":true}"#,
    );
    let reply = wait_exited(c, pid);
    let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
    use base64::Engine as _;
    let out = base64::engine::general_purpose::STANDARD
        .decode(v["return"]["out-data"].as_str().unwrap_or_else(|| panic!("{reply}")))
        .unwrap();
    let mut fds: Vec<u32> = String::from_utf8(out)
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    fds.sort();
    fds
}

/// qemu-ga's g_spawn closes every descriptor above 2 in the child. qga's
/// children see only 0, 1 and 2 too: its own descriptors are close-on-exec,
/// and those it inherited (here 7, 9 and 15, open across the exec of
/// the agent) are made so at start-up. Meanwhile the agent holds
/// clients, an open guest-file handle, a child's pipes, the audit and log
/// files.
#[test]
fn guest_exec_children_see_only_stdin_stdout_and_stderr() {
    let scratch = Scratch::new("faults-fds");
    let inherited = scratch.path("inherited");
    std::fs::write(&inherited, "x").unwrap();
    let redirects = format!("7</dev/null 9<>{} 15>&2", inherited.display());
    let state_a = scratch.path("state-qga");
    let state_b = scratch.path("state-qemu-ga");
    std::fs::create_dir_all(&state_a).unwrap();
    std::fs::create_dir_all(&state_b).unwrap();
    let audit = scratch.path("audit.log");
    let logfile = scratch.path("qga.log");
    let qga = start(
        &qga_binary(),
        &state_a,
        &["--audit-log", s(&audit), "-l", s(&logfile)],
        &redirects,
    );
    let qemu = start(&qemu_ga_binary(), &state_b, &[], &redirects);
    for agent in [&qga, &qemu] {
        let held: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", agent.pid()))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        for fd in ["7", "9", "15"] {
            assert!(held.iter().any(|h| h == fd), "the agent did not inherit {fd}: {held:?}");
        }
        let mut c = agent.connect();
        let _idle = agent.connect();
        assert_eq!(open(&mut c, &inherited), r#"{"return": 1000}"#);
        let sleeper = exec_pid(
            &mut c,
            r#"{"path":"sleep","arg":["30"],"capture-output":true,"input-data":"eA=="}"#,
        );
        assert_eq!(child_fds(&mut c), [0, 1, 2], "{}", agent.child.id());
        run("kill", &["-9", &sleeper.to_string()]);
        wait_exited(&mut c, sleeper);
    }
}

/// qemu-ga 7.2 polls the stdin pipe of a child that exited before reading
/// all of its input-data (anything over the 64 KiB a pipe holds) at 100%
/// CPU, forever. qga's agent CPU time over a window after such children
/// stays near zero.
#[test]
fn input_data_over_64_kib_to_a_child_that_exits_leaves_the_agent_idle() {
    use base64::Engine as _;
    let agent = Agent::qga(&[]);
    agent.wait_idle();
    let mut c = agent.connect();
    let data = base64::engine::general_purpose::STANDARD.encode(vec![b'y'; (64 << 10) + 1]);
    for program in [r#""true""#, r#""head", "arg": ["-c", "1"]"#] {
        let pid = exec_pid(&mut c, &format!(r#"{{"path": {program}, "input-data": "{data}"}}"#));
        let reply = wait_exited(&mut c, pid);
        assert!(reply.contains(r#""exitcode": 0"#), "{reply}");
    }
    // A thread polling the dead pipe would never let the agent go quiet.
    agent.wait_idle();
}
