//! Replaying `.jsonl` transcripts (see tests/fixtures/README.md):
//! `> TEXT` sends TEXT and a newline, `>x HEX` sends raw bytes, `>* N TEXT`
//! sends TEXT N times (no newline: giant inputs without giant files),
//! `< TEXT` expects one reply line byte for byte, `<x HEX` the same in hex.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Client;

#[derive(Debug)]
pub enum Step {
    Send(Vec<u8>),
    /// `text` sent `count` times in a row.
    Repeat {
        count: usize,
        text: Vec<u8>,
    },
    Expect {
        line: usize,
        reply: Vec<u8>,
    },
}

fn hex(text: &str, path: &Path, line: usize) -> Vec<u8> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    assert!(
        digits.len().is_multiple_of(2),
        "{}:{line}: odd number of hex digits",
        path.display()
    );
    (0..digits.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&digits[i..i + 2], 16).unwrap_or_else(|_| panic!("{}:{line}: bad hex", path.display()))
        })
        .collect()
}

pub fn load(path: &Path) -> Vec<Step> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut steps = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let step = if let Some(rest) = line.strip_prefix(">x ") {
            Step::Send(hex(rest, path, number))
        } else if let Some(rest) = line.strip_prefix(">* ") {
            let (count, text) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("{}:{number}: '>* COUNT TEXT'", path.display()));
            let count = count
                .parse()
                .unwrap_or_else(|_| panic!("{}:{number}: bad repeat count", path.display()));
            assert!(!text.is_empty(), "{}:{number}: nothing to repeat", path.display());
            Step::Repeat {
                count,
                text: text.as_bytes().to_vec(),
            }
        } else if let Some(rest) = line.strip_prefix("> ") {
            Step::Send(format!("{rest}\n").into_bytes())
        } else if let Some(rest) = line.strip_prefix("<x ") {
            Step::Expect {
                line: number,
                reply: hex(rest, path, number),
            }
        } else if let Some(rest) = line.strip_prefix("< ") {
            Step::Expect {
                line: number,
                reply: rest.as_bytes().to_vec(),
            }
        } else {
            panic!(
                "{}:{number}: a line must start with '> ', '>x ', '>* ', '< ' or '<x '",
                path.display()
            );
        };
        steps.push(step);
    }
    steps
}

/// Replay a transcript; returns the mismatches (empty when it passes).
pub fn replay(path: &Path, client: &mut Client) -> Vec<String> {
    let mut failures = Vec::new();
    for step in load(path) {
        match step {
            Step::Send(bytes) => client.send(&bytes),
            Step::Repeat { count, text } => send_repeated(client, count, &text),
            Step::Expect { line, reply } => {
                let got = client.read_line();
                if got != reply {
                    failures.push(format!(
                        "{}:{line}:\n  expected {}\n  got      {}",
                        path.display(),
                        String::from_utf8_lossy(&reply),
                        String::from_utf8_lossy(&got)
                    ));
                }
            }
        }
    }
    if client.has_pending_reply(Duration::from_millis(300)) {
        failures.push(format!(
            "{}: unexpected extra reply: {}",
            path.display(),
            String::from_utf8_lossy(&client.read_line())
        ));
    }
    failures
}

/// `text` `count` times, in chunks of about 1 MiB.
fn send_repeated(client: &mut Client, count: usize, text: &[u8]) {
    let per_chunk = ((1 << 20) / text.len()).max(1);
    let chunk = text.repeat(per_chunk.min(count));
    let mut left = count;
    while left > 0 {
        let n = left.min(per_chunk);
        client.send(&chunk[..n * text.len()]);
        left -= n;
    }
}

/// How many sends (`>` lines of any kind) a transcript has.
pub fn sends(path: &Path) -> usize {
    load(path)
        .iter()
        .filter(|s| matches!(s, Step::Send(_) | Step::Repeat { .. }))
        .count()
}

/// Every `.jsonl` file directly in `dir`, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// Replay every fixture file in `dir`, each against a fresh agent from
/// `start`; fails with every mismatch.
pub fn replay_all(dir: &Path, start: impl Fn() -> super::Agent) {
    let files = files(dir);
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    let mut failures = Vec::new();
    for file in &files {
        let agent = start();
        let mut client = agent.connect();
        failures.extend(replay(file, &mut client));
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
