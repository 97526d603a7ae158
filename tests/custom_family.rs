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
