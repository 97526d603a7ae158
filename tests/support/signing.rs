//! Signing tests' setting: OpenSSH ed25519 keys from the real `ssh-keygen`,
//! `qga sign`/`qga verify`, the fixture's precompiled artifacts, a root-owned
//! handlers directory and a policy, an agent that must start or must refuse
//! to, and its audit log.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{Agent, Scratch, artifacts, audit, qga_binary, s, settle};

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A key pair from `ssh-keygen -t ed25519 -N ''`: (private, public, fingerprint).
pub fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let key = dir.join(name);
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs (package openssh-client)");
    assert!(ok.success());
    let public = dir.join(format!("{name}.pub"));
    let out = Command::new("ssh-keygen").arg("-lf").arg(&public).output().unwrap();
    let line = String::from_utf8(out.stdout).unwrap();
    let fingerprint = line.split_whitespace().nth(1).unwrap().to_owned();
    assert!(fingerprint.starts_with("SHA256:"), "{line}");
    (key, public, fingerprint)
}

pub fn tool(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(qga_binary()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `bytes` signed in place by `qga sign --key key`.
pub fn signed(scratch: &Scratch, key: &Path, bytes: &[u8]) -> Vec<u8> {
    let file = scratch.path("to-sign.wasm");
    std::fs::write(&file, bytes).unwrap();
    let (ok, _, err) = tool(&["sign", "--key", s(key), s(&file)]);
    assert!(ok, "{err}");
    std::fs::read(&file).unwrap()
}

/// A detached signature over `bytes` by `key` (`qga sign --detached`).
pub fn detached(scratch: &Scratch, key: &Path, bytes: &[u8]) -> Vec<u8> {
    let file = scratch.path("to-sign.bin");
    std::fs::write(&file, bytes).unwrap();
    let (ok, _, err) = tool(&["sign", "--detached", "--key", s(key), s(&file)]);
    assert!(ok, "{err}");
    std::fs::read(scratch.path("to-sign.bin.sig")).unwrap()
}

pub fn install(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(".install.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// `fixture.cwasm` = `artifact`, with `sig` as its detached
/// `fixture.cwasm.sig` (or none): the signature first, so that a watching
/// agent that sees the new artifact sees its signature too.
pub fn install_artifact(dir: &Path, artifact: &[u8], sig: Option<&[u8]>) {
    match sig {
        Some(sig) => install(dir, "fixture.cwasm.sig", sig),
        None => {
            let _ = std::fs::remove_file(dir.join("fixture.cwasm.sig"));
        }
    }
    install(dir, "fixture.cwasm", artifact);
}

pub fn write_policy(path: &Path, require: bool, keys: &[&Path]) {
    write_policy_pinned(path, require, keys, None);
}

/// The policy, and `[component.fixture] sha256 = pin` when given.
pub fn write_policy_pinned(path: &Path, require: bool, keys: &[&Path], pin: Option<&str>) {
    let keys: Vec<String> = keys.iter().map(|k| format!("{:?}", s(k))).collect();
    let pin = pin.map(|d| artifacts::pin("fixture", d)).unwrap_or_default();
    std::fs::write(
        path,
        format!(
            "[handlers]\nrequire-signature = {require}\ntrusted-keys = [{}]\n{pin}",
            keys.join(", ")
        ),
    )
    .unwrap();
}

/// The setting every test starts from: keys `ops` (trusted) and `other`,
/// a handlers directory (0755, root's) and a policy file.
pub struct Setup {
    pub scratch: Scratch,
    pub handlers: PathBuf,
    pub policy: PathBuf,
    pub audit: PathBuf,
    pub ops: (PathBuf, PathBuf, String),
    pub other: (PathBuf, PathBuf, String),
}

pub fn setup(tag: &str, require: bool) -> Setup {
    let scratch = Scratch::new(tag);
    let keys = scratch.path("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let ops = keygen(&keys, "ops");
    let other = keygen(&keys, "other");
    let handlers = scratch.path("handlers");
    std::fs::create_dir_all(&handlers).unwrap();
    std::fs::set_permissions(&handlers, std::fs::Permissions::from_mode(0o755)).unwrap();
    let policy = scratch.path("policy.toml");
    write_policy(&policy, require, &[&ops.1]);
    let audit = scratch.path("audit.log");
    Setup {
        scratch,
        handlers,
        policy,
        audit,
        ops,
        other,
    }
}

/// Start the agent on `setup`; it must exit 1. Its stderr.
pub fn start_fails(setup: &Setup) -> String {
    let sock = setup.scratch.path("refused.sock");
    let state = setup.scratch.path("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut child = Command::new(qga_binary())
        .args(["-m", "unix-listen", "-p", s(&sock), "-t", s(&state)])
        .args(["--handlers", s(&setup.handlers), "--policy", s(&setup.policy)])
        .args(["--audit-log", s(&setup.audit)])
        .env("QGA_CONF", setup.scratch.path("none.conf"))
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
            panic!("the agent started although it must refuse to");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    err
}

pub fn start(setup: &Setup) -> Agent {
    Agent::qga(&[
        "--handlers",
        s(&setup.handlers),
        "--watch-handlers",
        "--policy",
        s(&setup.policy),
        "--audit-log",
        s(&setup.audit),
    ])
}

/// The last line of stderr, and the audit event `component-reject` or
/// `reload`-less start carries the same reason.
pub fn assert_refused_at_start(setup: &Setup, expected: &str) {
    let _ = std::fs::remove_file(&setup.audit);
    let err = start_fails(setup);
    assert!(err.trim_end().ends_with(&format!("qga: {expected}")), "{err}");
    let events = audit::events(&setup.audit, "component-reject");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["reason"], expected, "{events:?}");
}

/// `component for family fixture refused: <dir>/fixture.cwasm: `
pub fn refused_prefix(setup: &Setup) -> String {
    format!(
        "component for family fixture refused: {}: ",
        setup.handlers.join("fixture.cwasm").display()
    )
}

/// What the agent says of an artifact it has neither a pin nor a trusted
/// signature for.
pub fn untrusted_native_code(setup: &Setup) -> String {
    format!(
        "{} is precompiled native code that the policy does not trust: pin its sha256 in the policy ([component.fixture] sha256 = \"…\", as `qga compile` prints it) or sign it with a key in [handlers] trusted-keys to load it",
        setup.handlers.join("fixture.cwasm").display()
    )
}

/// Wait for an audit event `event` whose `key` is `value`.
pub fn wait_event(audit: &Path, event: &str, key: &str, value: &str) -> serde_json::Value {
    wait_event_where(audit, event, &[(key, value)])
}

/// Wait for an audit event `event` with all of `fields`.
pub fn wait_event_where(audit: &Path, event: &str, fields: &[(&str, &str)]) -> serde_json::Value {
    let matches = |e: &serde_json::Value| fields.iter().all(|(k, v)| e[*k] == *v);
    let events = settle(
        Duration::from_secs(30),
        || audit::events(audit, event),
        |e| e.iter().any(matches),
    );
    events
        .into_iter()
        .find(matches)
        .unwrap_or_else(|| panic!("no {event} with {fields:?}"))
}
