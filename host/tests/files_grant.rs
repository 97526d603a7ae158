//! The files and process capabilities under a narrowed policy: a grant to
//! /tmp cannot be escaped with `..` or symlinks, and each command of the
//! file and exec families holds only its own capability.

use std::path::{Path, PathBuf};

use qga::capabilities::files::{FileOp, FileRule};
use qga::capabilities::process::ProcessGrant;
use qga::capabilities::{Capability, Grant};
use qga::qobject::{Dict, Value};
use qga::runtime::{Runtime, RuntimeConfig};

fn scratch(name: &str) -> PathBuf {
    // Under /tmp on purpose: the grant below names /tmp.
    let dir = Path::new("/tmp").join(format!("qga-files-grant-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tmp_only_runtime(state: &Path) -> Runtime {
    let mut config = RuntimeConfig::new(state.join("state"));
    std::fs::create_dir_all(&config.state_dir).unwrap();
    let mut open = Grant::none().with(Capability::Files);
    open.files.rules = vec![FileRule::any_mode("/tmp/**")];
    open.files.ops.insert(FileOp::Open);
    config.grants.insert("guest-file-open".into(), open);
    let mut exec = Grant::none().with(Capability::Process);
    exec.process = ProcessGrant {
        programs: vec!["/usr/bin/true".into()],
        env_names: Some(vec!["LANG".into()]),
        uid: None,
        gid: None,
    };
    config.grants.insert("guest-exec".into(), exec);
    Runtime::new(config).unwrap()
}

fn open(rt: &Runtime, path: &str, mode: &str) -> Result<Option<Value>, String> {
    let args = Dict::new().with("path", path).with("mode", mode);
    rt.call("guest-file-open", Some(&args)).map_err(|e| e.desc)
}

#[test]
fn grant_to_tmp_cannot_be_escaped_with_dotdot_or_symlinks() {
    let dir = scratch("escape");
    let rt = tmp_only_runtime(&dir);
    let d = dir.to_str().unwrap();

    let err = open(&rt, "/tmp/../etc/shadow", "r").unwrap_err();
    assert_eq!(
        err,
        "guest-file-open: permission denied: guest-file-open may not open /etc/shadow (mode 'r')"
    );
    std::os::unix::fs::symlink("/etc/shadow", dir.join("shadow-link")).unwrap();
    let err = open(&rt, &format!("{d}/shadow-link"), "r").unwrap_err();
    assert!(err.contains("may not open /etc/shadow"), "{err}");
    // A symlinked directory, and `..` below a missing directory.
    std::os::unix::fs::symlink("/etc", dir.join("etc-link")).unwrap();
    let err = open(&rt, &format!("{d}/etc-link/passwd"), "r").unwrap_err();
    assert!(err.contains("may not open /etc/passwd"), "{err}");
    // The walk stops at `missing` (inside the grant), as the kernel's own
    // lookup would: ENOENT, in qemu-ga's words, and nothing is opened.
    let err = open(&rt, &format!("{d}/missing/../../../etc/passwd"), "r").unwrap_err();
    assert_eq!(
        err,
        format!("failed to open file '{d}/missing/../../../etc/passwd' (mode: 'r'): No such file or directory")
    );
    // Creating through a symlink to a directory outside is refused before
    // anything is created.
    let err = open(&rt, &format!("{d}/etc-link/qga-must-not-exist"), "w").unwrap_err();
    assert!(err.contains("permission denied"), "{err}");
    assert!(!Path::new("/etc/qga-must-not-exist").exists());
    // A dangling symlink pointing outside: qemu-ga's exclusive create fails
    // with EEXIST and the plain open with ENOENT: nothing is created.
    std::os::unix::fs::symlink("/etc/qga-dangling-target", dir.join("dangling")).unwrap();
    let err = open(&rt, &format!("{d}/dangling"), "w").unwrap_err();
    assert!(
        err.starts_with("failed to open file") || err.contains("permission denied"),
        "{err}"
    );
    assert!(!Path::new("/etc/qga-dangling-target").exists());

    // Inside the grant everything works as usual.
    std::fs::write(dir.join("inside"), b"x").unwrap();
    assert_eq!(
        open(&rt, &format!("{d}/inside"), "r").unwrap().unwrap().to_json(),
        "1000"
    );
    assert_eq!(open(&rt, &format!("{d}/new"), "w").unwrap().unwrap().to_json(), "1001");
    let err = open(&rt, &format!("{d}/missing/x"), "w").unwrap_err();
    assert!(err.ends_with("No such file or directory"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn program_allowlist_and_environment_are_enforced() {
    let dir = scratch("exec");
    let rt = tmp_only_runtime(&dir);
    let exec = |args: Dict| rt.call("guest-exec", Some(&args)).map_err(|e| e.desc);
    let err = exec(Dict::new().with("path", "/bin/sh")).unwrap_err();
    assert!(err.contains("may not run"), "{err}");
    let err = exec(
        Dict::new()
            .with("path", "/usr/bin/true")
            .with("env", Value::List(vec![Value::from("LD_PRELOAD=/x.so")])),
    )
    .unwrap_err();
    assert!(err.contains("may not set environment variable LD_PRELOAD"), "{err}");
    let ok = exec(Dict::new().with("path", "/usr/bin/true"))
        .unwrap()
        .unwrap()
        .to_json();
    assert!(ok.starts_with("{\"pid\": "), "{ok}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn file_and_exec_commands_hold_only_their_own_capability() {
    let env = |_: &str| None;
    for c in [
        "guest-file-open",
        "guest-file-close",
        "guest-file-read",
        "guest-file-write",
        "guest-file-seek",
        "guest-file-flush",
    ] {
        let caps: Vec<Capability> = qga::policy::manifests::builtin(c, &env)
            .capabilities
            .into_iter()
            .collect();
        assert_eq!(caps, [Capability::Files], "{c}");
    }
    for c in ["guest-exec", "guest-exec-status"] {
        let caps: Vec<Capability> = qga::policy::manifests::builtin(c, &env)
            .capabilities
            .into_iter()
            .collect();
        assert_eq!(caps, [Capability::Process], "{c}");
    }
    // The read can carry 48 MiB (64 MiB of base64) through the sandbox.
    let read = qga::policy::manifests::builtin("guest-file-read", &env);
    assert!(read.memory_bytes >= 80 << 20 && read.reply_limit >= (64 << 20) + 100);
}
