//! The command line and config file, compared with qemu-ga 7.2 where it
//! has the same option (with qemu-ga 10.0 where 10.0 changed the answer:
//! `-D`'s allow-rpcs line, `-b help`'s two new commands, `-c`).

mod support;

use std::process::Command;
use std::time::Duration;

use support::{Agent, Scratch, qemu_ga_10_binary, qemu_ga_binary, qga_binary};

fn dump(binary: &std::path::Path, args: &[&str], conf: Option<&str>) -> (String, bool) {
    let scratch = Scratch::new("dump");
    let conf_path = scratch.path("qemu-ga.conf");
    if let Some(text) = conf {
        std::fs::write(&conf_path, text).unwrap();
    }
    let out = Command::new(binary)
        .args(args)
        .env("QGA_CONF", &conf_path)
        .output()
        .unwrap();
    (String::from_utf8(out.stdout).unwrap(), out.status.success())
}

#[test]
fn dump_conf_matches_qemu_ga() {
    let qemu_ga = qemu_ga_binary();
    let conf = "[general]\nmethod=unix-listen\npath=/tmp/y.sock\nblock-rpcs=guest-ping,guest-info\nverbose=1\n";
    let cases: &[(&[&str], Option<&str>)] = &[
        (&["-D"], None),
        (
            &[
                "-D",
                "-m",
                "unix-listen",
                "-p",
                "/tmp/x.sock",
                "-b",
                "guest-ping,guest-info",
                "-t",
                "/tmp",
                "-v",
                "-r",
            ],
            None,
        ),
        (
            &[
                "-D",
                "-b",
                "a",
                "-b",
                "b,c",
                "-F",
                "-l",
                "/tmp/l.log",
                "-f",
                "/tmp/p.pid",
                "-d",
            ],
            None,
        ),
        (&["-D", "-F/x/hook", "-m", "isa-serial"], None),
        (&["-D", "-b", "guest-sync"], Some(conf)),
        (&["-D", "-m", "virtio-serial"], Some(conf)),
    ];
    // qemu-ga 10.0 added the allow-rpcs line (always printed): its answer
    // wins, and it is 7.2's but for that line.
    let qemu_ga_10 = qemu_ga_10_binary();
    for (args, conf) in cases {
        let theirs = dump(&qemu_ga_10, args, *conf);
        let ours = dump(&qga_binary(), args, *conf);
        assert_eq!(ours, theirs, "qga {args:?} with config {conf:?}");
        let (text_72, ok_72) = dump(&qemu_ga, args, *conf);
        assert_eq!(
            (ours.0.replace("allow-rpcs=\n", ""), ours.1),
            (text_72, ok_72),
            "7.2 {args:?} with config {conf:?}"
        );
    }
}

/// `-c FILE` (qemu-ga 9.1): the file must exist, and a missing one fails
/// with 10.0's GLib critical line (its pid and time aside); a missing
/// default ($QGA_CONF) is ignored. A given file is read like $QGA_CONF's.
#[test]
fn config_file_given_with_c_must_exist_as_in_qemu_ga_10() {
    let scratch = Scratch::new("config");
    let run = |binary: &std::path::Path, args: &[&str]| {
        let out = Command::new(binary)
            .args(args)
            .env("QGA_CONF", scratch.path("absent.conf"))
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        // "\n** (process:PID): CRITICAL **: HH:MM:SS.mmm: MESSAGE\n"
        let stable = match stderr.split_once("): CRITICAL **: ") {
            Some((head, tail)) => format!("{}|{}", head.split(':').next().unwrap(), &tail[14..]),
            None => stderr,
        };
        (String::from_utf8(out.stdout).unwrap(), stable, out.status.code())
    };
    let dir = scratch.path("dir");
    std::fs::create_dir_all(&dir).unwrap();
    let conf = scratch.path("given.conf");
    std::fs::write(&conf, "[general]\nverbose=true\nblock-rpcs=guest-ping\n").unwrap();
    let (absent, dir, conf) = (
        scratch.path("missing.conf").to_string_lossy().into_owned(),
        dir.to_string_lossy().into_owned(),
        conf.to_string_lossy().into_owned(),
    );
    let cases: [&[&str]; 5] = [
        &["-c", &absent, "-D"],
        &["--config", &absent],
        &["-c", &dir, "-D"],
        &["-c", &conf, "-D"],
        &["-D"],
    ];
    let reference = qemu_ga_10_binary();
    for args in cases {
        let theirs = run(&reference, args);
        assert_eq!(run(&qga_binary(), args), theirs, "{args:?}");
    }
    let missing = run(&qga_binary(), cases[0]);
    assert_eq!(missing.2, Some(1));
    assert_eq!(
        missing.1,
        format!("\n** (process|error loading configuration from path: {absent}, No such file or directory\n")
    );
    assert!(run(&qga_binary(), cases[3]).0.contains("verbose=true\n"));
}

#[test]
fn bad_method_and_missing_path_fail_like_qemu_ga() {
    for args in [&["-m", "bogus", "-p", "/tmp/z.sock"][..], &["-m", "unix-listen"][..]] {
        let theirs = dump(&qemu_ga_binary(), args, None);
        let ours = dump(&qga_binary(), args, None);
        assert!(!theirs.1 && !ours.1, "{args:?} must fail");
    }
}

#[test]
fn block_rpcs_help_lists_every_command_as_qemu_ga_does() {
    let list = |binary: &std::path::Path| {
        let out = std::process::Command::new(binary)
            .args(["-b", "help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let theirs = list(&qemu_ga_binary());
    assert_eq!(theirs.lines().count(), 42, "{theirs}");
    // 7.2's list, then qemu-ga 10.0's two additions, registered last as in
    // 10.0 (compared with 10.0 in tests/qemu_ga_10.rs).
    assert_eq!(
        list(&qga_binary()),
        format!("{theirs}guest-get-load\nguest-network-get-route\n")
    );
}

#[test]
fn block_rpcs_disables_and_guest_info_reports_it() {
    let agent = Agent::qga(&["-b", "guest-sync,guest-get-time"]);
    let mut client = agent.connect();
    assert_eq!(
        client.call(r#"{"execute": "guest-sync", "arguments": {"id": 1}, "id": 9}"#),
        r#"{"id": 9, "error": {"class": "CommandNotFound", "desc": "Command guest-sync has been disabled"}}"#
    );
    let info = client.call(r#"{"execute": "guest-info"}"#);
    assert!(
        info.contains(r#"{"enabled": false, "name": "guest-sync", "success-response": true}"#),
        "{info}"
    );
    assert!(
        info.contains(r#"{"enabled": true, "name": "guest-ping", "success-response": true}"#),
        "{info}"
    );
    assert_eq!(client.call(r#"{"execute": "guest-ping"}"#), r#"{"return": {}}"#);
}

#[test]
fn blocked_command_answers_exactly_as_qemu_ga() {
    let request = r#"{"execute": "guest-ping", "id": "p"}"#;
    let theirs = Agent::qemu_ga(&["-b", "guest-ping"]).connect().call(request);
    let ours = Agent::qga(&["-b", "guest-ping"]).connect().call(request);
    assert_eq!(ours, theirs);
}

#[test]
fn allow_rpcs_disables_everything_else_and_block_beats_allow() {
    let agent = Agent::qga(&["-a", "guest-ping,guest-sync,guest-info", "-b", "guest-sync"]);
    let mut client = agent.connect();
    assert_eq!(client.call(r#"{"execute": "guest-ping"}"#), r#"{"return": {}}"#);
    assert_eq!(
        client.call(r#"{"execute": "guest-sync", "arguments": {"id": 1}}"#),
        r#"{"error": {"class": "CommandNotFound", "desc": "Command guest-sync has been disabled"}}"#
    );
    assert_eq!(
        client.call(r#"{"execute": "guest-sync-delimited", "arguments": {"id": 1}}"#),
        r#"{"error": {"class": "CommandNotFound", "desc": "Command guest-sync-delimited has been disabled"}}"#
    );
}

#[test]
fn config_file_block_list_applies() {
    let scratch = Scratch::new("conf");
    let conf = scratch.path("qga.conf");
    std::fs::write(&conf, "[general]\nblock-rpcs=guest-ping\n").unwrap();
    let socket = scratch.path("s.sock");
    let mut child = Command::new(qga_binary())
        .args(["-m", "unix-listen", "-p"])
        .arg(&socket)
        .arg("-t")
        .arg(scratch.path("state"))
        .env("QGA_CONF", &conf)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !socket.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let reply = support::Client::connect(&socket).call(r#"{"execute": "guest-ping"}"#);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        reply,
        r#"{"error": {"class": "CommandNotFound", "desc": "Command guest-ping has been disabled"}}"#
    );
}

#[test]
fn second_agent_with_the_same_pidfile_refuses_to_start() {
    let scratch = Scratch::new("pid");
    let pidfile = scratch.path("qga.pid");
    let pid_arg = pidfile.to_str().unwrap();
    let mut first = Agent::qga(&["-f", pid_arg]);
    let written: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert_eq!(written, first.pid());
    let second = Command::new(qga_binary())
        .args(["-m", "unix-listen", "-p"])
        .arg(scratch.path("second.sock"))
        .args(["-t", scratch.path("state2").to_str().unwrap(), "-f", pid_arg])
        .env("QGA_CONF", scratch.path("none"))
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("Cannot lock pid file"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    first.signal(15);
    assert!(first.wait_exit(Duration::from_secs(5)).success());
    assert!(!pidfile.exists(), "pid file left behind");
}

#[test]
fn version_flag_prints_the_version_guest_info_reports() {
    let out = Command::new(qga_binary()).arg("-V").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let agent = Agent::qga(&[]);
    let info = agent.connect().call(r#"{"execute": "guest-info"}"#);
    let version = info.split(r#""version": ""#).nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(text.trim(), format!("qga {version}"));
}

/// The crates `cargo tree` lists among qga's normal dependencies with
/// `extra` arguments (offline: the lock file says it all).
fn normal_dependencies(extra: &[&str]) -> String {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            "qga",
            "--manifest-path",
        ])
        .arg(&manifest)
        .args(extra)
        .output()
        .expect("cargo tree runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The shipped agent carries no code generator: Cranelift is a build
/// dependency (build.rs precompiles the families), and only a build with
/// the `compiler` feature links it.
#[test]
fn default_build_has_no_code_generator() {
    let default = normal_dependencies(&[]);
    assert!(default.contains("wasmtime v48"), "{default}");
    // (cranelift-entity and -bitset are data structures wasmtime's runtime
    // uses; the code generator is cranelift-codegen.)
    assert!(!default.contains("cranelift-codegen"), "{default}");
    assert!(!default.contains("wasmtime-internal-cranelift"), "{default}");
    let with_compiler = normal_dependencies(&["--features", "compiler"]);
    assert!(with_compiler.contains("cranelift-codegen"), "{with_compiler}");
}

/// Without the compiler, `qga compile` says how to get one.
#[test]
fn compile_without_the_compiler_names_the_build_that_has_it() {
    let out = Command::new(qga_binary())
        .args(["compile", "/nonexistent/x.wasm"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "qga compile: this qga has no compiler: build one with `cargo build --release -p qga --features compiler` to compile handler components\n"
    );
}
