//! Reload is one atomic switch: the policy, its allow/deny decisions, the
//! components and their grants form one generation, swapped in one step,
//! and every trigger (SIGHUP, the handlers-directory watcher) reloads under
//! one lock. Proved by a storm of both triggers while clients call: each
//! call's decision (its audit line's rule) and its answer (the component
//! that ran) belong to the same configuration, each reload is audited once
//! and in order, and the agent ends on the last configuration written.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::{Agent, Client, Scratch, artifacts, settle};

const SIGHUP: i32 = 1;
const CALL: &str = r#"{"execute":"fixture-version"}"#;
/// How many configurations the test writes (bounded storm).
const VERSIONS: usize = 24;
const CLIENTS: usize = 3;
/// Calls per client at most, so a stuck reload cannot make the test spin.
const MAX_CALLS: usize = 20_000;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The two builds of the `fixture` family: (artifact, sha256, what
/// `fixture-version` answers).
fn builds() -> [(Vec<u8>, String, i64); 2] {
    let v1 = std::fs::read(PathBuf::from(env!("QGA_TEST_FIXTURES")).join("fixture.wasm")).unwrap();
    let v2 = std::fs::read(env!("QGA_TEST_FIXTURE_V2")).unwrap();
    [(v1, 1), (v2, 2)].map(|(wasm, answer)| {
        let artifact = artifacts::compile("fixture", &wasm);
        let digest = artifacts::sha256(&artifact);
        (artifact, digest, answer)
    })
}

/// Configuration `k` runs build `k % 2`.
fn build_of(k: usize) -> usize {
    k % 2
}

/// The policy of configuration `k`: pins build `k % 2`, and allows
/// fixture-version by a rule on line `k + 4`, so an audit line's rule says
/// which configuration decided.
fn policy_text(k: usize, digest: &str) -> String {
    format!(
        "{}{}[command.\"fixture-version\"]\nallow = true\n",
        artifacts::pin("fixture", digest),
        "# padding\n".repeat(k)
    )
}

/// Write configuration `k`: the component first, then the policy (both
/// atomically), so a reload that reads the new policy finds the new build.
fn write_config(handlers: &Path, policy: &Path, k: usize, builds: &[(Vec<u8>, String, i64); 2]) {
    let (artifact, digest, _) = &builds[build_of(k)];
    artifacts::install_bytes(handlers, "fixture", artifact);
    let tmp = policy.with_extension("tmp");
    std::fs::write(&tmp, policy_text(k, digest)).unwrap();
    std::fs::rename(&tmp, policy).unwrap();
}

/// Which configuration an audit rule names (its line number minus 4).
fn config_of_rule(rule: &str) -> usize {
    let line = rule
        .rsplit_once(':')
        .and_then(|(_, l)| l.trim_end_matches(')').parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no line in rule {rule:?}"));
    line - 4
}

/// The audit log's whole lines (the writer may be midway through the
/// last one), each of which must be JSON.
fn audit_lines(audit: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(audit).unwrap_or_default();
    let whole = text.rfind('\n').map_or("", |end| &text[..end]);
    whole
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn reloads(audit: &Path) -> usize {
    audit_lines(audit)
        .iter()
        .filter(|l| l["event"] == "policy-reload")
        .count()
}

/// Wait (on audit events) until at least `n` reloads were audited.
fn wait_reloads(audit: &Path, n: usize) {
    let seen = settle(Duration::from_secs(120), || reloads(audit), |&c| c >= n);
    assert!(seen >= n, "only {seen} reloads audited, waited for {n}");
}

#[test]
fn concurrent_sighup_and_watcher_reloads_switch_whole_generations() {
    let builds = builds();
    let scratch = Scratch::new("reload-storm");
    let handlers = scratch.path("handlers");
    std::fs::create_dir_all(&handlers).unwrap();
    let policy = scratch.path("policy.toml");
    let audit = scratch.path("audit.log");
    write_config(&handlers, &policy, 0, &builds);
    let agent = Agent::qga(&[
        "--handlers",
        s(&handlers),
        "--watch-handlers",
        "--policy",
        s(&policy),
        "--audit-log",
        s(&audit),
    ]);
    assert_eq!(agent.connect().call(CALL), r#"{"return": 1}"#);

    // Clients call without pause; each first sends a marker command so
    // its channel can be told apart in the audit log.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let mut client: Client = agent.connect();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let marker = client.call(&format!(r#"{{"execute":"reload-marker-{i}"}}"#));
                assert!(marker.contains("CommandNotFound"), "{marker}");
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) && answers.len() < MAX_CALLS {
                    answers.push(client.call(CALL));
                }
                answers
            })
        })
        .collect();

    // The storm: every configuration changes the handlers directory (the
    // watcher reloads about two seconds later) and most are also signalled,
    // some twice; the next configuration is written once a reload of this
    // one was audited, while the watcher's reload may still be coming.
    let mut audited = reloads(&audit);
    for k in 1..=VERSIONS {
        write_config(&handlers, &policy, k, &builds);
        if k % 4 != 0 {
            agent.signal(SIGHUP);
        }
        if k % 3 == 0 {
            agent.signal(SIGHUP);
        }
        wait_reloads(&audit, audited + 1);
        audited = reloads(&audit);
    }
    // The last configuration is signalled once more, after every write.
    agent.signal(SIGHUP);
    wait_reloads(&audit, audited + 1);
    stop.store(true, Ordering::Relaxed);
    let answers: Vec<Vec<String>> = clients.into_iter().map(|c| c.join().unwrap()).collect();

    // The final state is the last configuration written.
    let last = &builds[build_of(VERSIONS)];
    let mut probe = agent.connect();
    assert_eq!(probe.call(CALL), format!(r#"{{"return": {}}}"#, last.2));

    // Every request made is in the audit log (the clients', the first
    // call and the probe).
    let total: usize = answers.iter().map(Vec::len).sum();
    let lines = settle(
        Duration::from_secs(30),
        || audit_lines(&audit),
        |l| l.iter().filter(|e| e["command"] == "fixture-version").count() >= total + 2,
    );
    let mut checked = 0;
    let mut configs_seen = std::collections::BTreeSet::new();
    for (i, answers) in answers.iter().enumerate() {
        let marker = format!("reload-marker-{i}");
        let channel = lines
            .iter()
            .find(|l| l["command"] == marker.as_str())
            .map(|l| l["channel"].clone())
            .unwrap_or_else(|| panic!("no audit line for {marker}"));
        let calls: Vec<_> = lines
            .iter()
            .filter(|l| l["channel"] == channel && l["command"] == "fixture-version")
            .collect();
        assert_eq!(calls.len(), answers.len(), "client {i}: audit lines vs replies");
        for (n, (line, answer)) in calls.iter().zip(answers).enumerate() {
            // The decision: which configuration's policy allowed the call.
            assert_eq!(line["decision"], "allow", "client {i} call {n}: {line}");
            let k = config_of_rule(line["rule"].as_str().unwrap());
            let (_, digest, value) = &builds[build_of(k)];
            configs_seen.insert(k);
            // The component the audit line names and the one that answered
            // belong to that same configuration.
            assert_eq!(line["component"], digest.as_str(), "client {i} call {n}: {line}");
            assert_eq!(
                answer,
                &format!(r#"{{"return": {value}}}"#),
                "client {i} call {n}: decided by configuration {k} ({line}), answered {answer}"
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
    assert!(
        configs_seen.len() > 1,
        "the calls saw one configuration only: {configs_seen:?}"
    );

    // Each reload audited once, in order: generation serials 2, 3, 4, …
    let serials: Vec<u64> = lines
        .iter()
        .filter(|l| l["event"] == "policy-reload")
        .map(|l| l["generation"].as_u64().expect("generation in policy-reload"))
        .collect();
    let expected: Vec<u64> = (2..2 + serials.len() as u64).collect();
    assert_eq!(serials, expected);
    assert!(
        serials.len() > VERSIONS,
        "{} reloads for {VERSIONS} configurations",
        serials.len()
    );
    assert!(
        !lines
            .iter()
            .any(|l| l["event"] == "reload-failed" || l["event"] == "policy-reject"),
        "a reload failed"
    );
    // Both triggers took part.
    for trigger in ["sighup", "watcher"] {
        assert!(
            lines
                .iter()
                .any(|l| l["event"] == "policy-reload" && l["trigger"] == trigger),
            "no {trigger} reload"
        );
    }
}
