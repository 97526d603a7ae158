//! Wire transcripts replayed against qga and, to prove the texts, against
//! the real qemu-ga 7.2.

mod support;

use support::fixture;
use support::{Agent, qemu_ga_binary};

fn replay_all(dir: &std::path::Path, start: impl Fn() -> Agent) {
    let files = fixture::files(dir);
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    let mut failures = Vec::new();
    for file in &files {
        let agent = start();
        let mut client = agent.connect();
        failures.extend(fixture::replay(file, &mut client));
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn fixtures_replay_against_qga() {
    replay_all(&fixture::fixtures_dir(), || Agent::qga(&[]));
}

#[test]
fn fixtures_replay_against_real_qemu_ga() {
    qemu_ga_binary();
    replay_all(&fixture::fixtures_dir(), || Agent::qemu_ga(&[]));
}

#[test]
fn deviations_replay_against_qga() {
    replay_all(&fixture::fixtures_dir().join("deviations"), || Agent::qga(&[]));
}
