//! Operator control over the wire and the CLI: policy decisions (compat
//! flags vs policy rules), hardened preset, invalid policies, the audit log
//! (never argument values), `qga policy audit|explain|check`, and hot swap
//! on SIGHUP (1000 requests across a swap, a bad component rejected).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Agent, Client, Scratch, artifacts, audit, qga_binary, s};

const SIGHUP: i32 = 1;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("QGA_TEST_FIXTURES"))
}

/// A handlers directory holding the v1 `fixture` family, precompiled
/// (`fixture.cwasm`); a policy must pin it ([`v1_pin`]).
fn handlers_with_v1(scratch: &Scratch) -> PathBuf {
    let dir = scratch.path("handlers");
    std::fs::create_dir_all(&dir).unwrap();
    artifacts::install(&dir, "fixture", &v1_bytes());
    dir
}

/// Precompile `wasm` and replace `dir/fixture.cwasm` with it atomically.
fn install(dir: &Path, wasm: &[u8]) {
    artifacts::install(dir, "fixture", wasm);
}

fn v1_bytes() -> Vec<u8> {
    std::fs::read(fixtures_dir().join("fixture.wasm")).unwrap()
}

fn v2_bytes() -> Vec<u8> {
    std::fs::read(env!("QGA_TEST_FIXTURE_V2")).unwrap()
}

/// The policy lines that trust the v1 build.
fn v1_pin() -> String {
    artifacts::pin(
        "fixture",
        &artifacts::sha256(&artifacts::compile("fixture", &v1_bytes())),
    )
}

/// The policy lines that trust the v2 build (written before v2 is swapped in).
fn v2_pin() -> String {
    artifacts::pin(
        "fixture",
        &artifacts::sha256(&artifacts::compile("fixture", &v2_bytes())),
    )
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn compat_flag_answers_like_qemu_ga_and_policy_denial_names_its_rule() {
    let scratch = Scratch::new("policy-deny");
    let policy = scratch.path("p.toml");
    std::fs::write(&policy, "# comment\n[command.\"guest-get-host-name\"]\nallow = false\n").unwrap();
    let agent = Agent::qga(&["-b", "guest-get-time", "--policy", s(&policy)]);
    let reference = Agent::qemu_ga(&["-b", "guest-get-time"]);
    let disabled = r#"{"execute":"guest-get-time","id":1}"#;
    let mut c = agent.connect();
    let ours = c.call(disabled);
    assert_eq!(ours, reference.connect().call(disabled));
    assert_eq!(
        ours,
        r#"{"id": 1, "error": {"class": "CommandNotFound", "desc": "Command guest-get-time has been disabled"}}"#
    );
    assert_eq!(
        c.call(r#"{"execute":"guest-get-host-name"}"#),
        format!(
            r#"{{"error": {{"class": "GenericError", "desc": "Command guest-get-host-name is denied by policy rule command.\"guest-get-host-name\".allow = false ({}:3)"}}}}"#,
            policy.display()
        )
    );
    // Everything else is as in compat mode.
    assert!(
        c.call(r#"{"execute":"guest-get-timezone"}"#)
            .starts_with(r#"{"return""#)
    );
    let info = c.call(r#"{"execute":"guest-info"}"#);
    assert!(
        info.contains(r#"{"enabled": false, "name": "guest-get-host-name""#),
        "{info}"
    );
    assert!(
        info.contains(r#"{"enabled": false, "name": "guest-get-time""#),
        "{info}"
    );
    assert!(
        info.contains(r#"{"enabled": true, "name": "guest-get-timezone""#),
        "{info}"
    );
}

#[test]
fn hardened_preset_denies_commands_it_does_not_name() {
    let scratch = Scratch::new("policy-hardened");
    let handlers = handlers_with_v1(&scratch);
    let policy = scratch.path("hardened.toml");
    std::fs::write(
        &policy,
        "[defaults]\npreset = \"hardened\"\n\n[command.fixture-version]\nallow = true\n".to_owned() + &v1_pin(),
    )
    .unwrap();
    let agent = Agent::qga(&["--handlers", s(&handlers), "--policy", s(&policy)]);
    let mut c = agent.connect();
    assert_eq!(c.call(r#"{"execute":"fixture-version"}"#), r#"{"return": 1}"#);
    let rule = format!("defaults.preset = \\\"hardened\\\" ({}:2)", policy.display());
    for denied in ["fixture-echo", "guest-get-time", "guest-get-osinfo"] {
        assert_eq!(
            c.call(&format!(r#"{{"execute":"{denied}"}}"#)),
            format!(
                r#"{{"error": {{"class": "GenericError", "desc": "Command {denied} is denied by policy rule {rule}"}}}}"#
            )
        );
    }
    // The protocol still works, and unknown commands stay unknown.
    assert_eq!(c.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
    assert_eq!(
        c.call(r#"{"execute":"guest-sync","arguments":{"id":5}}"#),
        r#"{"return": 5}"#
    );
    assert_eq!(
        c.call(r#"{"execute":"guest-nonesuch"}"#),
        r#"{"error": {"class": "CommandNotFound", "desc": "The command guest-nonesuch has not been found"}}"#
    );
}

#[test]
fn policy_narrows_read_file_per_argument() {
    let scratch = Scratch::new("policy-narrow");
    let handlers = handlers_with_v1(&scratch);
    // The fixture's built-in grant is nothing; a runtime-level grant is not
    // reachable from the CLI, so narrowing is shown on the built-in grant of
    // guest-get-osinfo: QGA_OS_RELEASE names the file it may read.
    let osr = scratch.path("os-release");
    std::fs::write(&osr, "ID=test\nNAME=\"Test\"\n").unwrap();
    let policy = scratch.path("narrow.toml");
    std::fs::write(
        &policy,
        "[command.\"guest-get-osinfo\"]\nread-file.paths = [\"/nonexistent/**\"]\n".to_owned() + &v1_pin(),
    )
    .unwrap();
    let pin_only = scratch.path("pin.toml");
    std::fs::write(&pin_only, v1_pin()).unwrap();
    let run = |with_policy: bool| {
        let mut cmd = Command::new(qga_binary());
        cmd.args([
            "policy",
            "explain",
            "guest-get-osinfo",
            "--json",
            "--handlers",
            s(&handlers),
        ])
        .env("QGA_CONF", scratch.path("none.conf"))
        .env("QGA_OS_RELEASE", &osr);
        cmd.args(["--policy", s(if with_policy { &policy } else { &pin_only })]);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(
        run(false)["constraints"]["read-file.paths"],
        serde_json::json!([s(&osr)])
    );
    assert_eq!(run(true)["constraints"]["read-file.paths"], serde_json::json!([]));
}

#[test]
fn invalid_policy_is_refused_at_start_with_its_line() {
    let scratch = Scratch::new("policy-invalid");
    let policy = scratch.path("bad.toml");
    std::fs::write(&policy, "[defaults]\npreset = \"compat\"\nmemory = \"lots\"\n").unwrap();
    let out = Command::new(qga_binary())
        .args([
            "-m",
            "unix-listen",
            "-p",
            s(&scratch.path("a.sock")),
            "-t",
            s(&scratch.0),
        ])
        .args(["--policy", s(&policy)])
        .env("QGA_CONF", scratch.path("none.conf"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3: 'memory': invalid size 'lots'", policy.display())),
        "{stderr}"
    );
    assert!(!scratch.path("a.sock").exists());
}

#[test]
fn policy_check_exit_codes() {
    let scratch = Scratch::new("policy-check");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    for name in ["compat.toml", "hardened.toml", "backup-only.toml"] {
        let out = Command::new(qga_binary())
            .args(["policy", "check"])
            .arg(root.join(name))
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains(": ok (preset "));
    }
    let bad = scratch.path("bad.toml");
    std::fs::write(&bad, "[command.x]\nallow = true\nfiles.pathz = [\"/tmp/**\"]\n").unwrap();
    let out = Command::new(qga_binary())
        .args(["policy", "check", s(&bad)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with(&format!("{}:3: unknown setting 'files.pathz'", bad.display())),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A pin that does not match the component fails the check with --handlers.
    let handlers = handlers_with_v1(&scratch);
    let pinned = scratch.path("pinned.toml");
    std::fs::write(
        &pinned,
        format!("[component.fixture]\nsha256 = \"{}\"\n", "0".repeat(64)),
    )
    .unwrap();
    let out = Command::new(qga_binary())
        .args(["policy", "check", s(&pinned), "--handlers", s(&handlers)])
        .env("QGA_CONF", scratch.path("none.conf"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("but the policy pins 0000"));
}

#[test]
fn policy_audit_json_matches_golden_file() {
    let scratch = Scratch::new("policy-golden");
    let out = Command::new(qga_binary())
        .args(["policy", "audit", "--json"])
        .env("QGA_CONF", scratch.path("none.conf"))
        .env_remove("QGA_OS_RELEASE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Component digests change with every build of a handler: compare their
    // shape, not their value.
    let rows = ["commands", "families"].map(|list| report[list].as_array().unwrap().len());
    for c in (0..rows[0])
        .map(|i| ("commands", i))
        .chain((0..rows[1]).map(|i| ("families", i)))
    {
        let c = &mut report[c.0][c.1];
        let at = if c.get("component").is_some() {
            "/component/sha256"
        } else {
            "/sha256"
        };
        if let Some(sha) = c.pointer_mut(at) {
            let digest = sha.as_str().unwrap();
            assert_eq!(digest.len(), 64);
            assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
            *sha = serde_json::Value::from("<sha256>");
        }
    }
    let text = serde_json::to_string_pretty(&report).unwrap() + "\n";
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/policy-audit-default.json");
    if std::env::var_os("QGA_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &text).unwrap();
    }
    let expected =
        std::fs::read_to_string(&golden).expect("golden file missing: run with QGA_UPDATE_GOLDEN=1 to create it");
    assert!(
        text == expected,
        "`qga policy audit --json` changed; if intended, regenerate with\n  QGA_UPDATE_GOLDEN=1 cargo test --release --test policy policy_audit_json_matches_golden_file\n--- got:\n{text}"
    );
    // The human table has a row per command.
    let out = Command::new(qga_binary())
        .args(["policy", "audit"])
        .env("QGA_CONF", scratch.path("none.conf"))
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("guest-get-osinfo") && l.contains("system-info@"))
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("guest-ping") && l.contains("(host)"))
    );
}

/// The storage commands that walk sysfs are granted its block trees only:
/// no WASI preopen of theirs holds /sys itself, debugfs, efivars or
/// securityfs (issue 16: the `/sys` preopen reached all of them).
#[test]
fn sysfs_preopens_hold_only_the_block_trees() {
    let scratch = Scratch::new("policy-preopens");
    let out = Command::new(qga_binary())
        .args(["policy", "audit", "--json"])
        .env("QGA_CONF", scratch.path("none.conf"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let forbidden = [
        "/sys/kernel/debug",
        "/sys/firmware/efi/efivars",
        "/sys/kernel/security",
        "/sys/kernel",
        "/sys/power",
    ];
    let mut seen = 0;
    for command in report["commands"].as_array().unwrap() {
        let name = command["name"].as_str().unwrap();
        let Some(preopens) = command["constraints"]["wasi.preopens"].as_array() else {
            continue;
        };
        for preopen in preopens {
            let host = Path::new(preopen["host"].as_str().unwrap());
            assert_ne!(host, Path::new("/sys"), "{name} preopens all of /sys");
            assert_ne!(host, Path::new("/"), "{name} preopens /");
            for f in forbidden {
                assert!(
                    !Path::new(f).starts_with(host),
                    "{name}: preopen {} reaches {f}",
                    host.display()
                );
            }
            assert_eq!(preopen["mode"], "r", "{name}: {preopen}");
        }
        if name == "guest-get-disks" || name == "guest-get-fsinfo" {
            let hosts: Vec<_> = preopens
                .iter()
                .map(|p| p["host"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(hosts[..3], ["/sys/block", "/sys/dev/block", "/sys/devices"], "{name}");
            seen += 1;
        }
    }
    assert_eq!(seen, 2);
}

#[test]
fn audit_log_records_every_request_and_never_an_argument() {
    let scratch = Scratch::new("policy-audit");
    let handlers = handlers_with_v1(&scratch);
    let audit = scratch.path("audit.log");
    let logfile = scratch.path("qga.log");
    let secret = "Sw0rdfish-Secret-7731";
    let secret_b64 = "U3cwcmRmaXNoLVNlY3JldC03NzMx";
    let policy = scratch.path("pin.toml");
    std::fs::write(&policy, v1_pin()).unwrap();
    let agent = Agent::qga(&[
        "-v",
        "-l",
        s(&logfile),
        "--handlers",
        s(&handlers),
        "--audit-log",
        s(&audit),
        "--policy",
        s(&policy),
    ]);
    let mut c = agent.connect();
    let requests = [
        format!(
            r#"{{"execute":"guest-set-user-password","arguments":{{"username":"qga-test-no-such-user","password":"{secret_b64}","crypted":false}}}}"#
        ),
        format!(
            r#"{{"execute":"guest-set-user-password","arguments":{{"username":"qga-test-no-such-user","password":"{secret}","crypted":false}}}}"#
        ),
        format!(r#"{{"execute":"fixture-echo","arguments":{{"arg":{{"i":1,"s":"{secret}"}}}}}}"#),
        format!(r#"{{"execute":"fixture-fail","arguments":{{"desc":"{secret}"}}}}"#),
        format!(r#"{{"execute":"fixture-echo","arguments":{{"arg":{{"i":1,"c":"{secret}"}}}}}}"#),
        r#"{"execute":"guest-ping","id":"p1"}"#.to_owned(),
        r#"{"execute":"fixture-quiet"}"#.to_owned(),
    ];
    for r in &requests[..6] {
        c.call(r);
    }
    c.send_line(&requests[6]);
    // The last one answers nothing; a ping after it proves it was handled.
    assert_eq!(c.call(r#"{"execute":"guest-ping"}"#), r#"{"return": {}}"#);
    drop(c);
    drop(agent);
    let text = std::fs::read_to_string(&audit).unwrap();
    let log = std::fs::read_to_string(&logfile).unwrap();
    for (name, content) in [("audit log", &text), ("log file", &log)] {
        assert!(!content.contains(secret), "{name} holds the password:\n{content}");
        assert!(
            !content.contains(secret_b64),
            "{name} holds the base64 password:\n{content}"
        );
    }
    assert!(log.contains("request"), "-v logs requests (without arguments): {log}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&audit).unwrap().permissions().mode() & 0o777, 0o600);
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let requests_logged: Vec<&serde_json::Value> = lines.iter().filter(|l| l["event"] == "request").collect();
    assert_eq!(requests_logged.len(), 8, "{text}");
    let by = |i: usize, key: &str| requests_logged[i][key].clone();
    // A user that does not exist: chpasswd really runs (with the password on
    // its stdin only) and fails, changing nothing on this machine.
    assert_eq!(by(0, "command"), "guest-set-user-password");
    assert_eq!(by(0, "decision"), "allow");
    assert_eq!(by(0, "outcome"), "GenericError");
    assert_eq!(by(2, "command"), "fixture-echo");
    assert_eq!(by(2, "decision"), "allow");
    assert_eq!(by(2, "outcome"), "ok");
    assert_eq!(by(2, "rule"), "defaults.preset = \"compat\" (built-in)");
    assert_eq!(by(2, "component").as_str().unwrap().len(), 64);
    assert!(by(2, "channel").as_str().unwrap().starts_with("unix:"));
    assert!(by(2, "duration_us").is_u64());
    assert!(by(2, "time").as_str().unwrap().ends_with('Z'));
    assert_eq!(by(3, "outcome"), "GenericError");
    assert_eq!(by(5, "component"), serde_json::Value::Null);
    assert_eq!(by(6, "outcome"), "no-reply");
    assert!(lines.iter().any(|l| l["event"] == "policy-load"));
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "component-load" && l["family"] == "fixture")
    );
}

#[test]
fn invalid_reload_keeps_the_last_good_policy() {
    let scratch = Scratch::new("policy-reload");
    let policy = scratch.path("p.toml");
    let audit = scratch.path("audit.log");
    std::fs::write(&policy, "[command.\"guest-get-host-name\"]\nallow = false\n").unwrap();
    let agent = Agent::qga(&["--policy", s(&policy), "--audit-log", s(&audit)]);
    let mut c = agent.connect();
    let denied = |c: &mut Client| {
        c.call(r#"{"execute":"guest-get-host-name"}"#)
            .contains("denied by policy")
    };
    assert!(denied(&mut c));
    std::fs::write(&policy, "[command.\"guest-get-host-name\"]\nallow = nope\n").unwrap();
    agent.signal(SIGHUP);
    wait_for("policy-reject", Duration::from_secs(30), || {
        std::fs::read_to_string(&audit).unwrap().contains("policy-reject")
    });
    assert!(denied(&mut c), "the last good policy still applies");
    assert!(agent.log().contains("keeping the last good policy"), "{}", agent.log());
    assert!(
        agent.log().contains(&format!("{}:2:", policy.display())),
        "{}",
        agent.log()
    );
    std::fs::write(&policy, "[command.\"guest-get-host-name\"]\nallow = true\n").unwrap();
    agent.signal(SIGHUP);
    wait_for("the new policy", Duration::from_secs(30), || !denied(&mut c));
}

#[test]
fn swap_during_1000_requests_loses_none_and_changes_answer_once() {
    let scratch = Scratch::new("policy-swap");
    let handlers = handlers_with_v1(&scratch);
    let audit = scratch.path("audit.log");
    let policy = scratch.path("pin.toml");
    std::fs::write(&policy, v1_pin()).unwrap();
    let v2_pin = v2_pin();
    let agent = Agent::qga(&[
        "--handlers",
        s(&handlers),
        "--audit-log",
        s(&audit),
        "--policy",
        s(&policy),
    ]);
    let mut c = agent.connect();
    let info = c.call(r#"{"execute":"guest-info"}"#);
    assert!(!info.contains("fixture-added"));
    let mut answers = Vec::with_capacity(1000);
    let mut swapped_at = None;
    for i in 0..1000 {
        if i == 200 {
            std::fs::write(&policy, &v2_pin).unwrap();
            install(&handlers, &v2_bytes());
            agent.signal(SIGHUP);
            swapped_at = Some(i);
        }
        let reply = c.call(&format!(r#"{{"execute":"fixture-version","id":{i}}}"#));
        answers.push(reply);
        // After the signal, pace the stream so the swap (compiling v2) lands
        // inside it even on a loaded machine.
        if swapped_at.is_some() && answers.last().unwrap().contains(r#""return": 1"#) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let values: Vec<i64> = answers
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let v: serde_json::Value = serde_json::from_str(a).unwrap_or_else(|_| panic!("reply {i}: {a}"));
            assert_eq!(v["id"], i, "reply {i} out of order: {a}");
            v["return"].as_i64().unwrap_or_else(|| panic!("reply {i}: {a}"))
        })
        .collect();
    assert_eq!(values.len(), 1000);
    let changes = values.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(changes, 1, "answers: {values:?}");
    assert_eq!(values[0], 1);
    assert_eq!(values[999], 2);
    assert!(values[..200].iter().all(|v| *v == 1));
    // The new command is in guest-info and answers.
    let info = c.call(r#"{"execute":"guest-info"}"#);
    assert!(
        info.contains(r#"{"enabled": true, "name": "fixture-added", "success-response": true}"#),
        "{info}"
    );
    assert_eq!(c.call(r#"{"execute":"fixture-added"}"#), r#"{"return": 42}"#);
    // Commands v2 dropped are gone.
    assert!(
        c.call(r#"{"execute":"fixture-echo","arguments":{"arg":{"i":1}}}"#)
            .contains("CommandNotFound")
    );
    let swaps = audit::events(&audit, "component-swap");
    assert!(swaps.iter().any(|e| e["family"] == "fixture"), "{swaps:?}");
}

#[test]
fn bad_component_is_rejected_and_the_old_one_keeps_serving() {
    let scratch = Scratch::new("policy-reject");
    let handlers = handlers_with_v1(&scratch);
    let audit = scratch.path("audit.log");
    let v1_digest = artifacts::sha256(&std::fs::read(handlers.join("fixture.cwasm")).unwrap());
    let policy = scratch.path("pin.toml");
    std::fs::write(&policy, format!("[component.fixture]\nsha256 = \"{v1_digest}\"\n")).unwrap();
    let agent = Agent::qga(&[
        "--handlers",
        s(&handlers),
        "--audit-log",
        s(&audit),
        "--policy",
        s(&policy),
    ]);
    let mut c = agent.connect();
    assert_eq!(c.call(r#"{"execute":"fixture-version"}"#), r#"{"return": 1}"#);
    let rejects = || audit::events(&audit, "component-reject").len();
    // Not an artifact at all.
    artifacts::install_bytes(&handlers, "fixture", b"\0asm garbage");
    agent.signal(SIGHUP);
    wait_for("first reject", Duration::from_secs(30), || rejects() == 1);
    assert_eq!(c.call(r#"{"execute":"fixture-version"}"#), r#"{"return": 1}"#);
    // A valid artifact, but not the pinned one.
    install(&handlers, &v2_bytes());
    agent.signal(SIGHUP);
    wait_for("second reject", Duration::from_secs(30), || rejects() == 2);
    assert_eq!(c.call(r#"{"execute":"fixture-version"}"#), r#"{"return": 1}"#);
    assert!(c.call(r#"{"execute":"fixture-added"}"#).contains("CommandNotFound"));
    let log = agent.log();
    assert!(log.contains("rejected"), "{log}");
    assert!(log.contains("but the policy pins"), "{log}");
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(text.contains(&format!(r#""kept-sha256":"{v1_digest}""#)), "{text}");
}

#[test]
fn watched_handlers_directory_reloads_without_a_signal() {
    let scratch = Scratch::new("policy-watch");
    let handlers = handlers_with_v1(&scratch);
    let policy = scratch.path("pin.toml");
    std::fs::write(&policy, v1_pin()).unwrap();
    let agent = Agent::qga(&["--handlers", s(&handlers), "--watch-handlers", "--policy", s(&policy)]);
    let mut c = agent.connect();
    assert_eq!(c.call(r#"{"execute":"fixture-version"}"#), r#"{"return": 1}"#);
    // The operator trusts v2, then puts it in place; the change to the
    // directory reloads both.
    std::fs::write(&policy, v2_pin()).unwrap();
    install(&handlers, &v2_bytes());
    wait_for("the watched swap", Duration::from_secs(30), || {
        c.call(r#"{"execute":"fixture-version"}"#) == r#"{"return": 2}"#
    });
    assert_eq!(c.call(r#"{"execute":"fixture-added"}"#), r#"{"return": 42}"#);
}

#[test]
fn call_in_flight_during_a_swap_finishes_on_the_old_component() {
    let scratch = Scratch::new("policy-inflight");
    let handlers = handlers_with_v1(&scratch);
    let policy = scratch.path("p.toml");
    // The slow call outlives any swap a loaded machine manages: the test
    // asserts the order of events (swap seen, then the slow reply), and
    // this deadline only bounds how long it waits.
    let deadline = "[command.fixture-loop]\ndeadline = \"20s\"\n";
    std::fs::write(&policy, format!("{deadline}{}", v1_pin())).unwrap();
    let v2_policy = format!("{deadline}{}", v2_pin());
    let agent = Agent::qga(&["--handlers", s(&handlers), "--policy", s(&policy)]);
    let mut slow = agent.connect();
    let mut fast = agent.connect();
    assert_eq!(fast.call(r#"{"execute":"fixture-version"}"#), r#"{"return": 1}"#);
    slow.send_line(r#"{"execute":"fixture-loop","id":"slow"}"#);
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(&policy, v2_policy).unwrap();
    install(&handlers, &v2_bytes());
    agent.signal(SIGHUP);
    wait_for("the swap", Duration::from_secs(30), || {
        fast.call(r#"{"execute":"fixture-version"}"#) == r#"{"return": 2}"#
    });
    // v2 has no fixture-loop: the answer can only come from v1, with v1's
    // grant (its 20 s deadline), after the swap.
    assert!(
        !slow.has_pending_reply(Duration::from_millis(1)),
        "the slow call ended before the swap"
    );
    assert!(
        slow.has_pending_reply(Duration::from_secs(60)),
        "no reply to the slow call"
    );
    assert_eq!(
        slow.read_text(),
        r#"{"id": "slow", "error": {"class": "GenericError", "desc": "fixture-loop: handler exceeded its 20 s deadline"}}"#
    );
    assert!(fast.call(r#"{"execute":"fixture-loop"}"#).contains("CommandNotFound"));
}

#[test]
fn pinned_digest_mismatch_refuses_to_start() {
    let scratch = Scratch::new("policy-pin-start");
    let handlers = handlers_with_v1(&scratch);
    let policy = scratch.path("pin.toml");
    std::fs::write(
        &policy,
        format!("[component.fixture]\nsha256 = \"{}\"\n", "ab".repeat(32)),
    )
    .unwrap();
    let audit = scratch.path("audit.log");
    let out = Command::new(qga_binary())
        .args([
            "-m",
            "unix-listen",
            "-p",
            s(&scratch.path("a.sock")),
            "-t",
            s(&scratch.0),
        ])
        .args([
            "--handlers",
            s(&handlers),
            "--policy",
            s(&policy),
            "--audit-log",
            s(&audit),
        ])
        .env("QGA_CONF", scratch.path("none.conf"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("component for family fixture has sha256 ")
            && stderr.contains(&format!("but the policy pins {}", "ab".repeat(32))),
        "{stderr}"
    );
    assert!(!audit::events(&audit, "component-reject").is_empty());
}

#[test]
fn a_file_handle_opened_before_a_swap_is_still_readable_after_it() {
    let scratch = Scratch::new("policy-handle");
    let handlers = handlers_with_v1(&scratch);
    let data = scratch.path("data.txt");
    std::fs::write(&data, "before-swap|after-swap").unwrap();
    let policy = scratch.path("pin.toml");
    std::fs::write(&policy, v1_pin()).unwrap();
    let agent = Agent::qga(&["--handlers", s(&handlers), "--policy", s(&policy)]);
    let mut c = agent.connect();
    let handle = c.call(&format!(
        r#"{{"execute":"guest-file-open","arguments":{{"path":"{}"}}}}"#,
        s(&data)
    ));
    let handle: i64 = handle
        .strip_prefix(r#"{"return": "#)
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or_else(|| panic!("no handle: {handle}"))
        .parse()
        .unwrap();
    // "before-swap|" is 12 bytes: YmVmb3JlLXN3YXB8 in base64.
    assert_eq!(
        c.call(&format!(
            r#"{{"execute":"guest-file-read","arguments":{{"handle":{handle},"count":12}}}}"#
        )),
        r#"{"return": {"count": 12, "buf-b64": "YmVmb3JlLXN3YXB8", "eof": false}}"#
    );
    std::fs::write(&policy, v2_pin()).unwrap();
    install(&handlers, &v2_bytes());
    agent.signal(SIGHUP);
    wait_for("the swap", Duration::from_secs(30), || {
        c.call(r#"{"execute":"fixture-version"}"#) == r#"{"return": 2}"#
    });
    // The new generation serves the same open-file table.
    assert_eq!(
        c.call(&format!(
            r#"{{"execute":"guest-file-read","arguments":{{"handle":{handle}}}}}"#
        )),
        r#"{"return": {"count": 10, "buf-b64": "YWZ0ZXItc3dhcA==", "eof": true}}"#
    );
    assert_eq!(
        c.call(&format!(
            r#"{{"execute":"guest-file-close","arguments":{{"handle":{handle}}}}}"#
        )),
        r#"{"return": {}}"#
    );
}

#[test]
fn policy_narrows_guest_file_open_to_a_directory_read_only() {
    let scratch = Scratch::new("policy-files");
    let allowed = scratch.path("allowed.txt");
    std::fs::write(&allowed, "ok").unwrap();
    let policy = scratch.path("files.toml");
    std::fs::write(
        &policy,
        format!(
            "[command.\"guest-file-open\"]\nfiles.paths = [\"{}/**\"]\nfiles.modes = [\"r\"]\n",
            s(&scratch.0)
        ),
    )
    .unwrap();
    let agent = Agent::qga(&["--policy", s(&policy)]);
    let mut c = agent.connect();
    let open = |c: &mut support::Client, path: &str, mode: &str| {
        c.call(&format!(
            r#"{{"execute":"guest-file-open","arguments":{{"path":"{path}","mode":"{mode}"}}}}"#
        ))
    };
    assert!(open(&mut c, s(&allowed), "r").starts_with(r#"{"return": "#));
    let denied = open(&mut c, s(&allowed), "w");
    assert!(
        denied.contains("permission denied: guest-file-open may not open"),
        "{denied}"
    );
    assert_eq!(
        std::fs::read_to_string(&allowed).unwrap(),
        "ok",
        "a denied 'w' open must not truncate"
    );
    for path in ["/etc/hostname", &format!("{}/../../etc/hostname", s(&scratch.0))] {
        let denied = open(&mut c, path, "r");
        assert!(
            denied.contains("permission denied: guest-file-open may not open"),
            "{path}: {denied}"
        );
    }
    let check = std::process::Command::new(support::qga_binary())
        .args(["policy", "check"])
        .arg(scratch.path("bad.toml"))
        .output()
        .unwrap();
    assert!(!check.status.success());
    std::fs::write(
        scratch.path("bad.toml"),
        "[command.\"guest-file-open\"]\nfiles.modes = [\"rw\"]\n",
    )
    .unwrap();
    let check = std::process::Command::new(support::qga_binary())
        .args(["policy", "check"])
        .arg(scratch.path("bad.toml"))
        .output()
        .unwrap();
    assert!(!check.status.success());
    let text = String::from_utf8_lossy(&check.stdout).to_string() + &String::from_utf8_lossy(&check.stderr);
    assert!(text.contains("unknown file mode 'rw'"), "{text}");
}
