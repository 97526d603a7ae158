//! End to end in a real VM: the tests/vm image (Debian cloud kernel, busybox
//! initramfs, qga and /usr/sbin/qemu-ga 7.2 both in it) booted under qemu TCG;
//! the agent is driven from the host over the virtio-serial chardev (and once
//! over isa-serial) exactly as libvirt does. qemu-ga is booted in the same
//! image first and every reply of qga is compared with its reply.
//!
//! Numbers (boot to first reply, ping p50/p90, idle CPU) are printed:
//! `cargo test --release --test vm -- --nocapture`.

mod support;

use std::time::{Duration, Instant};

use qga::qobject::Value;
use support::vm::{
    BOOT_DEADLINE, Boot, Chan, GUEST_QEMU_GA, GUEST_QGA, TaskSample, Vm, image, parse, percentile, vm_lock,
};

/// How a reply of qga is compared with qemu-ga's.
// Masked and PowersOff are used by the CASES lines of families not on main yet.
#[allow(dead_code)]
#[derive(Clone, Copy)]
enum Compare {
    /// Byte for byte.
    Exact,
    /// An integer of nanoseconds close to the host's clock (the guest's clock
    /// comes from the RTC = the host's UTC time).
    Time,
    /// guest-info: every command qga lists has qemu-ga's entry, in qemu-ga's
    /// order; the version is qga's own.
    Info,
    /// Equal once the values of these members (anywhere) are masked.
    Masked(&'static [&'static str]),
    /// No reply; the VM powers off (must be the last case).
    PowersOff,
}
use Compare::*;

/// Every command qga has on main, in the order they are sent (a fresh disk
/// per boot, so stateful sequences replay identically for both agents).
/// When a family lands, add one line per command here; the commented lines
/// are ready for the families not on main yet.
const CASES: &[(&str, Compare)] = &[
    (r#"{"execute":"guest-ping"}"#, Exact),
    (r#"{"execute":"guest-info"}"#, Info),
    // system-info
    (r#"{"execute":"guest-get-time"}"#, Time),
    (r#"{"execute":"guest-get-host-name"}"#, Exact),
    (r#"{"execute":"guest-get-timezone"}"#, Exact),
    (r#"{"execute":"guest-get-osinfo"}"#, Exact),
    (r#"{"execute":"guest-get-users"}"#, Exact),
    (r#"{"execute":"guest-get-devices"}"#, Exact),
    // errors are answered the same way in the guest
    (r#"{"execute":"guest-no-such-command"}"#, Exact),
    (r#"{"execute":"guest-get-host-name","arguments":{"x":1}}"#, Exact),
    // storage (fsinfo/disks/freeze/trim); /dev/vda is mounted on /mnt/data (--mount)
    (
        r#"{"execute":"guest-get-fsinfo"}"#,
        Masked(&["used-bytes", "total-bytes"]),
    ),
    (r#"{"execute":"guest-get-disks"}"#, Exact),
    (r#"{"execute":"guest-get-diskstats"}"#, Masked(&["stats"])),
    (r#"{"execute":"guest-fsfreeze-status"}"#, Exact),
    (r#"{"execute":"guest-fsfreeze-freeze"}"#, Exact),
    (r#"{"execute":"guest-fsfreeze-status"}"#, Exact),
    // only the freeze allowlist runs while frozen
    (r#"{"execute":"guest-get-time"}"#, Exact),
    (r#"{"execute":"guest-get-osinfo"}"#, Exact),
    (r#"{"execute":"guest-fsfreeze-thaw"}"#, Exact),
    (r#"{"execute":"guest-fstrim"}"#, Masked(&["trimmed", "minimum"])),
    (
        r#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":["/mnt/data"]}}"#,
        Exact,
    ),
    (r#"{"execute":"guest-fsfreeze-status"}"#, Exact),
    (r#"{"execute":"guest-fsfreeze-thaw"}"#, Exact),
    // network
    // Addresses are compared byte for byte on the host (tests/system_vs_qemu_ga.rs);
    // in the guest the IPv6 link-local one appears a moment after link-up.
    (
        r#"{"execute":"guest-network-get-interfaces"}"#,
        Masked(&["statistics", "ip-addresses"]),
    ),
    // vcpus
    (r#"{"execute":"guest-get-vcpus"}"#, Exact),
    (
        r#"{"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":1,"online":false}]}}"#,
        Exact,
    ),
    (r#"{"execute":"guest-get-vcpus"}"#, Exact),
    (
        r#"{"execute":"guest-set-vcpus","arguments":{"vcpus":[{"logical-id":1,"online":true}]}}"#,
        Exact,
    ),
    // password and ssh keys (user qgatest)
    (
        r#"{"execute":"guest-set-user-password","arguments":{"username":"qgatest","password":"czNjcmV0","crypted":false}}"#,
        Exact,
    ),
    (
        r#"{"execute":"guest-set-user-password","arguments":{"username":"nosuchuser","password":"czNjcmV0","crypted":false}}"#,
        Exact,
    ),
    (
        r#"{"execute":"guest-ssh-add-authorized-keys","arguments":{"username":"qgatest","keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGr0Yf0 qgatest@qgavm"]}}"#,
        Exact,
    ),
    (
        r#"{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"qgatest"}}"#,
        Exact,
    ),
    (
        r#"{"execute":"guest-ssh-remove-authorized-keys","arguments":{"username":"qgatest","keys":["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGr0Yf0 qgatest@qgavm"]}}"#,
        Exact,
    ),
    // files and exec
    (
        r#"{"execute":"guest-file-open","arguments":{"path":"/mnt/data/hello.txt"}}"#,
        Masked(&["return"]),
    ),
    (
        r#"{"execute":"guest-exec","arguments":{"path":"/bin/cat","arg":["/mnt/data/hello.txt"],"capture-output":true}}"#,
        Masked(&["pid"]),
    ),
    // system (must stay last: the guest powers off)
    (r#"{"execute":"guest-shutdown"}"#, PowersOff),
];

/// Commands covered without a CASES line (the resync uses them).
const COVERED_ELSEWHERE: &[&str] = &[
    "guest-sync",
    "guest-sync-delimited",
    // qemu-ga 10.0's, against qemu-ga 10.0 in tests/qemu_ga_10.rs.
    "guest-get-load",
    "guest-network-get-route",
    // Against qemu-ga in tests/fixtures/files-exec.jsonl and tests/files_exec.rs.
    "guest-file-open",
    "guest-file-close",
    "guest-file-read",
    "guest-file-write",
    "guest-file-seek",
    "guest-file-flush",
    "guest-exec",
    "guest-exec-status",
    // Against qemu-ga and read back in the guest by tests/vm_system.rs.
    "guest-get-memory-blocks",
    "guest-set-memory-blocks",
    "guest-get-memory-block-info",
    "guest-get-cpustats",
    "guest-set-time",
    "guest-suspend-ram",
    "guest-suspend-disk",
    "guest-suspend-hybrid",
];

const PINGS: usize = 200;
const PING: &str = r#"{"execute":"guest-ping"}"#;
const PONG: &str = r#"{"return": {}}"#;

/// What one boot of one agent showed.
struct Observed {
    agent: &'static str,
    first_reply: Duration,
    pings: Vec<Duration>,
    /// Each reply with the host's clock (ns) when it arrived.
    replies: Vec<(String, i128)>,
    /// Agent CPU ticks (1/100 s) over `idle_secs` of guest time with no host connected.
    idle_ticks: u64,
    idle_secs: f64,
    /// The agent's threads sampled over that window (each thread, each
    /// sample): asleep in a system call or not.
    idle_tasks: Vec<TaskSample>,
    /// After a half request and a disconnect: did a plain (libvirt) resync work?
    plain_resync_after_half_request: bool,
    powered_off: bool,
}

fn host_now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

/// Boot the image with `agent` on virtio-serial and put it through everything.
fn exercise(agent: &'static str) -> Observed {
    let mut vm = Vm::boot(image(), &Boot::virtio(agent));
    let mut chan = vm.connect("qga.sock", BOOT_DEADLINE);
    let first_reply = vm.started.elapsed();

    // The command table (replies kept for the comparison); the one that
    // powers the guest off goes last, after everything else below.
    let mut replies = Vec::new();
    let mut power_off = None;
    for (request, compare) in CASES {
        if let PowersOff = compare {
            power_off = Some(*request);
            break;
        }
        let reply = chan.call(request);
        replies.push((reply, host_now_ns()));
    }

    // Ping round trips.
    let mut pings = Vec::with_capacity(PINGS);
    for _ in 0..PINGS {
        let t = Instant::now();
        let reply = chan.call(PING);
        pings.push(t.elapsed());
        assert_eq!(reply, PONG, "{agent}");
    }
    pings.sort();

    // The host side disconnects with replies still in flight, reconnects and
    // resyncs: stale replies are skipped, nothing else arrives afterwards.
    for round in 0..3 {
        match round {
            0 => chan.send(b"{\"execute\":\"guest-info\"}\n"),
            1 => chan.send(PING.repeat(50).as_bytes()),
            _ => {
                chan.send(PING.repeat(20).as_bytes());
                let _ = chan.read_line(Instant::now() + Duration::from_secs(5));
            }
        }
        drop(chan);
        chan = vm.connect("qga.sock", Duration::from_secs(30));
        assert_eq!(chan.call(PING), PONG, "{agent}: round {round}");
        assert!(
            chan.is_quiet(Duration::from_millis(500)),
            "{agent}: stray output after resync"
        );
    }

    // Half a request, then the host goes away; the next client resyncs. A
    // plain resync cannot finish the half request for the agent (its parser
    // holds it: virtio-serial has no connection boundaries), so after a short
    // try the client resets the parser with 0xFF, as the QAPI schema says.
    chan.send(br#"{"execute":"guest-sync","arguments":{"id":"#);
    drop(chan);
    let stream = std::os::unix::net::UnixStream::connect(vm.socket("qga.sock")).unwrap();
    chan = Chan::from_stream(stream);
    let plain = chan.sync(Instant::now() + Duration::from_secs(3), false).is_ok();
    if !plain {
        chan.sync(Instant::now() + Duration::from_secs(30), true)
            .unwrap_or_else(|e| panic!("{agent}: no resync after a half request: {e}\n{}", vm.console_tail()));
    }
    assert_eq!(chan.call(PING), PONG, "{agent}");

    // No host connected: the agent must sleep, not spin.
    let before = vm.cpu_samples(agent_comm(agent));
    let u0 = before
        .last()
        .map(|s| s.0)
        .unwrap_or_else(|| panic!("{agent}: no QGA-VM-CPU samples on the console:\n{}", vm.console_tail()));
    drop(chan);
    std::thread::sleep(Duration::from_secs(7));
    let window: Vec<_> = vm
        .cpu_samples(agent_comm(agent))
        .into_iter()
        .filter(|s| s.0 >= u0 + 1.5)
        .collect();
    assert!(
        window.len() >= 3,
        "{agent}: too few CPU samples:\n{}",
        vm.console_tail()
    );
    let (first, last) = (window[0], window[window.len() - 1]);
    assert_eq!(first.1, last.1, "{agent} was restarted");
    let idle_ticks = last.2 - first.2;
    let idle_secs = last.0 - first.0;
    let idle_tasks: Vec<TaskSample> = vm
        .task_samples(agent_comm(agent))
        .into_iter()
        .filter(|t| t.pid == first.1 && t.uptime >= first.0 && t.uptime <= last.0)
        .collect();

    // Still there afterwards, never restarted.
    let mut chan = vm.connect("qga.sock", Duration::from_secs(30));
    let console = vm.console();
    assert!(
        !console.contains("QGA-VM-AGENT-EXIT"),
        "{agent} exited during the run:\n{}",
        vm.console_tail()
    );
    let mut powered_off = false;
    if let Some(request) = power_off {
        chan.send(format!("{request}\n").as_bytes());
        assert!(chan.is_quiet(Duration::from_secs(2)), "{agent}: {request} answered");
        powered_off = vm.wait_exit(Duration::from_secs(60));
        replies.push((String::new(), host_now_ns()));
    }
    Observed {
        agent,
        first_reply,
        pings,
        replies,
        idle_ticks,
        idle_secs,
        idle_tasks,
        plain_resync_after_half_request: plain,
        powered_off,
    }
}

fn agent_comm(agent: &str) -> &str {
    agent.rsplit('/').next().unwrap()
}

fn drop_keys(value: &mut Value, keys: &[&str]) {
    match value {
        Value::Dict(d) => {
            for k in keys {
                d.remove(k);
            }
            let names: Vec<String> = d.iter().map(|(k, _)| k.to_owned()).collect();
            for k in names {
                if let Some(mut v) = d.remove(&k) {
                    drop_keys(&mut v, keys);
                    d.insert(k, v);
                }
            }
        }
        Value::List(items) => items.iter_mut().for_each(|v| drop_keys(v, keys)),
        _ => {}
    }
}

fn mask(value: &mut Value, keys: &[&str]) {
    match value {
        Value::Dict(d) => {
            let names: Vec<String> = d.iter().map(|(k, _)| k.to_owned()).collect();
            for k in names {
                if keys.contains(&k.as_str()) {
                    d.insert(k, Value::Null);
                } else if let Some(v) = d.remove(&k) {
                    let mut v = v;
                    mask(&mut v, keys);
                    d.insert(k, v);
                }
            }
        }
        Value::List(items) => items.iter_mut().for_each(|v| mask(v, keys)),
        _ => {}
    }
}

fn compare(request: &str, how: Compare, (ours, our_time): &(String, i128), (theirs, their_time): &(String, i128)) {
    let (ours, theirs) = (ours.as_str(), theirs.as_str());
    match how {
        Exact => assert_eq!(ours, theirs, "{request}"),
        Masked(keys) => {
            let (mut a, mut b) = (parse(ours), parse(theirs));
            // qemu-ga 10.0's members that qemu-ga 7.2 lacks (README,
            // "Compatibility"): compared with 10.0 in tests/storage.rs.
            drop_keys(&mut a, &["total-bytes-privileged"]);
            mask(&mut a, keys);
            mask(&mut b, keys);
            assert_eq!(a.to_json(), b.to_json(), "{request}: {ours} vs {theirs}");
        }
        Time => {
            for (reply, at) in [(ours, our_time), (theirs, their_time)] {
                let ns = parse(reply)
                    .as_dict()
                    .and_then(|d| d.get("return").cloned())
                    .and_then(|v| v.as_i64())
                    .unwrap_or_else(|| panic!("{request}: {reply}"));
                let off = (i128::from(ns) - at).abs();
                assert!(
                    off < 10_000_000_000,
                    "{request}: {reply} is {off} ns off the host clock"
                );
            }
        }
        Info => {
            let list = |reply: &str| -> (Value, Vec<Value>) {
                let v = parse(reply);
                let ret = v.as_dict().and_then(|d| d.get("return")).cloned().expect("return");
                let cmds = match ret.as_dict().and_then(|d| d.get("supported_commands")) {
                    Some(Value::List(l)) => l.clone(),
                    _ => panic!("{reply}"),
                };
                (ret.as_dict().unwrap().get("version").cloned().unwrap(), cmds)
            };
            let (version, ours) = list(ours);
            let (_, theirs) = list(theirs);
            assert!(matches!(version, Value::Str(_)), "{version:?}");
            let name = |c: &Value| c.as_dict().unwrap().get("name").unwrap().as_str().unwrap().to_owned();
            // qemu-ga's entries for qga's commands, in qemu-ga's order.
            let expected: Vec<String> = theirs
                .iter()
                .filter(|t| ours.iter().any(|o| name(o) == name(t)))
                .map(Value::to_json)
                .collect();
            // (qemu-ga 10.0's commands, which 7.2 lacks, are compared with
            // 10.0 in tests/qemu_ga_10.rs.)
            let got: Vec<String> = ours
                .iter()
                .filter(|o| theirs.iter().any(|t| name(o) == name(t)))
                .map(Value::to_json)
                .collect();
            assert_eq!(got, expected, "guest-info: qga's entries differ from qemu-ga's");
            // Every command qga enables is exercised here.
            for c in &ours {
                let n = name(c);
                let enabled = c.as_dict().unwrap().get("enabled") == Some(&Value::Bool(true));
                assert!(
                    !enabled
                        || COVERED_ELSEWHERE.contains(&n.as_str())
                        || CASES.iter().any(|(r, _)| r.contains(&format!("\"{n}\""))),
                    "qga supports {n} but tests/vm.rs CASES has no line for it: add one"
                );
            }
        }
        PowersOff => assert_eq!(ours, theirs, "{request}"),
    }
}

fn report(o: &Observed) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if o.pings.is_empty() {
        eprintln!("vm: {:<20} first reply {:.2} s", o.agent, o.first_reply.as_secs_f64());
        return;
    }
    eprintln!(
        "vm: {:<20} boot to first reply {:.2} s; ping over virtio-serial p50 {:.3} ms p90 {:.3} ms max {:.3} ms ({} pings); \
         idle CPU with no host {} ticks in {:.1} s, threads asleep in a system call at {} of {} thread samples; \
         plain resync after half request: {}",
        o.agent,
        o.first_reply.as_secs_f64(),
        ms(percentile(&o.pings, 0.5)),
        ms(percentile(&o.pings, 0.9)),
        ms(*o.pings.last().unwrap()),
        o.pings.len(),
        o.idle_ticks,
        o.idle_secs,
        o.idle_tasks.iter().filter(|t| t.is_blocked()).count(),
        o.idle_tasks.len(),
        if o.plain_resync_after_half_request {
            "yes"
        } else {
            "no (0xFF reset needed)"
        },
    );
}

/// Every thread sampled over the idle window was asleep in a system call
/// at more than half of its samples.
fn assert_sleeps_while_idle(tasks: &[TaskSample]) {
    let mut by_thread: std::collections::BTreeMap<u32, Vec<&TaskSample>> = Default::default();
    for t in tasks {
        by_thread.entry(t.tid).or_default().push(t);
    }
    let samples = by_thread.values().map(Vec::len).max().unwrap_or(0);
    assert!(samples >= 3, "too few thread samples while idle: {tasks:?}");
    for (tid, seen) in &by_thread {
        let blocked = seen.iter().filter(|t| t.is_blocked()).count();
        assert!(
            blocked * 2 > seen.len(),
            "qga spins with no host connected: thread {tid} was asleep in a system call at {blocked} of {} samples: {seen:?}",
            seen.len()
        );
    }
}

#[test]
fn qga_answers_like_qemu_ga_over_virtio_serial_in_the_same_image() {
    let _lock = vm_lock();
    let theirs = exercise(GUEST_QEMU_GA);
    report(&theirs);
    let ours = exercise(GUEST_QGA);
    report(&ours);
    for (i, (request, how)) in CASES.iter().enumerate() {
        compare(request, *how, &ours.replies[i], &theirs.replies[i]);
    }
    assert_eq!(ours.powered_off, theirs.powered_off, "guest-shutdown");
    // qga looks at the port every 100 ms while no host is connected
    // (qemu-ga 7.2 every 5 ms). Whether it spins is read from what its
    // threads do, not from a CPU budget a loaded host can break (the ticks
    // are printed above; `qga-bench --only vm-boot` measures them): at each
    // sample, an idle agent's threads sleep in a system call; a spinning
    // thread is found running (or runnable) at nearly every one. A thread
    // may be caught in its 100 ms look at the port now and then, never at
    // most samples.
    assert_sleeps_while_idle(&ours.idle_tasks);
}

#[test]
fn qga_on_isa_serial() {
    let _lock = vm_lock();
    let vm = Vm::boot(
        image(),
        &Boot {
            agent: GUEST_QGA,
            agent_args: "-m isa-serial -p /dev/ttyS1",
            isa_serial: true,
            cpu: None,
        },
    );
    let mut chan = vm.connect("isa.sock", BOOT_DEADLINE);
    let first = vm.started.elapsed();
    assert_eq!(chan.call(PING), PONG);
    assert_eq!(
        chan.call(r#"{"execute":"guest-get-host-name"}"#),
        r#"{"return": {"host-name": "qgavm"}}"#
    );
    assert_eq!(
        chan.call(r#"{"execute":"guest-get-timezone"}"#),
        r#"{"return": {"zone": "UTC", "offset": 0}}"#
    );
    let mut pings = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        assert_eq!(chan.call(PING), PONG);
        pings.push(t.elapsed());
    }
    pings.sort();
    // Disconnect and resync on the serial line too.
    chan.send(b"{\"execute\":\"guest-info\"}\n");
    drop(chan);
    let mut chan = vm.connect("isa.sock", Duration::from_secs(30));
    assert_eq!(chan.call(PING), PONG);
    assert!(!vm.console().contains("QGA-VM-AGENT-EXIT"), "{}", vm.console_tail());
    eprintln!(
        "vm: qga on isa-serial: boot to first reply {:.2} s; ping p50 {:.3} ms",
        first.as_secs_f64(),
        percentile(&pings, 0.5).as_secs_f64() * 1000.0
    );
}

/// qga-client (the workspace's build, beside this test's deps/ directory).
fn qga_client_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap()
        .join("qga-client");
    assert!(
        path.exists(),
        "{} is missing: cargo build --release -p qga-client",
        path.display()
    );
    path
}

#[test]
fn qga_client_drives_the_virtio_serial_chardev() {
    let _lock = vm_lock();
    let mut vm = Vm::boot(image(), &Boot::virtio(GUEST_QGA));
    // Wait for the boot (and leave a half-read session behind: the client
    // must resync past it).
    let mut chan = vm.connect("qga.sock", BOOT_DEADLINE);
    chan.send(b"{\"execute\":\"guest-info\"}\n");
    drop(chan);
    let socket = vm.socket("qga.sock");
    let client = |args: &[&str]| {
        let out = std::process::Command::new(qga_client_binary())
            .arg("-s")
            .arg(&socket)
            .args(["-w", "60"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "qga-client {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            vm.console_tail()
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    assert_eq!(client(&["hostname"]).0, "qgavm\n");
    assert_eq!(client(&["fsfreeze", "status"]).0, "thawed\n");
    assert_eq!(client(&["exec", "--", "echo", "from the guest"]).0, "from the guest\n");
    let scratch = support::Scratch::new("vm-client");
    let src = scratch.path("src");
    let data: Vec<u8> = (0..(1u32 << 20) + 7)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();
    let (_, said) = client(&[
        "cp",
        "--verify",
        "--chunk",
        "262144",
        src.to_str().unwrap(),
        "guest:/tmp/copied",
    ]);
    assert!(said.contains("verified: SHA-256"), "{said}");
    let back = scratch.path("back");
    client(&["cp", "guest:/tmp/copied", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == data, "the copy out differs");
    client(&["shutdown"]);
    assert!(
        vm.wait_exit(Duration::from_secs(120)),
        "the VM did not power off\n{}",
        vm.console_tail()
    );
}

/// The embedded families are precompiled for the x86-64 baseline: on QEMU's
/// `qemu64` CPU model (no SSE4, no AVX) every family loads and answers.
#[test]
fn every_family_runs_on_a_qemu64_cpu() {
    let _lock = vm_lock();
    let vm = Vm::boot(
        image(),
        &Boot {
            cpu: Some("qemu64"),
            ..Boot::virtio(GUEST_QGA)
        },
    );
    let mut chan = vm.connect("qga.sock", BOOT_DEADLINE);
    assert_eq!(chan.call(PING), PONG);
    // The guest's CPU really lacks what a host-tuned compile would use.
    let open = chan.call(r#"{"execute":"guest-file-open","arguments":{"path":"/proc/cpuinfo"}}"#);
    let json = |reply: &str| serde_json::from_str::<serde_json::Value>(reply).unwrap();
    let handle = json(&open)["return"].as_i64().unwrap_or_else(|| panic!("{open}"));
    let read = chan.call(&format!(
        r#"{{"execute":"guest-file-read","arguments":{{"handle":{handle},"count":65536}}}}"#
    ));
    let b64 = json(&read)["return"]["buf-b64"]
        .as_str()
        .unwrap_or_else(|| panic!("{read}"))
        .to_owned();
    use base64::Engine as _;
    let cpuinfo = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap();
    let flags = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .expect("flags line")
        .to_owned();
    for missing in [" sse4_1", " sse4_2", " avx", " avx2", " bmi1", " popcnt"] {
        assert!(!flags.contains(missing), "qemu64 has{missing}: {flags}");
    }
    // One call per family; each must reach its handler (a reply from the
    // family, not "handler unavailable" or a dead agent).
    let calls: &[(&str, &str)] = &[
        ("system-info", r#"{"execute":"guest-get-osinfo"}"#),
        ("storage", r#"{"execute":"guest-get-fsinfo"}"#),
        (
            "file",
            &format!(r#"{{"execute":"guest-file-close","arguments":{{"handle":{handle}}}}}"#),
        ),
        ("exec", r#"{"execute":"guest-exec","arguments":{"path":"/bin/true"}}"#),
        ("network", r#"{"execute":"guest-network-get-interfaces"}"#),
        ("hardware", r#"{"execute":"guest-get-vcpus"}"#),
        ("time", r#"{"execute":"guest-get-time"}"#),
        (
            "accounts",
            r#"{"execute":"guest-ssh-get-authorized-keys","arguments":{"username":"root"}}"#,
        ),
        // Power: a wrongly typed argument never shuts the guest down, but
        // the family loads to convert it.
        ("power", r#"{"execute":"guest-shutdown","arguments":{"mode":5}}"#),
    ];
    for (family, request) in calls {
        let reply = chan.call(request);
        assert!(!reply.contains("handler unavailable"), "{family}: {reply}");
        assert!(!reply.contains("handler crashed"), "{family}: {reply}");
        match *family {
            // Whether root has keys depends on the image: either answer.
            "accounts" => assert!(json(&reply).is_object(), "{family}: {reply}"),
            "power" => assert!(reply.contains("Invalid parameter type"), "{family}: {reply}"),
            _ => assert!(reply.starts_with(r#"{"return": "#), "{family}: {reply}"),
        }
    }
    assert_eq!(chan.call(PING), PONG);
    assert!(!vm.console().contains("QGA-VM-AGENT-EXIT"), "{}", vm.console_tail());
}

/// The idle check fails on a thread found running at most samples, and
/// passes threads that sleep but for one look at the port.
#[test]
fn the_idle_check_tells_a_spinning_thread_from_a_sleeping_one() {
    let sample = |tid, i: u32, state, syscall: &str| TaskSample {
        uptime: 10.0 + f64::from(i),
        pid: 100,
        tid,
        state,
        syscall: syscall.to_owned(),
    };
    let mut idle = Vec::new();
    let mut spinning = Vec::new();
    for i in 0..6 {
        idle.push(sample(100, i, 'S', "232"));
        idle.push(sample(
            101,
            i,
            if i == 2 { 'R' } else { 'S' },
            if i == 2 { "running" } else { "202" },
        ));
        spinning.push(sample(100, i, 'S', "232"));
        spinning.push(sample(101, i, 'R', if i == 3 { "7" } else { "running" }));
    }
    assert_sleeps_while_idle(&idle);
    let caught = std::panic::catch_unwind(|| assert_sleeps_while_idle(&spinning));
    assert!(caught.is_err(), "a thread running at 6 of 6 samples passed");
    assert!(std::panic::catch_unwind(|| assert_sleeps_while_idle(&[])).is_err());
}
