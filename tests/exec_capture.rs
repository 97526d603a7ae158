//! guest-exec `capture-output` (qemu-ga 8.1+): every mode, many times over.
//! qemu-ga 10.0.13 itself races here (it can report `exited` before the
//! exit code or the output is collected, lose output, and never report a
//! stderr-only child exited), so these check qga for the one correct
//! answer rather than compare: a child is reported exited only with its
//! exit code and all of its captured output, every time.

mod support;

use std::time::Duration;

use base64::Engine as _;
use support::{Agent, Client};

/// Runs per mode and child kind.
const ROUNDS: usize = 25;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Start `args` with `capture` (a JSON value) and `input`; poll
/// guest-exec-status until it reports exited; that reply.
fn run(c: &mut Client, args: &[&str], capture: &str, input: Option<&[u8]>) -> serde_json::Value {
    let mut request = serde_json::json!({
        "execute": "guest-exec",
        "arguments": {"path": "/bin/sh", "arg": args, "capture-output": serde_json::from_str::<serde_json::Value>(capture).unwrap()}
    });
    if let Some(input) = input {
        request["arguments"]["input-data"] = b64(input).into();
    }
    let started: serde_json::Value = serde_json::from_str(&c.call(&request.to_string())).unwrap();
    let pid = started["return"]["pid"].as_i64().unwrap_or_else(|| panic!("{started}"));
    let status = format!(r#"{{"execute":"guest-exec-status","arguments":{{"pid":{pid}}}}}"#);
    // Wait for the event (bounded: a child that never reports fails here).
    for _ in 0..20_000 {
        let reply: serde_json::Value = serde_json::from_str(&c.call(&status)).unwrap();
        let r = &reply["return"];
        if r["exited"] == true {
            return r.clone();
        }
        assert_eq!(
            r.as_object().unwrap().len(),
            1,
            "a running child reports only exited: {reply}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("pid {pid} ({args:?}, {capture}) never reported exited");
}

/// What one reply must hold: exit code, and the decoded captures (`None`:
/// the member is absent).
fn check(reply: &serde_json::Value, code: i64, out: Option<&[u8]>, err: Option<&[u8]>, what: &str) {
    assert_eq!(reply["exitcode"], code, "{what}: {reply}");
    for (key, want) in [("out-data", out), ("err-data", err)] {
        let got = reply.get(key).map(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap()
        });
        assert_eq!(
            got.as_deref().map(String::from_utf8_lossy),
            want.map(String::from_utf8_lossy),
            "{what}: {key} of {reply}"
        );
        let flag = key.replace("data", "truncated");
        assert_eq!(reply.get(&flag).is_some(), want.is_some(), "{what}: {flag} of {reply}");
    }
}

const MIXED: &[&str] = &["-c", "echo o1; echo e1 >&2; echo o2; echo e2 >&2; exit 3"];
const STDERR_ONLY: &[&str] = &["-c", "echo e1 >&2; echo e2 >&2; exit 5"];
const STDIN_FED: &[&str] = &["-c", "read a; echo \"$a\"; read b; echo \"$b\" >&2; cat"];

#[test]
fn every_capture_mode_reports_exit_code_and_all_output_every_time() {
    let agent = Agent::qga(&[]);
    let mut c = agent.connect();
    let input: &[u8] = b"l1\nl2\nrest\n";
    // (capture-output, mixed out/err, stderr-only out/err, stdin-fed out/err)
    type Want = (Option<&'static [u8]>, Option<&'static [u8]>);
    let cases: [(&str, Want, Want, Want); 7] = [
        ("false", (None, None), (None, None), (None, None)),
        ("\"none\"", (None, None), (None, None), (None, None)),
        (
            "\"stdout\"",
            (Some(b"o1\no2\n"), None),
            (None, None),
            (Some(b"l1\nrest\n"), None),
        ),
        (
            "\"stderr\"",
            (None, Some(b"e1\ne2\n")),
            (None, Some(b"e1\ne2\n")),
            (None, Some(b"l2\n")),
        ),
        (
            "\"separated\"",
            (Some(b"o1\no2\n"), Some(b"e1\ne2\n")),
            (None, Some(b"e1\ne2\n")),
            (Some(b"l1\nrest\n"), Some(b"l2\n")),
        ),
        (
            "true",
            (Some(b"o1\no2\n"), Some(b"e1\ne2\n")),
            (None, Some(b"e1\ne2\n")),
            (Some(b"l1\nrest\n"), Some(b"l2\n")),
        ),
        (
            "\"merged\"",
            (Some(b"o1\ne1\no2\ne2\n"), None),
            (Some(b"e1\ne2\n"), None),
            (Some(b"l1\nl2\nrest\n"), None),
        ),
    ];
    for (capture, mixed, stderr_only, stdin_fed) in cases {
        for round in 0..ROUNDS {
            let what = format!("{capture} round {round}");
            let r = run(&mut c, MIXED, capture, None);
            check(&r, 3, mixed.0, mixed.1, &format!("mixed, {what}"));
            let r = run(&mut c, STDERR_ONLY, capture, None);
            check(&r, 5, stderr_only.0, stderr_only.1, &format!("stderr-only, {what}"));
            let r = run(&mut c, STDIN_FED, capture, Some(input));
            check(&r, 0, stdin_fed.0, stdin_fed.1, &format!("stdin-fed, {what}"));
        }
    }
}

/// Output larger than a pipe holds, written by turns to both streams:
/// merged keeps every byte in the order written, separated splits them.
#[test]
fn large_interleaved_output_is_complete_in_merged_and_separated() {
    let agent = Agent::qga(&[]);
    let mut c = agent.connect();
    let script = "i=0; while [ $i -lt 2000 ]; do echo \"out $i\"; echo \"err $i\" >&2; i=$((i+1)); done";
    let (mut merged, mut out, mut err) = (String::new(), String::new(), String::new());
    for i in 0..2000 {
        merged.push_str(&format!("out {i}\nerr {i}\n"));
        out.push_str(&format!("out {i}\n"));
        err.push_str(&format!("err {i}\n"));
    }
    for round in 0..5 {
        let r = run(&mut c, &["-c", script], "\"merged\"", None);
        check(&r, 0, Some(merged.as_bytes()), None, &format!("merged round {round}"));
        let r = run(&mut c, &["-c", script], "\"separated\"", None);
        check(
            &r,
            0,
            Some(out.as_bytes()),
            Some(err.as_bytes()),
            &format!("separated round {round}"),
        );
    }
}

/// In merged mode the child's fd 1 and fd 2 are the same pipe.
#[test]
fn merged_mode_gives_the_child_one_pipe_for_stdout_and_stderr() {
    let agent = Agent::qga(&[]);
    let mut c = agent.connect();
    let script = "[ \"$(readlink /proc/self/fd/1)\" = \"$(readlink /proc/self/fd/2)\" ] && echo same || echo different";
    // readlink's own stdout is a command-substitution pipe: compare the
    // shell's descriptors instead.
    let script = script.replace("/proc/self/fd", "/proc/$$/fd");
    let r = run(&mut c, &["-c", &script], "\"merged\"", None);
    check(&r, 0, Some(b"same\n"), None, "merged");
    let r = run(&mut c, &["-c", &script], "\"separated\"", None);
    check(&r, 0, Some(b"different\n"), None, "separated");
}
