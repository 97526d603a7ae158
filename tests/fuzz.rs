//! A fuzzer of the agent's wire protocol, part of the suite.
//!
//! Inputs: every request of the wire fixtures, mutated with knowledge of
//! JSON and without, and the big shapes that once hung the agent; delivered
//! whole, split, byte by byte, flooded, after a 0xFF reset, or cut short by
//! a disconnect. After each batch a 0xFF and a `guest-sync-delimited` must
//! be answered with the right id. Oracles: the agent lives, every reply is
//! one JSON object with `return` or `error`, memory and descriptors stay
//! flat. Commands that act on the machine are blocked with `-b`, files are
//! never opened, and the state directory is a private temporary one.
//!
//! The bounded run (`fuzz_bounded_run`) takes about a minute with a fixed
//! seed. A long run, any seed:
//!
//! ```text
//! QGA_FUZZ_SECS=900 QGA_FUZZ_SEED=12345 cargo test --release --test fuzz -- --nocapture fuzz_bounded_run
//! ```
//!
//! A failing batch is written to `tests/fixtures/fuzz-regressions/` (its
//! bytes, `.bin`) before the test fails; keep it there: every file of that
//! directory is replayed by `fuzz_regressions_replay` (`.tmpl` files are
//! requests written with `{{members:N}}` for N generated members).

mod fuzzing;
mod support;

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fuzzing::mutate::{self, Rng};
use fuzzing::{Delivery, Failure, Replies};
use support::Agent;

/// A sync reply slower than this means the agent hung (it answers a
/// 64 MiB request in well under a second).
const HANG: Duration = Duration::from_secs(60);
const BATCH: usize = 16;
const DEFAULT_SEED: u64 = 0x9A_F022;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn regressions() -> PathBuf {
    fixtures().join("fuzz-regressions")
}

/// Commands that only read, or only use handles no open can create: the
/// rest (shutdown, freeze, set-time, passwords, vCPUs, exec, file-open,
/// ssh keys, suspend, trim, ...) are blocked.
fn harmless(command: &str) -> bool {
    matches!(
        command,
        "guest-sync"
            | "guest-sync-delimited"
            | "guest-ping"
            | "guest-info"
            | "guest-fsfreeze-status"
            | "guest-exec-status"
            | "guest-file-read"
            | "guest-file-write"
            | "guest-file-seek"
            | "guest-file-flush"
            | "guest-file-close"
    ) || command.starts_with("guest-get-")
        || command.starts_with("guest-network-get-")
}

/// An agent with every command that is not [`harmless`] blocked.
fn fuzz_agent() -> Agent {
    let probe = Agent::qga(&[]);
    let info = probe.connect().call(r#"{"execute": "guest-info"}"#);
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    let blocked: Vec<&str> = info["return"]["supported_commands"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .filter(|c| !harmless(c))
        .collect();
    assert!(blocked.contains(&"guest-shutdown") && blocked.contains(&"guest-file-open"));
    Agent::qga(&["-b", &blocked.join(",")])
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Keep a failing batch as a regression case; returns its path.
fn keep(seed: u64, batch: u64, bytes: &[u8]) -> PathBuf {
    std::fs::create_dir_all(regressions()).unwrap();
    let path = regressions().join(format!("seed-{seed:x}-batch-{batch}.bin"));
    std::fs::write(&path, bytes).unwrap();
    path
}

struct Stats {
    requests: u64,
    replies: u64,
    batches: u64,
    rss_kib: Vec<u64>,
    fds: Vec<usize>,
}

/// One connection to the agent: its writer and its replies.
struct Session {
    writer: UnixStream,
    replies: Replies,
}

/// Closing both directions ends the reply reader too.
impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
    }
}

impl Session {
    fn open(agent: &Agent) -> Session {
        let writer = UnixStream::connect(&agent.socket).unwrap();
        let replies = Replies::new(writer.try_clone().unwrap());
        Session { writer, replies }
    }

    /// 0xFF, then guest-sync-delimited: every reply before its answer is
    /// checked.
    fn sync(&mut self, id: u64) -> Result<usize, Failure> {
        use std::io::Write;
        let mut bytes = vec![0xFF];
        bytes.extend_from_slice(
            format!("{{\"execute\": \"guest-sync-delimited\", \"arguments\": {{\"id\": {id}}}}}\n").as_bytes(),
        );
        self.writer.write_all(&bytes).map_err(|_| Failure::Closed)?;
        self.replies.until_sync(id, HANG)
    }
}

fn run(seed: u64, duration: Duration) -> Stats {
    println!("fuzz: seed {seed:#x} ({seed}), {} s", duration.as_secs());
    let corpus = mutate::corpus(&fixtures());
    let names = mutate::command_names(&corpus);
    let mut agent = fuzz_agent();
    let mut rng = Rng::new(seed);
    let mut session = Session::open(&agent);
    let mut stats = Stats {
        requests: 0,
        replies: 0,
        batches: 0,
        rss_kib: Vec::new(),
        fds: Vec::new(),
    };
    let start = Instant::now();
    while start.elapsed() < duration {
        let mut sent = Vec::new();
        let mut failure = None;
        for _ in 0..BATCH {
            let input = mutate::input(&mut rng, &corpus, &names);
            let how = Delivery::pick(&mut rng, input.len());
            stats.requests += 1;
            if let Delivery::Disconnect = how {
                let mut cut = UnixStream::connect(&agent.socket).unwrap();
                let end = rng.below(input.len() + 1);
                let _ = fuzzing::deliver(&mut cut, &mut rng, how, &input[..end]);
                let _ = cut.shutdown(std::net::Shutdown::Both);
                continue;
            }
            match fuzzing::deliver(&mut session.writer, &mut rng, how, &input) {
                Ok(bytes) => sent.extend_from_slice(&bytes),
                Err(_) => {
                    sent.extend_from_slice(&input);
                    failure = Some(Failure::Closed);
                    break;
                }
            }
        }
        let id = 9_000_000_000 + stats.batches;
        let outcome = match failure {
            Some(f) => Err(f),
            None => session.sync(id),
        };
        let outcome = match outcome {
            Err(_) if !agent.is_running() => Err(Failure::Died),
            other => other,
        };
        match outcome {
            Ok(n) => stats.replies += n as u64,
            Err(failure) => {
                let path = keep(seed, stats.batches, &sent);
                panic!(
                    "fuzz: seed {seed:#x}, batch {}: {failure}; input kept in {}\nagent log: {}",
                    stats.batches,
                    path.display(),
                    agent.log()
                );
            }
        }
        stats.batches += 1;
        stats.rss_kib.push(agent.rss_kib());
        stats.fds.push(agent.open_fds());
        // Now and then a fresh connection, as a host-side client reconnects.
        if rng.one_in(20) {
            session = Session::open(&agent);
        }
    }
    drop(session);
    stats
}

fn report(stats: &Stats) {
    let rss = &stats.rss_kib;
    println!(
        "fuzz: {} requests in {} batches, {} checked replies, 0 crashes, 0 hangs, 0 invalid replies; \
         RSS first {} KiB, last {} KiB, max {} KiB; fds first {}, last {}, max {}",
        stats.requests,
        stats.batches,
        stats.replies,
        rss.first().unwrap(),
        rss.last().unwrap(),
        rss.iter().max().unwrap(),
        stats.fds.first().unwrap(),
        stats.fds.last().unwrap(),
        stats.fds.iter().max().unwrap(),
    );
}

/// Memory and descriptors are flat: the later half of the run never needs
/// much more than the earlier half did (both saw the same kinds of input).
fn assert_flat(stats: &Stats) {
    let half = stats.rss_kib.len() / 2;
    assert!(half >= 4, "too few batches to judge: {}", stats.rss_kib.len());
    let early = *stats.rss_kib[..half].iter().max().unwrap();
    let late = *stats.rss_kib[half..].iter().max().unwrap();
    assert!(
        late <= early + early / 2 + 32 * 1024,
        "RSS grew: {early} KiB then {late} KiB"
    );
    let early_fds = *stats.fds[..half].iter().max().unwrap();
    let late_fds = *stats.fds[half..].iter().max().unwrap();
    assert!(
        late_fds <= early_fds + 4,
        "descriptors grew: {early_fds} then {late_fds}"
    );
}

#[test]
fn fuzz_bounded_run() {
    let seed = env_u64("QGA_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let secs = env_u64("QGA_FUZZ_SECS").unwrap_or(60);
    let stats = run(seed, Duration::from_secs(secs));
    report(&stats);
    assert_flat(&stats);
}

#[test]
fn fuzz_regressions_replay() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(regressions())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin" || e == "tmpl"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "the issue's three hangs are kept there");
    let agent = fuzz_agent();
    for (n, case) in cases.iter().enumerate() {
        let bytes = match case.extension().and_then(|e| e.to_str()) {
            Some("tmpl") => mutate::expand(&std::fs::read_to_string(case).unwrap()),
            _ => std::fs::read(case).unwrap(),
        };
        let mut session = Session::open(&agent);
        use std::io::Write;
        session.writer.write_all(&bytes).unwrap();
        let replies = session
            .sync(n as u64)
            .unwrap_or_else(|f| panic!("{}: {f}\n{}", case.display(), agent.log()));
        assert!(replies >= 1, "{}: no reply before the sync", case.display());
    }
}
