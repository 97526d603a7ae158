//! Hostile handlers (the `fixture` family, built by build.rs from
//! handlers/fixture) against the runtime: each failure stays inside its call
//! and the next call works. Run with `cargo test --release`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qga::capabilities::{Capability, Grant};
use qga::qobject::{Dict, Value};
use qga::runtime::{Runtime, RuntimeConfig};

fn state_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("qga-sandbox-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn fixture_runtime(name: &str, tweak: impl FnOnce(&mut RuntimeConfig)) -> Arc<Runtime> {
    let mut config = RuntimeConfig::new(state_dir(name));
    config.embedded = false;
    config.handlers_dir = Some(PathBuf::from(env!("QGA_TEST_FIXTURES")));
    // The fixtures' artifacts, pinned as an operator would.
    let pins = std::fs::read_to_string(env!("QGA_TEST_FIXTURE_PINS")).unwrap();
    config.policy = Arc::new(qga::policy::Policy::parse("pins.toml", &pins).unwrap());
    tweak(&mut config);
    Arc::new(Runtime::new(config).unwrap())
}

fn call(rt: &Runtime, command: &str, args: Dict) -> Result<Option<Value>, String> {
    rt.call(command, Some(&args)).map_err(|e| e.desc)
}

fn echo_works(rt: &Runtime) {
    let arg = Dict::new().with("i", 7i64);
    let reply = call(rt, "fixture-echo", Dict::new().with("arg", Value::Dict(arg))).unwrap();
    assert_eq!(reply.unwrap().to_json(), r#"{"i": 7}"#);
}

#[test]
fn commands_come_from_export_types() {
    let rt = fixture_runtime("commands", |_| {});
    let names: Vec<(String, bool)> = rt
        .commands()
        .into_iter()
        .map(|c| (c.name, c.success_response))
        .collect();
    assert!(names.contains(&("fixture-echo".to_owned(), true)));
    assert!(names.contains(&("fixture-quiet".to_owned(), false)));
}

#[test]
fn endless_loop_times_out_within_its_deadline() {
    let rt = fixture_runtime("loop", |c| {
        let mut g = Grant::none();
        g.deadline = Duration::from_millis(300);
        c.grants.insert("fixture-loop".into(), g);
    });
    rt.load_all().unwrap();
    let start = Instant::now();
    let err = call(&rt, "fixture-loop", Dict::new()).unwrap_err();
    let took = start.elapsed();
    assert_eq!(err, "fixture-loop: handler exceeded its 300 ms deadline");
    // Not before its deadline (how long after depends on the machine's load).
    assert!(took >= Duration::from_millis(300), "{took:?}");
    echo_works(&rt);
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    let rt = fixture_runtime("alloc", |_| {});
    let err = call(&rt, "fixture-alloc", Dict::new().with("mib", 4096i64)).unwrap_err();
    assert_eq!(err, "fixture-alloc: handler exceeded its 64 MiB memory limit");
    // A modest allocation under the cap is fine.
    let ok = call(&rt, "fixture-alloc", Dict::new().with("mib", 8i64)).unwrap();
    assert_eq!(ok, Some(Value::Int(8)));
    echo_works(&rt);
}

#[test]
fn panic_becomes_an_error() {
    let rt = fixture_runtime("panic", |_| {});
    let err = call(&rt, "fixture-panic", Dict::new()).unwrap_err();
    assert_eq!(err, "fixture-panic: handler crashed (panic or wasm unreachable)");
    echo_works(&rt);
}

#[test]
fn huge_result_is_bounded() {
    // Under the default 64 MiB cap the handler cannot even build it.
    let rt = fixture_runtime("big", |_| {});
    let err = call(&rt, "fixture-big", Dict::new().with("mib", 100i64)).unwrap_err();
    assert_eq!(err, "fixture-big: handler exceeded its 64 MiB memory limit");
    // With room to build it, the reply limit refuses it.
    let rt = fixture_runtime("big2", |c| {
        let mut g = Grant::none();
        g.memory_bytes = 512 << 20;
        c.grants.insert("fixture-big".into(), g);
    });
    let err = call(&rt, "fixture-big", Dict::new().with("mib", 100i64)).unwrap_err();
    assert_eq!(
        err,
        "fixture-big: handler reply of 104857602 bytes exceeds its 16 MiB limit"
    );
    let ok = call(&rt, "fixture-big", Dict::new().with("mib", 1i64)).unwrap();
    assert!(matches!(ok, Some(Value::Str(s)) if s.len() == 1 << 20));
    echo_works(&rt);
}

#[test]
fn ungranted_interface_is_refused() {
    let rt = fixture_runtime("ungranted", |_| {});
    let err = call(&rt, "fixture-ungranted", Dict::new()).unwrap_err();
    assert_eq!(
        err,
        "fixture-ungranted: permission denied: fixture-ungranted is not granted qga:agent/clock"
    );
    echo_works(&rt);
    // Granted, the same handler works.
    let rt = fixture_runtime("granted", |c| {
        c.grants
            .insert("fixture-ungranted".into(), Grant::none().with(Capability::Clock));
    });
    assert!(matches!(
        call(&rt, "fixture-ungranted", Dict::new()),
        Ok(Some(Value::Int(_)))
    ));
}

#[test]
fn stack_overflow_becomes_an_error() {
    let rt = fixture_runtime("recurse", |_| {});
    let ok = call(&rt, "fixture-recurse", Dict::new().with("depth", 1000i64)).unwrap();
    assert_eq!(ok, Some(Value::Uint(1000)));
    for _ in 0..3 {
        let err = call(&rt, "fixture-recurse", Dict::new().with("depth", 100_000_000i64)).unwrap_err();
        assert_eq!(
            err,
            "fixture-recurse: handler crashed: out of bounds memory access (stack overflow or bad pointer)"
        );
        echo_works(&rt);
    }
}

#[test]
fn ungranted_interface_in_a_loop_fails_at_the_first_call() {
    let rt = fixture_runtime("ungranted-loop", |_| {});
    let err = call(
        &rt,
        "fixture-ungranted-loop",
        Dict::new().with("count", 4_000_000_000i64),
    )
    .unwrap_err();
    assert_eq!(
        err,
        "fixture-ungranted-loop: permission denied: fixture-ungranted-loop is not granted qga:agent/clock"
    );
    echo_works(&rt);
    // Granted, every call returns.
    let rt = fixture_runtime("granted-loop", |c| {
        c.grants
            .insert("fixture-ungranted-loop".into(), Grant::none().with(Capability::Clock));
    });
    assert_eq!(
        call(&rt, "fixture-ungranted-loop", Dict::new().with("count", 1000i64)),
        Ok(Some(Value::Int(1000)))
    );
}

#[test]
fn handler_errors_and_no_reply() {
    let rt = fixture_runtime("errors", |_| {});
    let err = call(
        &rt,
        "fixture-fail",
        Dict::new().with("desc", "handle '5' has not been found"),
    )
    .unwrap_err();
    assert_eq!(err, "handle '5' has not been found");
    assert_eq!(call(&rt, "fixture-quiet", Dict::new()), Ok(None));
}

#[test]
fn echo_round_trips_through_wasm() {
    let rt = fixture_runtime("echo", |_| {});
    let arg = Dict::new()
        .with("i", -5i64)
        .with("s8v", -128i64)
        .with("u16v", 65535i64)
        .with("d", Value::Double(1.25))
        .with("s", "héllo")
        .with("c", "dark-blue")
        .with("data", "QUJD")
        .with(
            "items",
            Value::List(vec![Value::Dict(Dict::new().with("flag", true).with("small", 3i64))]),
        )
        .with("w", "green");
    let mut expected = arg.clone();
    expected.insert("u", Value::Uint(u64::MAX));
    let mut sent = arg;
    sent.insert("u", Value::Uint(u64::MAX));
    let reply = call(&rt, "fixture-echo", Dict::new().with("arg", Value::Dict(sent)))
        .unwrap()
        .unwrap();
    let Value::Dict(reply) = reply else { panic!() };
    for (k, v) in expected.iter() {
        assert_eq!(reply.get(k), Some(v), "{k}");
    }
    // Argument errors come before the handler runs, with qemu-ga's names.
    let err = call(
        &rt,
        "fixture-echo",
        Dict::new().with("arg", Value::Dict(Dict::new().with("i", 1i64).with("s8v", 300i64))),
    )
    .unwrap_err();
    assert_eq!(err, "Parameter 'arg.s8v' expects int8");
    let err = call(
        &rt,
        "fixture-echo",
        Dict::new()
            .with("arg", Value::Dict(Dict::new().with("i", 1i64)))
            .with("x", 1i64),
    )
    .unwrap_err();
    assert_eq!(err, "Parameter 'x' is unexpected");
}

#[test]
fn concurrent_calls_are_isolated() {
    let rt = fixture_runtime("concurrent", |c| {
        let mut g = Grant::none();
        g.deadline = Duration::from_millis(200);
        c.grants.insert("fixture-loop".into(), g);
    });
    rt.load_all().unwrap();
    let looping = {
        let rt = rt.clone();
        std::thread::spawn(move || call(&rt, "fixture-loop", Dict::new()))
    };
    for _ in 0..50 {
        echo_works(&rt);
    }
    assert!(looping.join().unwrap().is_err());
}
