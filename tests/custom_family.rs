//! A handler family built outside the tree (examples/custom-family) and
//! loaded with `--handlers`: its commands appear in guest-info, answer, and
//! get the converter's qemu-ga argument errors like every built-in command.

mod support;

use std::path::Path;
use std::process::Command;

use support::{Agent, Scratch, artifacts};

fn build_example() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/custom-family");
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
        .arg(dir.join("Cargo.toml"));
    for var in [
        "CARGO_TARGET_DIR",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
    ] {
        cargo.env_remove(var);
    }
    let status = cargo.status().expect("cargo runs");
    assert!(status.success(), "building examples/custom-family failed");
    dir.join("target/wasm32-wasip2/release/hello.wasm")
}

#[test]
fn an_out_of_tree_family_loads_and_answers() {
    let wasm = build_example();
    let handlers = Scratch::new("handlers");
    // Precompiled (as `qga compile` does) and pinned in the policy: the
    // agent under test has no compiler and trusts no unpinned code.
    let digest = artifacts::install(&handlers.0, "hello", &std::fs::read(&wasm).unwrap());
    let policy = handlers.path("policy.toml");
    std::fs::write(&policy, artifacts::pin("hello", &digest)).unwrap();
    let agent = Agent::qga(&[
        "--handlers",
        handlers.0.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ]);
    let mut client = agent.connect();
    let info = client.call(r#"{"execute": "guest-info"}"#);
    for name in ["guest-hello", "guest-count-words", "guest-get-osinfo"] {
        assert!(
            info.contains(&format!(
                r#"{{"enabled": true, "name": "{name}", "success-response": true}}"#
            )),
            "{name} missing from {info}"
        );
    }
    assert_eq!(
        client.call(r#"{"execute": "guest-hello", "arguments": {"name": "qga"}}"#),
        r#"{"return": {"length": 11, "text": "Hello, qga!"}}"#
    );
    assert_eq!(
        client.call(r#"{"execute": "guest-hello"}"#),
        r#"{"return": {"length": 13, "text": "Hello, world!"}}"#
    );
    assert_eq!(
        client.call(r#"{"execute": "guest-count-words", "arguments": {"text": "one two  three"}, "id": 4}"#),
        r#"{"return": 3, "id": 4}"#
    );
    assert_eq!(
        client.call(r#"{"execute": "guest-count-words", "arguments": {"text": " "}}"#),
        r#"{"error": {"class": "GenericError", "desc": "text has no words"}}"#
    );
    assert_eq!(
        client.call(r#"{"execute": "guest-count-words"}"#),
        r#"{"error": {"class": "GenericError", "desc": "Parameter 'text' is missing"}}"#
    );
    assert_eq!(
        client.call(r#"{"execute": "guest-hello", "arguments": {"name": 7}}"#),
        r#"{"error": {"class": "GenericError", "desc": "Invalid parameter type for 'name', expected: string"}}"#
    );
}

/// The operator's path for a custom command that needs the system: the
/// policy grants it one file (`[grant."…"]`, per command); it reads that
/// file and nothing else, not even the file beside it. Without the grant
/// it reads nothing; `qga policy check` says what the grant allows.
#[test]
fn a_custom_command_granted_one_file_reads_it_and_nothing_else() {
    let wasm = build_example();
    let handlers = Scratch::new("handlers-grant");
    let digest = artifacts::install(&handlers.0, "hello", &std::fs::read(&wasm).unwrap());
    let granted = handlers.path("granted.txt");
    let beside = handlers.path("beside.txt");
    std::fs::write(&granted, "granted text").unwrap();
    std::fs::write(&beside, "secret text").unwrap();
    let (granted, beside) = (granted.to_str().unwrap(), beside.to_str().unwrap());
    let call = |path: &str| format!(r#"{{"execute": "guest-hello-file", "arguments": {{"path": "{path}"}}}}"#);

    // Pinned but not granted: the command runs and reaches nothing.
    let pin_only = handlers.path("pin-only.toml");
    std::fs::write(&pin_only, artifacts::pin("hello", &digest)).unwrap();
    {
        let agent = Agent::qga(&[
            "--handlers",
            handlers.0.to_str().unwrap(),
            "--policy",
            pin_only.to_str().unwrap(),
        ]);
        let mut client = agent.connect();
        let reply = client.call(&call(granted));
        assert!(
            reply.contains("permission denied: guest-hello-file is not granted qga:agent/read-file"),
            "{reply}"
        );
    }

    let policy = handlers.path("policy.toml");
    std::fs::write(
        &policy,
        format!(
            "{}\n[grant.\"guest-hello-file\"]\ncapabilities = [\"read-file\"]\nread-file.paths = [\"{granted}\"]\n",
            artifacts::pin("hello", &digest)
        ),
    )
    .unwrap();
    let check = Command::new(support::qga_binary())
        .args(["policy", "check"])
        .arg(&policy)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        text.contains("grant guest-hello-file (") && text.contains("): qga:agent/read-file\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!("  read-file.paths = [\"{granted}\"]\n")),
        "{text}"
    );

    let explain = Command::new(support::qga_binary())
        .args(["policy", "explain", "guest-hello-file", "--policy"])
        .arg(&policy)
        .arg("--handlers")
        .arg(&handlers.0)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(
        explain.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&explain.stderr)
    );
    assert!(
        text.contains(&format!("grant from: policy [grant] table ({}:4)\n", policy.display())),
        "{text}"
    );
    assert!(text.contains("granted:    read-file\n"), "{text}");
    let agent = Agent::qga(&[
        "--handlers",
        handlers.0.to_str().unwrap(),
        "--policy",
        policy.to_str().unwrap(),
    ]);
    let mut client = agent.connect();
    assert_eq!(client.call(&call(granted)), r#"{"return": "granted text"}"#);
    let reply = client.call(&call(beside));
    assert_eq!(
        reply,
        format!(
            r#"{{"error": {{"class": "GenericError", "desc": "guest-hello-file: permission denied: guest-hello-file may not read {beside}"}}}}"#
        )
    );
    assert!(!reply.contains("secret"), "{reply}");
    // The grant is this command's only: its siblings still hold nothing.
    assert!(client.call(r#"{"execute": "guest-hello"}"#).contains("Hello, world!"));
}

/// A policy cannot widen a shipped command: `[grant."…"]` for a command an
/// embedded manifest names is refused with the reason.
#[test]
fn a_policy_cannot_grant_a_command_a_manifest_covers() {
    let scratch = Scratch::new("grant-refused");
    let policy = scratch.path("policy.toml");
    std::fs::write(
        &policy,
        "[grant.\"guest-get-osinfo\"]\nread-file.paths = [\"/etc/shadow\"]\n",
    )
    .unwrap();
    let check = Command::new(support::qga_binary())
        .args(["policy", "check"])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(!check.status.success());
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(
        err.contains("policy.toml:1: guest-get-osinfo is granted by the system-info family's manifest"),
        "{err}"
    );
}
