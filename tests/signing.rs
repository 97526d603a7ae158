//! Signed handler components: the handlers directory's ownership and modes,
//! and signatures by trusted OpenSSH ed25519 keys (made by the real
//! `ssh-keygen`), at start (exit 1) and on hot swap (the old build serves
//! on), each refusal with its exact error and audit event.
//!
//! The agent under test has no compiler: what it loads from `--handlers` is
//! a precompiled `fixture.cwasm` (made by `support::artifacts::compile`),
//! trusted through a detached `fixture.cwasm.sig` by a trusted key or a
//! sha256 pin. `qga sign`/`qga verify` on `.wasm` files (signatures embedded
//! in a custom section) are exercised on their own.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::signing::{
    Setup, assert_refused_at_start, detached, install, install_artifact, refused_prefix, setup, sha256, signed, start,
    tool, untrusted_native_code, wait_event, wait_event_where, write_policy, write_policy_pinned,
};
use support::{artifacts, audit, qga_binary, s, settle};

fn v1() -> Vec<u8> {
    std::fs::read(Path::new(env!("QGA_TEST_FIXTURES")).join("fixture.wasm")).unwrap()
}

fn v2() -> Vec<u8> {
    std::fs::read(env!("QGA_TEST_FIXTURE_V2")).unwrap()
}

/// The precompiled artifacts of v1 and v2, as `qga compile` makes them.
fn artifact_v1() -> Vec<u8> {
    artifacts::compile("fixture", &v1())
}

fn artifact_v2() -> Vec<u8> {
    artifacts::compile("fixture", &v2())
}

#[test]
fn an_artifact_signed_by_a_trusted_key_loads_and_the_audit_names_its_signer() {
    let setup = setup("sign-trusted", true);
    let artifact = artifact_v1();
    let sig = detached(&setup.scratch, &setup.ops.0, &artifact);
    install_artifact(&setup.handlers, &artifact, Some(&sig));
    let file = setup.handlers.join("fixture.cwasm");
    let (ok, out, err) = tool(&["verify", "--key", s(&setup.ops.1), s(&file)]);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        format!("{}: valid signature by key {}", file.display(), setup.ops.2)
    );
    let agent = start(&setup);
    assert_eq!(
        agent.connect().call(r#"{"execute":"fixture-version"}"#),
        r#"{"return": 1}"#
    );
    let loads = audit::events(&setup.audit, "component-load");
    assert!(
        loads
            .iter()
            .any(|e| e["family"] == "fixture" && e["sha256"] == sha256(&artifact)),
        "{loads:?}"
    );
    assert!(audit::events(&setup.audit, "component-unverified").is_empty());
    let out = Command::new(qga_binary())
        .args(["policy", "audit", "--json", "--policy", s(&setup.policy), "--handlers"])
        .arg(&setup.handlers)
        .env("QGA_CONF", setup.scratch.path("none.conf"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let families = report["families"].as_array().unwrap();
    let fixture = families.iter().find(|f| f["family"] == "fixture").unwrap();
    assert_eq!(fixture["source"], s(&file));
    assert_eq!(fixture["sha256"], sha256(&artifact));
    assert_eq!(fixture["signer"], format!("trusted key {}", setup.ops.2));
    assert_eq!(fixture["key"], setup.ops.2);
    let embedded = families.iter().find(|f| f["family"] == "system-info").unwrap();
    assert_eq!(embedded["source"], "embedded");
    assert_eq!(embedded["signer"], "embedded in the binary");
}

#[test]
fn a_signed_wasm_component_is_refused_by_an_agent_without_a_compiler() {
    let setup = setup("sign-wasm", true);
    install(
        &setup.handlers,
        "fixture.wasm",
        &signed(&setup.scratch, &setup.ops.0, &v1()),
    );
    let file = setup.handlers.join("fixture.wasm");
    assert_refused_at_start(
        &setup,
        &format!(
            "{0} is a .wasm component and this agent has no compiler: run `qga compile {0}` (a qga built with the compiler feature) and pin the artifact's sha256 in the policy",
            file.display()
        ),
    );
}

#[test]
fn verify_exits_1_with_the_reason() {
    let setup = setup("sign-verify", true);
    let file = setup.scratch.path("x.wasm");
    std::fs::write(&file, v1()).unwrap();
    let check = |key: &Path| tool(&["verify", "--key", s(key), s(&file)]);
    let (ok, _, err) = check(&setup.ops.1);
    assert!(!ok);
    assert_eq!(err.trim(), format!("qga verify: {}: no signature", file.display()));
    let (ok, _, err) = tool(&["sign", "--key", s(&setup.ops.0), s(&file)]);
    assert!(ok, "{err}");
    let (ok, _, err) = check(&setup.other.1);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!(
            "qga verify: {}: signed by key {}, which is not the given key",
            file.display(),
            setup.ops.2
        )
    );
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let (ok, _, err) = check(&setup.ops.1);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!(
            "qga verify: {}: the signature by key {} does not match the file's bytes",
            file.display(),
            setup.ops.2
        )
    );
    // A private key where the public one belongs is refused, not misread.
    let (ok, _, err) = check(&setup.ops.0);
    assert!(!ok);
    assert!(err.contains("is not an OpenSSH ed25519 public key"), "{err}");
}

#[test]
fn each_untrusted_artifact_is_refused_at_start_with_its_reason() {
    let setup = setup("sign-start", true);
    let prefix = refused_prefix(&setup);
    let artifact = artifact_v1();
    // Unsigned.
    install_artifact(&setup.handlers, &artifact, None);
    assert_refused_at_start(
        &setup,
        &format!("{prefix}no signature, and the policy requires a signature by a trusted key"),
    );
    // Signed by a key the policy does not trust.
    let by_other = detached(&setup.scratch, &setup.other.0, &artifact);
    install_artifact(&setup.handlers, &artifact, Some(&by_other));
    assert_refused_at_start(
        &setup,
        &format!("{prefix}signed by key {}, which is not in trusted-keys", setup.other.2),
    );
    // Signed, then one byte changed.
    let by_ops = detached(&setup.scratch, &setup.ops.0, &artifact);
    let mut tampered = artifact.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 1;
    install_artifact(&setup.handlers, &tampered, Some(&by_ops));
    let mismatch = format!(
        "{prefix}the signature by key {} does not match the file's bytes",
        setup.ops.2
    );
    assert_refused_at_start(&setup, &mismatch);
    // A valid signature by the trusted key, but over another file.
    let of_other_family = detached(&setup.scratch, &setup.ops.0, &artifact_v2());
    install_artifact(&setup.handlers, &artifact, Some(&of_other_family));
    assert_refused_at_start(&setup, &mismatch);
    // ... and the one for this file loads.
    install_artifact(&setup.handlers, &artifact, Some(&by_ops));
    let agent = start(&setup);
    assert_eq!(
        agent.connect().call(r#"{"execute":"fixture-version"}"#),
        r#"{"return": 1}"#
    );
}

#[test]
fn require_signature_beats_a_pin_and_a_pin_binds_a_signed_artifact() {
    let setup = setup("sign-pin", true);
    let prefix = refused_prefix(&setup);
    let artifact = artifact_v1();
    // Pinned, unsigned: a signature is required all the same.
    write_policy_pinned(&setup.policy, true, &[&setup.ops.1], Some(&sha256(&artifact)));
    install_artifact(&setup.handlers, &artifact, None);
    assert_refused_at_start(
        &setup,
        &format!("{prefix}no signature, and the policy requires a signature by a trusted key"),
    );
    // Signed by the trusted key, but the policy pins another build: the
    // pin must match too.
    let sig = detached(&setup.scratch, &setup.ops.0, &artifact);
    install_artifact(&setup.handlers, &artifact, Some(&sig));
    let other = sha256(&artifact_v2());
    write_policy_pinned(&setup.policy, true, &[&setup.ops.1], Some(&other));
    assert_refused_at_start(
        &setup,
        &format!(
            "component for family fixture has sha256 {}, but the policy pins {other}",
            sha256(&artifact)
        ),
    );
    // Signed and pinned to these bytes: loads.
    write_policy_pinned(&setup.policy, true, &[&setup.ops.1], Some(&sha256(&artifact)));
    let agent = start(&setup);
    assert_eq!(
        agent.connect().call(r#"{"execute":"fixture-version"}"#),
        r#"{"return": 1}"#
    );
}

#[test]
fn the_handlers_directory_and_keys_are_checked_at_start() {
    let setup = setup("sign-dir", false);
    let artifact = artifact_v1();
    let sig = detached(&setup.scratch, &setup.ops.0, &artifact);
    install_artifact(&setup.handlers, &artifact, Some(&sig));
    let file = setup.handlers.join("fixture.cwasm");
    let mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // A trusted key that cannot be read.
    let missing = setup.scratch.path("keys/missing.pub");
    write_policy(&setup.policy, false, &[&missing]);
    assert_refused_at_start(
        &setup,
        &format!(
            "trusted key: cannot read key file {}: No such file or directory (os error 2)",
            missing.display()
        ),
    );
    write_policy(&setup.policy, false, &[&setup.ops.1]);
    // The directory writable by its group.
    mode(&setup.handlers, 0o775);
    assert_refused_at_start(
        &setup,
        &format!(
            "handlers path {} is writable by group or others (mode 0775)",
            setup.handlers.display()
        ),
    );
    mode(&setup.handlers, 0o755);
    // An artifact writable by others, and a signature writable by others.
    for path in [file.clone(), setup.handlers.join("fixture.cwasm.sig")] {
        mode(&path, 0o646);
        assert_refused_at_start(
            &setup,
            &format!(
                "handlers path {} is writable by group or others (mode 0646)",
                path.display()
            ),
        );
        mode(&path, 0o644);
    }
    // An artifact another user owns.
    std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
    assert_refused_at_start(
        &setup,
        &format!("handlers path {} is owned by uid 65534, not root", file.display()),
    );
    // A FIFO where an artifact belongs: refused, without blocking on it.
    std::fs::remove_file(&file).unwrap();
    nix::unistd::mkfifo(&file, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    assert_refused_at_start(
        &setup,
        &format!("handlers path {} is not a regular file", file.display()),
    );
    std::fs::remove_file(&file).unwrap();
    // A symlink to a (signed, root-owned) artifact outside.
    let outside = setup.scratch.path("outside.cwasm");
    std::fs::write(&outside, &artifact).unwrap();
    std::os::unix::fs::symlink(&outside, &file).unwrap();
    assert_refused_at_start(
        &setup,
        &format!("handlers path {} is a symbolic link (not allowed)", file.display()),
    );
    // The whole setting, fixed, starts: the refusals above were the
    // checks', not the artifact's.
    std::fs::remove_file(&file).unwrap();
    install_artifact(&setup.handlers, &artifact, Some(&sig));
    let agent = start(&setup);
    assert_eq!(
        agent.connect().call(r#"{"execute":"fixture-version"}"#),
        r#"{"return": 1}"#
    );
    drop(agent);
    // A symlinked handlers directory.
    let real = setup.scratch.path("real-handlers");
    std::fs::rename(&setup.handlers, &real).unwrap();
    std::os::unix::fs::symlink(&real, &setup.handlers).unwrap();
    assert_refused_at_start(
        &setup,
        &format!(
            "handlers path {} is a symbolic link (not allowed)",
            setup.handlers.display()
        ),
    );
}

#[test]
fn without_require_signature_native_code_still_needs_a_pin_or_a_trusted_signature() {
    let setup = setup("sign-warn", false);
    let artifact = artifact_v1();
    let by_other = detached(&setup.scratch, &setup.other.0, &artifact);
    // Unsigned and unpinned: refused as untrusted native code.
    install_artifact(&setup.handlers, &artifact, None);
    assert_refused_at_start(&setup, &untrusted_native_code(&setup));
    // Signed by a key the policy does not trust, unpinned: refused too.
    install_artifact(&setup.handlers, &artifact, Some(&by_other));
    assert_refused_at_start(&setup, &untrusted_native_code(&setup));
    // Pinned: loads, with a warning for the untrusted signature.
    write_policy_pinned(&setup.policy, false, &[&setup.ops.1], Some(&sha256(&artifact)));
    let agent = start(&setup);
    assert_eq!(
        agent.connect().call(r#"{"execute":"fixture-version"}"#),
        r#"{"return": 1}"#
    );
    let warning = format!(
        "{}: signed by key {}, which is not in trusted-keys; loaded because require-signature = false",
        setup.handlers.join("fixture.cwasm").display(),
        setup.other.2
    );
    let events = audit::events(&setup.audit, "component-unverified");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["reason"], warning.as_str());
    assert_eq!(events[0]["key"], setup.other.2);
    assert_eq!(events[0]["sha256"], sha256(&artifact));
    assert!(agent.log().contains(&warning), "{}", agent.log());
    // A pinned, unsigned build swaps in silently, as before signatures.
    let next = artifact_v2();
    write_policy_pinned(&setup.policy, false, &[&setup.ops.1], Some(&sha256(&next)));
    install_artifact(&setup.handlers, &next, None);
    let version = r#"{"execute":"fixture-version"}"#;
    let answer = settle(
        Duration::from_secs(30),
        || agent.connect().call(version),
        |r| r == r#"{"return": 2}"#,
    );
    assert_eq!(answer, r#"{"return": 2}"#);
    assert_eq!(audit::events(&setup.audit, "component-unverified").len(), 1);
    // Unpinned and unsigned on a hot swap: refused, v2 serves on.
    write_policy(&setup.policy, false, &[&setup.ops.1]);
    install_artifact(&setup.handlers, &artifact, None);
    let event = wait_event(&setup.audit, "component-reject", "sha256", &sha256(&artifact));
    assert_eq!(event["reason"], untrusted_native_code(&setup).as_str());
    assert_eq!(event["kept-sha256"], sha256(&next));
    assert_eq!(agent.connect().call(version), r#"{"return": 2}"#);
}

#[test]
fn a_hot_swap_refuses_each_untrusted_artifact_and_the_old_build_serves_on() {
    let setup = setup("sign-swap", true);
    let good = artifact_v1();
    let good_sig = detached(&setup.scratch, &setup.ops.0, &good);
    install_artifact(&setup.handlers, &good, Some(&good_sig));
    let agent = start(&setup);
    let mut c = agent.connect();
    let version = r#"{"execute":"fixture-version"}"#;
    assert_eq!(c.call(version), r#"{"return": 1}"#);
    let file = setup.handlers.join("fixture.cwasm");
    let prefix = refused_prefix(&setup);
    let next = artifact_v2();
    let mut tampered = next.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 1;
    let mismatch = format!(
        "{prefix}the signature by key {} does not match the file's bytes",
        setup.ops.2
    );
    // (what, artifact, its signature, reason): each pair of artifact and
    // reason is new, so each waits for its own event.
    let cases = [
        (
            "unsigned",
            next.clone(),
            None,
            format!("{prefix}no signature, and the policy requires a signature by a trusted key"),
        ),
        (
            "untrusted key",
            next.clone(),
            Some(detached(&setup.scratch, &setup.other.0, &next)),
            format!("{prefix}signed by key {}, which is not in trusted-keys", setup.other.2),
        ),
        (
            "one byte changed",
            tampered,
            Some(detached(&setup.scratch, &setup.ops.0, &next)),
            mismatch.clone(),
        ),
        (
            "another file's signature",
            next.clone(),
            Some(good_sig.clone()),
            mismatch.clone(),
        ),
    ];
    for (what, bytes, sig, reason) in cases {
        install_artifact(&setup.handlers, &bytes, sig.as_deref());
        let event = wait_event_where(
            &setup.audit,
            "component-reject",
            &[("sha256", &sha256(&bytes)), ("reason", &reason)],
        );
        assert_eq!(event["family"], "fixture", "{what}");
        assert_eq!(event["kept-sha256"], sha256(&good), "{what}");
        assert_eq!(c.call(version), r#"{"return": 1}"#, "{what}");
    }
    install_artifact(&setup.handlers, &good, Some(&good_sig));

    // Whole-directory refusals: nothing changes, `reload-failed` says why.
    let reload_fails = |reason: String| {
        agent.signal(libc::SIGHUP);
        wait_event(&setup.audit, "reload-failed", "reason", &reason);
        assert_eq!(agent.connect().call(version), r#"{"return": 1}"#);
    };
    std::fs::set_permissions(&setup.handlers, std::fs::Permissions::from_mode(0o775)).unwrap();
    reload_fails(format!(
        "handlers path {} is writable by group or others (mode 0775)",
        setup.handlers.display()
    ));
    std::fs::set_permissions(&setup.handlers, std::fs::Permissions::from_mode(0o755)).unwrap();
    let missing = setup.scratch.path("keys/missing.pub");
    write_policy(&setup.policy, true, &[&missing]);
    reload_fails(format!(
        "trusted key: cannot read key file {}: No such file or directory (os error 2)",
        missing.display()
    ));
    write_policy(&setup.policy, true, &[&setup.ops.1]);
    let next_sig = detached(&setup.scratch, &setup.ops.0, &next);
    let outside = setup.scratch.path("outside.cwasm");
    std::fs::write(&outside, &next).unwrap();
    install(&setup.handlers, "fixture.cwasm.sig", &next_sig);
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&outside, &file).unwrap();
    reload_fails(format!(
        "handlers path {} is a symbolic link (not allowed)",
        file.display()
    ));
    std::fs::remove_file(&file).unwrap();

    // A build signed by the trusted key swaps in.
    install_artifact(&setup.handlers, &next, Some(&next_sig));
    let answer = settle(Duration::from_secs(30), || c.call(version), |r| r == r#"{"return": 2}"#);
    assert_eq!(answer, r#"{"return": 2}"#);
    let swap = wait_event(&setup.audit, "component-swap", "sha256", &sha256(&next));
    assert_eq!(swap["family"], "fixture");
}

#[test]
fn a_precompiled_artifact_is_signed_detached_over_its_own_bytes() {
    let setup = setup("sign-detached", true);
    // Any non-wasm file (an ELF .cwasm from `qga compile`) gets X.sig.
    let artifact = setup.scratch.path("fixture.cwasm");
    std::fs::write(&artifact, b"\x7fELF not really, but bytes all the same").unwrap();
    let (ok, out, err) = tool(&["sign", "--key", s(&setup.ops.0), s(&artifact)]);
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        format!(
            "{}: signed by key {} (signature in {}.sig)",
            artifact.display(),
            setup.ops.2,
            artifact.display()
        )
    );
    let verify = || tool(&["verify", "--key", s(&setup.ops.1), s(&artifact)]);
    assert!(verify().0);
    let mut bytes = std::fs::read(&artifact).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&artifact, &bytes).unwrap();
    let (ok, _, err) = verify();
    assert!(!ok);
    assert!(err.contains("does not match the file's bytes"), "{err}");
}

#[test]
fn encrypted_keys_and_bad_policies_are_refused_with_the_reason() {
    let setup = setup("sign-keys", true);
    let key = setup.scratch.path("keys/locked");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "secret", "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let file = setup.scratch.path("x.wasm");
    std::fs::write(&file, v1()).unwrap();
    let (ok, _, err) = tool(&["sign", "--key", s(&key), s(&file)]);
    assert!(!ok);
    assert_eq!(
        err.trim(),
        format!(
            "qga sign: key file {} is not an OpenSSH ed25519 private key: the key is encrypted (use a key written with -N '')",
            key.display()
        )
    );
    assert_eq!(std::fs::read(&file).unwrap(), v1(), "the file is untouched");
    for (text, reason) in [
        (
            "[handlers]\nrequire-signature = \"yes\"\n",
            "2: 'require-signature' must be true or false",
        ),
        (
            "[handlers]\ntrusted-keys = [\"ops.pub\"]\n",
            "2: 'trusted-keys': paths must be absolute",
        ),
        (
            "[handlers]\ntrusted-key = []\n",
            "2: unknown key 'trusted-key' in [handlers] (expected trusted-keys, require-signature)",
        ),
    ] {
        std::fs::write(&setup.policy, text).unwrap();
        let (ok, _, err) = tool(&["policy", "check", s(&setup.policy)]);
        assert!(!ok, "{text}");
        assert!(
            err.contains(&format!("{}:{reason}", setup.policy.display())),
            "{text}: {err}"
        );
    }
}

#[test]
fn a_parent_directory_another_user_owns_refuses_the_start() {
    let setup = setup("sign-parent", false);
    let parent = setup.scratch.path("shared");
    let handlers = parent.join("handlers");
    std::fs::create_dir_all(&handlers).unwrap();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&handlers, std::fs::Permissions::from_mode(0o755)).unwrap();
    install_artifact(&handlers, &artifact_v1(), None);
    // Its owner could rename `handlers` away and put their own in its place.
    std::os::unix::fs::chown(&parent, Some(65534), None).unwrap();
    let setup = Setup { handlers, ..setup };
    assert_refused_at_start(
        &setup,
        &format!("handlers path {} is owned by uid 65534, not root", parent.display()),
    );
}
