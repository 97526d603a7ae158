//! Grants and policy against a real component (the `fixture` family, which
//! imports clock and read-file): each built-in grant denies what its
//! command does not need, policy narrowing is checked per argument inside the
//! capability, and `ungranted-imports = "refuse"` keeps a command from
//! loading. Run with `cargo test --release`.

use std::path::PathBuf;
use std::sync::Arc;

use qga::capabilities::{Capability, Grant};
use qga::policy::Policy;
use qga::qobject::{Dict, Value};
use qga::runtime::{Runtime, RuntimeConfig};

fn state_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qga-policy-grants-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn runtime(name: &str, policy: &str, tweak: impl FnOnce(&mut RuntimeConfig)) -> Runtime {
    let mut config = RuntimeConfig::new(state_dir(name));
    config.embedded = false;
    config.handlers_dir = Some(PathBuf::from(env!("QGA_TEST_FIXTURES")));
    // The fixtures' artifacts, pinned as an operator would.
    let pins = std::fs::read_to_string(env!("QGA_TEST_FIXTURE_PINS")).unwrap();
    config.policy = Arc::new(Policy::parse("test.toml", &format!("{policy}\n{pins}")).unwrap());
    tweak(&mut config);
    Runtime::new(config).unwrap()
}

fn read(rt: &Runtime, path: &str) -> Result<Option<Value>, String> {
    rt.call("fixture-read", Some(&Dict::new().with("path", path)))
        .map_err(|e| e.desc)
}

fn now(rt: &Runtime) -> Result<Option<Value>, String> {
    rt.call("fixture-ungranted", Some(&Dict::new())).map_err(|e| e.desc)
}

#[test]
fn each_builtin_grant_denies_what_its_command_does_not_need() {
    let no_env = |_: &str| None;
    for command in [
        "guest-get-time",
        "guest-get-timezone",
        "guest-get-host-name",
        "guest-get-osinfo",
        "guest-get-users",
    ] {
        let builtin = qga::policy::manifests::builtin(command, &no_env);
        // The fixture's handlers run under exactly this command's grant.
        let rt = runtime(&format!("builtin-{command}"), "", |c| {
            c.grants.insert("fixture-read".into(), builtin.clone());
            c.grants.insert("fixture-ungranted".into(), builtin.clone());
        });
        let clock = now(&rt);
        if builtin.allows(Capability::Clock) {
            assert!(matches!(clock, Ok(Some(Value::Int(_)))), "{command}: {clock:?}");
        } else {
            assert_eq!(
                clock.unwrap_err(),
                "fixture-ungranted: permission denied: fixture-ungranted is not granted qga:agent/clock",
                "{command}"
            );
        }
        // No built-in grant reads /etc/shadow or the agent's own files.
        for path in ["/etc/shadow", "/proc/self/environ", "/etc/passwd"] {
            let err = read(&rt, path).unwrap_err();
            assert!(
                err == format!("fixture-read: permission denied: fixture-read may not read {path}")
                    || err == "fixture-read: permission denied: fixture-read is not granted qga:agent/read-file",
                "{command} {path}: {err}"
            );
        }
        // /etc/os-release is for guest-get-osinfo only.
        let osr = read(&rt, "/etc/os-release");
        assert_eq!(osr.is_ok(), command == "guest-get-osinfo", "{command}: {osr:?}");
    }
}

#[test]
fn policy_narrows_read_file_per_argument() {
    let dir = state_dir("narrow-files");
    let (a, b) = (dir.join("a.txt"), dir.join("b.log"));
    std::fs::write(&a, "aaaa").unwrap();
    std::fs::write(&b, "bbbbbbbb").unwrap();
    let mut grant = Grant::none().with(Capability::ReadFile);
    grant.read_file.paths = vec![a.clone(), b.clone()];
    let base = grant.clone();
    // Without a policy both files are readable.
    let rt = runtime("narrow-none", "", |c| {
        c.grants.insert("fixture-read".into(), base);
    });
    assert_eq!(read(&rt, a.to_str().unwrap()), Ok(Some(Value::Uint(4))));
    assert_eq!(read(&rt, b.to_str().unwrap()), Ok(Some(Value::Uint(8))));
    // The policy keeps *.txt only, and cannot add a file the grant lacks.
    let policy = format!(
        "[command.fixture-read]\nread-file.paths = [\"{}/*.txt\", \"/etc/**\"]\n",
        dir.display()
    );
    let rt = runtime("narrow-txt", &policy, |c| {
        c.grants.insert("fixture-read".into(), grant);
    });
    assert_eq!(read(&rt, a.to_str().unwrap()), Ok(Some(Value::Uint(4))));
    assert_eq!(
        read(&rt, b.to_str().unwrap()).unwrap_err(),
        format!(
            "fixture-read: permission denied: fixture-read may not read {}",
            b.display()
        )
    );
    assert!(
        read(&rt, "/etc/os-release")
            .unwrap_err()
            .contains("may not read /etc/os-release")
    );
    assert_eq!(rt.grant("fixture-read").unwrap().read_file.paths, [a]);
}

#[test]
fn policy_can_drop_a_capability_and_set_limits() {
    let rt = runtime(
        "drop-cap",
        "[command.fixture-ungranted]\ncapabilities = []\n[command.fixture-loop]\ndeadline = \"200ms\"\n",
        |c| {
            c.grants
                .insert("fixture-ungranted".into(), Grant::none().with(Capability::Clock));
        },
    );
    assert!(now(&rt).unwrap_err().contains("is not granted qga:agent/clock"));
    let err = rt.call("fixture-loop", Some(&Dict::new())).unwrap_err().desc;
    assert_eq!(err, "fixture-loop: handler exceeded its 200 ms deadline");
}

#[test]
fn refuse_mode_keeps_a_command_with_ungranted_imports_from_loading() {
    let rt = runtime("refuse", "[defaults]\nungranted-imports = \"refuse\"\n", |c| {
        // fixture-ungranted gets everything the fixture imports: it loads.
        c.grants.insert(
            "fixture-ungranted".into(),
            Grant::none().with(Capability::Clock).with(Capability::ReadFile),
        );
    });
    assert!(matches!(now(&rt), Ok(Some(Value::Int(_)))));
    let err = rt.call("fixture-version", Some(&Dict::new())).unwrap_err().desc;
    assert!(
        err.starts_with("fixture-version: handler unavailable: cannot link: the component imports qga:agent/"),
        "{err}"
    );
    assert!(err.ends_with("which fixture-version is not granted (policy: ungranted-imports = \"refuse\")"));
}

fn probe(rt: &Runtime, path: &str) -> Result<Option<Value>, String> {
    rt.call("fixture-fs-probe", Some(&Dict::new().with("path", path)))
        .map_err(|e| e.desc)
}

/// WASI is linked per grant: a command granted no preopen gets stubs of
/// wasi:filesystem (no directory at all), so a hostile handler listing a
/// directory reaches nothing; the same probe in a command whose grant holds
/// a preopen of that directory lists it (positive control).
#[test]
fn the_wasi_filesystem_is_linked_only_for_a_grant_with_preopens() {
    let dir = state_dir("fs-probe-tree");
    std::fs::write(dir.join("a"), "1").unwrap();
    std::fs::write(dir.join("b"), "2").unwrap();
    let d = dir.to_str().unwrap().to_owned();

    let rt = runtime("fs-probe-none", "", |_| {});
    let err = probe(&rt, &d).unwrap_err();
    assert!(err.starts_with(&format!("cannot list {d}: ")), "{err}");
    assert!(probe(&rt, "/").is_err());
    assert!(probe(&rt, "/etc").is_err());

    let rt = runtime("fs-probe-granted", "", |c| {
        let mut g = Grant::none();
        g.preopens.push(qga::capabilities::Preopen {
            host: dir.clone(),
            guest: d.clone(),
            writable: false,
        });
        c.grants.insert("fixture-fs-probe".into(), g);
    });
    assert_eq!(probe(&rt, &d), Ok(Some(Value::Str("a\nb".into()))));
    // Only the preopened tree.
    assert!(probe(&rt, "/etc").is_err());
}
