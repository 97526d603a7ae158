//! Wire transcripts replayed against qga and, to prove the texts, against
//! the real qemu-ga 7.2.

mod support;

use support::fixture;
use support::{Agent, qemu_ga_binary};

#[test]
fn fixtures_replay_against_qga() {
    fixture::replay_all(&fixture::fixtures_dir(), || Agent::qga(&[]));
}

#[test]
fn fixtures_replay_against_real_qemu_ga() {
    qemu_ga_binary();
    fixture::replay_all(&fixture::fixtures_dir(), || Agent::qemu_ga(&[]));
}

/// The bad-input corpus (tests/fixtures/bad-input/, README "Bad-input
/// corpus"): wrong types, missing and extra members of every command,
/// framing damage, limits, handles, pids and paths.
fn bad_input_dir() -> std::path::PathBuf {
    fixture::fixtures_dir().join("bad-input")
}

#[test]
fn bad_input_replays_against_qga() {
    fixture::replay_all(&bad_input_dir(), || Agent::qga(&[]));
}

#[test]
fn bad_input_replays_against_real_qemu_ga() {
    qemu_ga_binary();
    fixture::replay_all(&bad_input_dir(), || Agent::qemu_ga(&[]));
}

#[test]
fn bad_input_corpus_has_at_least_500_cases() {
    let files = fixture::files(&bad_input_dir());
    let cases: usize = files.iter().map(|f| fixture::sends(f)).sum();
    assert!(
        cases >= 500,
        "the bad-input corpus has {cases} cases (sends), fewer than 500"
    );
}

/// Every command qemu-ga 7.2 registers gets an unexpected argument and an
/// `arguments` that is not an object in the corpus.
#[test]
fn bad_input_corpus_covers_every_command() {
    let out = std::process::Command::new(qemu_ga_binary())
        .args(["-b", "help"])
        .output()
        .unwrap();
    let names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(names.len(), 42, "qemu-ga -b help: {names:?}");
    let text = |name: &str| std::fs::read_to_string(bad_input_dir().join(name)).unwrap();
    let (extra, wrong) = (text("extra-members.jsonl"), text("wrong-types.jsonl"));
    for name in &names {
        let execute = format!("> {{\"execute\":\"{name}\",\"arguments\":");
        assert!(
            extra.lines().any(|l| l.starts_with(&execute) && l.contains("\"x\":1")),
            "extra-members.jsonl lacks an unexpected argument for {name}"
        );
        assert!(
            wrong.contains(&format!("{execute}[]}}")),
            "wrong-types.jsonl lacks non-object arguments for {name}"
        );
    }
}

#[test]
fn deviations_replay_against_qga() {
    fixture::replay_all(&fixture::fixtures_dir().join("deviations"), || Agent::qga(&[]));
}
