//! The storage family on real filesystems: an ext4 image on a loop device
//! mounted in a private directory (needs root; CI runs as root). Nothing
//! here freezes or trims this machine's own filesystems: freezes go
//! through guest-fsfreeze-freeze-list naming the loop mount only, trims
//! through a grant narrowed to it. Read-only commands are compared with
//! the real qemu-ga 7.2, which reads the same /proc and /sys.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use qga::capabilities::Grant;
use qga::qobject::Value;
use qga::runtime::{Runtime, RuntimeConfig};
use support::loopfs::LoopFs;
use support::{Agent, Client, Scratch, mask, qemu_ga_binary, qga_binary, run};

/// guest-fsfreeze-thaw (qemu-ga's and qga's default grant) thaws every
/// mounted filesystem, so tests that freeze run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Write and fsync a file on `fs` from another thread; the receiver gets
/// `()` when it is done.
fn write_in_thread(fs: &LoopFs, name: &str) -> mpsc::Receiver<()> {
    let path = fs.path().join(name);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&[7u8; 4096]).unwrap();
        f.sync_all().unwrap();
        let _ = tx.send(());
    });
    rx
}

/// A hook script that logs its argument, and fails with the status in
/// `fail-<arg>` when that file exists.
fn hook(dir: &Scratch) -> (PathBuf, PathBuf) {
    let script = dir.path("hook.sh");
    let log = dir.path("hook.log");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$1\" >> {log}\nif [ -e {dir}/fail-$1 ]; then exit $(cat {dir}/fail-$1); fi\nexit 0\n",
            log = log.display(),
            dir = dir.0.display()
        ),
    )
    .unwrap();
    run("chmod", &["+x", script.to_str().unwrap()]);
    (script, log)
}

/// Start an agent on a given state directory (so a restart finds it).
fn start_in(binary: &Path, state: &Path, args: &[&str]) -> Agent {
    Agent::start_with(binary, args, Some(state), None)
}

fn freeze_list(c: &mut Client, mnt: &str) -> String {
    c.call(&format!(
        r#"{{"execute":"guest-fsfreeze-freeze-list","arguments":{{"mountpoints":["{mnt}"]}}}}"#
    ))
}

const STATUS: &str = r#"{"execute":"guest-fsfreeze-status"}"#;
const THAW: &str = r#"{"execute":"guest-fsfreeze-thaw"}"#;

#[test]
fn freeze_blocks_writes_until_thaw_and_runs_hook_around_it() {
    let _serial = serial();
    let fs = LoopFs::new("freeze", 64 << 20);
    let dir = Scratch::new("hook");
    let (script, log) = hook(&dir);
    let hook_arg = format!("-F{}", script.display());
    let agent = Agent::qga(&[&hook_arg]);
    let mut c = agent.connect();
    let state_file = agent.scratch.path("state").join("qga.state.isfrozen");

    assert_eq!(freeze_list(&mut c, fs.mnt()), r#"{"return": 1}"#);
    assert_eq!(c.call(STATUS), r#"{"return": "frozen"}"#);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "freeze\n");
    assert_eq!(std::fs::read_to_string(&state_file).unwrap(), format!("{}\n", fs.mnt()));

    let done = write_in_thread(&fs, "blocked");
    assert!(
        done.recv_timeout(Duration::from_millis(700)).is_err(),
        "a write on the frozen filesystem completed"
    );
    assert_eq!(
        c.call(r#"{"execute":"guest-get-time"}"#),
        r#"{"error": {"class": "CommandNotFound", "desc": "Command guest-get-time has been disabled: the agent is in frozen state"}}"#
    );
    let info = c.call(r#"{"execute":"guest-info"}"#);
    assert!(
        info.contains(r#"{"enabled": false, "name": "guest-get-time""#),
        "{info}"
    );
    assert!(
        info.contains(r#"{"enabled": true, "name": "guest-fsfreeze-thaw""#),
        "{info}"
    );

    assert_eq!(c.call(THAW), r#"{"return": 1}"#);
    done.recv_timeout(Duration::from_secs(10))
        .expect("the write completes after thaw");
    assert_eq!(c.call(STATUS), r#"{"return": "thawed"}"#);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "freeze\nthaw\n");
    assert!(!state_file.exists());
    assert!(c.call(r#"{"execute":"guest-get-time"}"#).starts_with(r#"{"return": "#));
}

#[test]
fn agent_killed_while_frozen_comes_back_frozen_and_thaws() {
    let _serial = serial();
    let fs = LoopFs::new("killed", 64 << 20);
    let state = Scratch::new("state");
    let mut agent = start_in(&qga_binary(), &state.0, &[]);
    let mut c = agent.connect();
    assert_eq!(freeze_list(&mut c, fs.mnt()), r#"{"return": 1}"#);
    agent.signal(9);
    agent.wait_exit(Duration::from_secs(5));
    drop(agent);

    let done = write_in_thread(&fs, "after-kill");
    assert!(done.recv_timeout(Duration::from_millis(500)).is_err());

    let agent = start_in(&qga_binary(), &state.0, &["-b", "guest-get-time"]);
    let mut c = agent.connect();
    assert_eq!(c.call(STATUS), r#"{"return": "frozen"}"#);
    // As qemu-ga restarted frozen: a blocked command is only "disabled".
    assert_eq!(
        c.call(r#"{"execute":"guest-get-time"}"#),
        r#"{"error": {"class": "CommandNotFound", "desc": "Command guest-get-time has been disabled"}}"#
    );
    assert!(
        c.call(r#"{"execute":"guest-get-osinfo"}"#)
            .contains("the agent is in frozen state")
    );
    assert_eq!(c.call(THAW), r#"{"return": 1}"#);
    done.recv_timeout(Duration::from_secs(10))
        .expect("the write completes after thaw");
    assert_eq!(c.call(STATUS), r#"{"return": "thawed"}"#);
    assert!(!state.path("qga.state.isfrozen").exists());
}

#[test]
fn failing_hook_fails_like_qemu_ga() {
    let _serial = serial();
    let fs = LoopFs::new("hookfail", 64 << 20);
    for binary in [qga_binary(), qemu_ga_binary()] {
        let dir = Scratch::new("hook");
        let (script, log) = hook(&dir);
        let hook_arg = format!("-F{}", script.display());
        let state = Scratch::new("state");
        let agent = start_in(&binary, &state.0, &[&hook_arg]);
        let mut c = agent.connect();
        let who = binary.display();

        // Freeze hook fails: nothing frozen, the state stays thawed.
        std::fs::write(dir.path("fail-freeze"), "3").unwrap();
        assert_eq!(
            freeze_list(&mut c, fs.mnt()),
            r#"{"error": {"class": "GenericError", "desc": "fsfreeze hook has failed with status 3"}}"#,
            "{who}"
        );
        assert_eq!(c.call(STATUS), r#"{"return": "thawed"}"#, "{who}");
        write_in_thread(&fs, "w1")
            .recv_timeout(Duration::from_secs(5))
            .expect("not frozen");

        // Thaw hook fails: filesystems are thawed anyway, the error is reported.
        std::fs::remove_file(dir.path("fail-freeze")).unwrap();
        std::fs::write(dir.path("fail-thaw"), "4").unwrap();
        assert_eq!(freeze_list(&mut c, fs.mnt()), r#"{"return": 1}"#, "{who}");
        assert_eq!(
            c.call(THAW),
            r#"{"error": {"class": "GenericError", "desc": "fsfreeze hook has failed with status 4"}}"#,
            "{who}"
        );
        assert_eq!(c.call(STATUS), r#"{"return": "thawed"}"#, "{who}");
        write_in_thread(&fs, "w2")
            .recv_timeout(Duration::from_secs(5))
            .expect("thawed");
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "freeze\nfreeze\nthaw\n",
            "{who}: hook order"
        );

        // A hook that is not executable.
        std::fs::remove_file(dir.path("fail-thaw")).unwrap();
        run("chmod", &["-x", script.to_str().unwrap()]);
        assert_eq!(
            freeze_list(&mut c, fs.mnt()),
            format!(
                r#"{{"error": {{"class": "GenericError", "desc": "can't access fsfreeze hook '{}': Permission denied"}}}}"#,
                script.display()
            ),
            "{who}"
        );
        assert_eq!(c.call(STATUS), r#"{"return": "thawed"}"#, "{who}");
    }
}

/// While frozen, both agents give the same answers.
#[test]
fn frozen_answers_match_qemu_ga() {
    let _serial = serial();
    let fs = LoopFs::new("gate", 64 << 20);
    let requests = [
        r#"{"execute":"guest-get-time"}"#,
        r#"{"execute":"guest-fsfreeze-freeze"}"#,
        r#"{"execute":"guest-fsfreeze-freeze-list","arguments":{"mountpoints":[]}}"#,
        r#"{"execute":"guest-get-fsinfo"}"#,
        r#"{"execute":"guest-fstrim"}"#,
        r#"{"execute":"guest-get-time","arguments":{"x":1}}"#,
        r#"{"execute":"guest-no-such-command"}"#,
        r#"{"execute":"guest-fsfreeze-status","arguments":{"x":1}}"#,
        r#"{"execute":"guest-sync","arguments":{"id":5}}"#,
        r#"{"execute":"guest-ping"}"#,
        r#"{"execute":"guest-fsfreeze-status"}"#,
    ];
    let mut answers = Vec::new();
    for agent in [
        Agent::qemu_ga(&["-b", "guest-get-timezone"]),
        Agent::qga(&["-b", "guest-get-timezone"]),
    ] {
        let mut c = agent.connect();
        assert_eq!(freeze_list(&mut c, fs.mnt()), r#"{"return": 1}"#);
        let mut got: Vec<String> = requests.iter().map(|r| c.call(r)).collect();
        // A blocked command says so without the frozen reason.
        got.push(c.call(r#"{"execute":"guest-get-timezone"}"#));
        assert_eq!(c.call(THAW), r#"{"return": 1}"#);
        got.push(c.call(STATUS));
        answers.push(got);
    }
    assert_eq!(answers[0], answers[1]);
    assert!(answers[1][0].contains("has been disabled: the agent is in frozen state"));
}

#[test]
fn read_commands_match_qemu_ga() {
    let _serial = serial();
    let _fs = LoopFs::new("read", 64 << 20);
    let reference = Agent::qemu_ga(&[]);
    // guest-get-fsinfo gained total-bytes-privileged in qemu-ga 9.1: 10.0's
    // answer is the reference for it (README, "Compatibility").
    let reference_10 = Agent::qemu_ga_10(&[]);
    let agent = Agent::qga(&[]);
    let mut r = reference.connect();
    let mut r10 = reference_10.connect();
    let mut q = agent.connect();
    let diskstat_counters = [
        "read-sectors",
        "read-ios",
        "read-merges",
        "write-sectors",
        "write-ios",
        "write-merges",
        "discard-sectors",
        "discard-ios",
        "discard-merges",
        "flush-ios",
        "read-ticks",
        "write-ticks",
        "discard-ticks",
        "flush-ticks",
        "ios-pgr",
        "total-ticks",
        "weight-ticks",
    ];
    for (command, moving) in [
        ("guest-get-fsinfo", &["used-bytes"][..]),
        ("guest-get-disks", &[][..]),
        ("guest-get-diskstats", &diskstat_counters[..]),
    ] {
        let line = format!(r#"{{"execute":"{command}"}}"#);
        let reference = if command == "guest-get-fsinfo" {
            &mut r10
        } else {
            &mut r
        };
        let want = mask(&reference.call(&line), moving);
        let got = mask(&q.call(&line), moving);
        assert_eq!(got, want, "{command}");
        assert!(got.starts_with(r#"{"return": ["#), "{command}: {got}");
    }
    // The loop filesystem is there, with its (stable) sizes.
    let fsinfo = q.call(r#"{"execute":"guest-get-fsinfo"}"#);
    assert!(
        fsinfo.contains(&format!(r#""mountpoint": "{}""#, _fs.mnt())),
        "{fsinfo}"
    );
    assert!(fsinfo.contains(r#""total-bytes-privileged": "#), "{fsinfo}");
}

/// A bind mount of a filesystem already listed is skipped in the mount list
/// fsinfo, fstrim and freeze share, as qemu-ga 10.0 skips it (7.2 listed it,
/// and froze the filesystem twice).
#[test]
fn bind_mounts_are_skipped_as_qemu_ga_10_skips_them() {
    let _serial = serial();
    let fs = LoopFs::new("bind", 32 << 20);
    let bind = Scratch::new("bind-target");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    run("mount", &["--bind", fs.mnt(), bind.0.to_str().unwrap()]);
    let _unmount = Unmount(bind.0.clone());
    let line = r#"{"execute":"guest-get-fsinfo"}"#;
    let theirs = mask(&Agent::qemu_ga_10(&[]).connect().call(line), &["used-bytes"]);
    let ours = mask(&Agent::qga(&[]).connect().call(line), &["used-bytes"]);
    assert_eq!(ours, theirs);
    assert!(ours.contains(&format!(r#""mountpoint": "{}""#, fs.mnt())), "{ours}");
    assert!(
        !ours.contains(&format!(r#""mountpoint": "{}""#, bind.0.display())),
        "{ours}"
    );
    // qemu-ga 7.2 still lists the bind mount: this is 10.0's fix.
    let old = Agent::qemu_ga(&[]).connect().call(line);
    assert!(
        old.contains(&format!(r#""mountpoint": "{}""#, bind.0.display())),
        "{old}"
    );
}

fn runtime_with(state: &Scratch, grants: &[(&str, Grant)]) -> Runtime {
    let mut config = RuntimeConfig::new(state.path("state"));
    for (c, g) in grants {
        config.grants.insert((*c).to_owned(), g.clone());
    }
    Runtime::new(config).unwrap()
}

fn narrowed(command: &str, mount: &str) -> Grant {
    let mut g = qga::policy::manifests::builtin(command, &|_| None);
    g.mounts = vec![mount.to_owned()];
    g
}

#[test]
fn fstrim_on_loop_reports_bytes_trimmed_and_touches_nothing_else() {
    let _serial = serial();
    let fs = LoopFs::new("trim", 64 << 20);
    // Something to discard: write and delete 16 MiB.
    let big = fs.path().join("big");
    std::fs::write(&big, vec![1u8; 16 << 20]).unwrap();
    std::fs::File::open(&big).unwrap().sync_all().unwrap();
    std::fs::remove_file(&big).unwrap();
    run("sync", &[]);

    let state = Scratch::new("rt");
    let rt = runtime_with(&state, &[("guest-fstrim", narrowed("guest-fstrim", fs.mnt()))]);
    let reply = rt.call("guest-fstrim", None).unwrap().unwrap().to_json();
    let Value::Dict(d) = rt.call("guest-fstrim", None).unwrap().unwrap() else {
        panic!("{reply}")
    };
    let Some(Value::List(paths)) = d.get("paths") else {
        panic!("{reply}")
    };
    let mut seen = false;
    for p in paths {
        let Value::Dict(p) = p else { panic!("{reply}") };
        let path = match p.get("path") {
            Some(Value::Str(s)) => s.clone(),
            _ => panic!("{reply}"),
        };
        if path == fs.mnt() {
            seen = true;
            assert_eq!(p.get("minimum").and_then(Value::as_i64), Some(0), "{reply}");
            assert!(p.get("error").is_none(), "{reply}");
        } else {
            let Some(Value::Str(e)) = p.get("error") else {
                panic!("{path} was not refused: {reply}")
            };
            assert!(e.starts_with("permission denied"), "{reply}");
            assert!(p.get("trimmed").is_none(), "{reply}");
        }
    }
    assert!(seen, "{reply}");
    // The first call trimmed the freed 16 MiB (ext4 reports the free
    // extents it discarded).
    let first = &reply;
    let trimmed: i64 = {
        let i = first.find(&format!(r#""path": "{}""#, fs.mnt())).unwrap();
        let obj_start = first[..i].rfind('{').unwrap();
        let obj_end = obj_start + first[obj_start..].find('}').unwrap();
        let obj = &first[obj_start..obj_end];
        let k = obj.find(r#""trimmed": "#).expect("trimmed") + 11;
        obj[k..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    assert!(trimmed >= 16 << 20, "trimmed {trimmed}: {first}");

    let mut args = qga::qobject::Dict::new();
    args.insert("minimum", Value::Int(1 << 20));
    let again = rt.call("guest-fstrim", Some(&args)).unwrap().unwrap().to_json();
    assert!(again.contains(r#""minimum": 1048576"#), "{again}");
}

#[test]
fn freeze_outside_the_grant_is_refused_before_any_hook() {
    let _serial = serial();
    let fs = LoopFs::new("deny", 64 << 20);
    let state = Scratch::new("rt");
    let rt = runtime_with(
        &state,
        &[(
            "guest-fsfreeze-freeze-list",
            narrowed("guest-fsfreeze-freeze-list", fs.mnt()),
        )],
    );
    let mut args = qga::qobject::Dict::new();
    args.insert(
        "mountpoints",
        Value::List(vec![Value::Str("/nonexistent-qga-mount".into())]),
    );
    let err = rt.call("guest-fsfreeze-freeze-list", Some(&args)).unwrap_err();
    assert_eq!(
        err.desc,
        "guest-fsfreeze-freeze-list: permission denied: guest-fsfreeze-freeze-list may not use mount point /nonexistent-qga-mount"
    );
    assert_eq!(
        rt.call("guest-fsfreeze-status", None).unwrap().unwrap().to_json(),
        r#""thawed""#
    );
    // Within the grant it freezes, and thaw works.
    let mut args = qga::qobject::Dict::new();
    args.insert("mountpoints", Value::List(vec![Value::Str(fs.mnt().into())]));
    assert_eq!(
        rt.call("guest-fsfreeze-freeze-list", Some(&args))
            .unwrap()
            .unwrap()
            .to_json(),
        "1"
    );
    assert_eq!(
        rt.call("guest-fsfreeze-status", None).unwrap().unwrap().to_json(),
        r#""frozen""#
    );
    let thaw = qga::policy::manifests::builtin("guest-fsfreeze-thaw", &|_| None);
    assert!(thaw.allows_mount(fs.mnt()));
    assert_eq!(rt.call("guest-fsfreeze-thaw", None).unwrap().unwrap().to_json(), "1");
}

#[test]
fn freeze_and_thaw_need_a_mount_point_in_the_grant() {
    // guest-fsfreeze-status's grant holds the freeze capability but no
    // mount point: a handler given it can read the state, never freeze,
    // thaw or run the hook. Here thaw and freeze-list are given such grants.
    let state = Scratch::new("rt");
    let no_mounts = |command: &str| {
        let mut g = qga::policy::manifests::builtin(command, &|_| None);
        g.mounts.clear();
        g
    };
    let rt = runtime_with(
        &state,
        &[
            ("guest-fsfreeze-thaw", no_mounts("guest-fsfreeze-thaw")),
            ("guest-fsfreeze-freeze", no_mounts("guest-fsfreeze-freeze")),
        ],
    );
    for command in ["guest-fsfreeze-thaw", "guest-fsfreeze-freeze"] {
        assert_eq!(
            rt.call(command, None).unwrap_err().desc,
            format!("{command}: permission denied: {command} may not freeze or thaw: it is granted no mount point")
        );
    }
    assert!(
        qga::policy::manifests::builtin("guest-fsfreeze-status", &|_| None)
            .mounts
            .is_empty()
    );
    assert!(qga::policy::manifests::builtin("guest-fsfreeze-status", &|_| None).is_prompt());
    assert_eq!(
        rt.call("guest-fsfreeze-status", None).unwrap().unwrap().to_json(),
        r#""thawed""#
    );
}
