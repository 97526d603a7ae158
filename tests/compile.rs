//! `qga compile`, end to end. A qga built with the `compiler` feature
//! (built here, in its own target directory: the agent under test is the
//! default build, without a code generator) turns a family's `.wasm` into a
//! `.cwasm` and prints the policy lines that trust it; the default agent
//! loads that artifact from `--handlers` once the policy pins it, and serves
//! its commands. The default agent refuses the bare `.wasm`, naming
//! `qga compile`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::{Agent, Scratch, artifacts, qga_binary};

/// `cargo build --release -p qga --features compiler` into
/// `target/compiler` (once per test process; incremental after the first
/// build). Its own target directory: the one of this test is locked by the
/// `cargo test` that runs it.
fn qga_with_compiler() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let target = workspace.join("target/compiler");
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args([
                "build",
                "--release",
                "-p",
                "qga",
                "--features",
                "compiler",
                "--target-dir",
            ])
            .arg(&target)
            .current_dir(&workspace)
            .stdout(Stdio::null());
        for var in [
            "CARGO_TARGET_DIR",
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "CARGO_BUILD_RUSTFLAGS",
            "RUSTC_WRAPPER",
        ] {
            cargo.env_remove(var);
        }
        let status = cargo.status().expect("cargo runs");
        assert!(status.success(), "building qga with the compiler feature failed");
        target.join("release/qga")
    })
}

fn fixture_wasm() -> Vec<u8> {
    std::fs::read(Path::new(env!("QGA_TEST_FIXTURES")).join("fixture.wasm")).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn qga_compile_makes_an_artifact_the_default_agent_runs_once_pinned() {
    let compiler = qga_with_compiler();
    let scratch = Scratch::new("compile");
    let wasm = scratch.path("fixture.wasm");
    std::fs::write(&wasm, fixture_wasm()).unwrap();
    let handlers = scratch.path("handlers");
    std::fs::create_dir(&handlers).unwrap();
    let artifact = handlers.join("fixture.cwasm");
    let out = Command::new(compiler)
        .args(["compile", s(&wasm), "-o", s(&artifact)])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    // What it prints is what the policy needs: the artifact's own sha256.
    let digest = artifacts::sha256(&std::fs::read(&artifact).unwrap());
    assert_eq!(
        stdout,
        format!(
            "{}\n# trust it: add to the policy (--policy FILE)\n[component.fixture]\nsha256 = \"{digest}\"\n",
            artifact.display()
        )
    );
    assert!(!handlers.join("fixture.cwasm.tmp").exists());

    // The printed lines, as they are, are the policy.
    let policy = scratch.path("policy.toml");
    let trust: String = stdout.lines().skip(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(&policy, trust).unwrap();
    let agent = Agent::qga(&["--handlers", s(&handlers), "--policy", s(&policy)]);
    let mut c = agent.connect();
    assert_eq!(
        c.call(r#"{"execute":"fixture-echo","arguments":{"arg":{"i":7}}}"#),
        r#"{"return": {"i": 7}}"#
    );
    assert_eq!(
        c.call(r#"{"execute":"fixture-echo"}"#),
        r#"{"error": {"class": "GenericError", "desc": "Parameter 'arg' is missing"}}"#
    );
    // The embedded families still serve beside it.
    assert!(c.call(r#"{"execute":"guest-get-time"}"#).starts_with(r#"{"return": "#));
}

#[test]
fn qga_compile_refuses_what_is_not_a_component_and_writes_nothing() {
    let compiler = qga_with_compiler();
    let scratch = Scratch::new("compile-bad");
    let wasm = scratch.path("fixture.wasm");
    std::fs::write(&wasm, b"not wasm at all").unwrap();
    let out = Command::new(compiler).args(["compile", s(&wasm)]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("qga compile: "), "{err}");
    assert!(!scratch.path("fixture.cwasm").exists());
    assert!(!scratch.path("fixture.cwasm.tmp").exists());
}

#[test]
fn the_default_agent_refuses_a_bare_wasm_naming_qga_compile() {
    let scratch = Scratch::new("compile-refuse");
    let handlers = scratch.path("handlers");
    std::fs::create_dir(&handlers).unwrap();
    let wasm = handlers.join("fixture.wasm");
    std::fs::write(&wasm, fixture_wasm()).unwrap();
    let state = scratch.path("state");
    std::fs::create_dir(&state).unwrap();
    let mut child = Command::new(qga_binary())
        .args(["-m", "unix-listen", "-p", s(&scratch.path("a.sock")), "-t", s(&state)])
        .args(["--handlers", s(&handlers)])
        .env("QGA_CONF", scratch.path("none.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent started with a bare .wasm and no compiler");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.trim_end().ends_with(&format!(
            "qga: {0} is a .wasm component and this agent has no compiler: run `qga compile {0}` (a qga built with the compiler feature) and pin the artifact's sha256 in the policy",
            wasm.display()
        )),
        "{err}"
    );
}
