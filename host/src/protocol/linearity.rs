//! The work of every stage a request goes through (streamer and parser,
//! QDict, envelope checks, the converter's unexpected-member check) grows in
//! proportion to the number of members, whatever their names: shown by
//! counting key hashes, key comparisons and hash-table probes
//! ([`crate::qobject::work`]), never by timing.

use proptest::prelude::*;

use super::{StreamParser, check_request};
use crate::convert::check_unexpected;
use crate::qobject::work;

/// How far work(8N) may exceed 8 × work(N) (hash tables fill to different
/// loads at different sizes).
const SLACK: f64 = 0.5;

/// The counted steps of parsing `input` (one message) and running the
/// envelope check, and the converter's check on `arguments` when it passes.
fn work_for(input: &[u8]) -> u64 {
    let before = work::steps();
    let mut parser = StreamParser::new();
    let mut out = Vec::new();
    parser.feed(input, &mut out);
    assert_eq!(out.len(), 1, "one message");
    if let Ok(value) = out.pop().unwrap()
        && let Ok(request) = check_request(value)
    {
        let args = request.arguments.unwrap_or_default();
        let _ = check_unexpected(&args, None, |k| k == "path", &["path"]);
    }
    work::steps() - before
}

/// Member names: `seed` picks a family of names of varied lengths.
fn key(seed: u64, i: usize) -> String {
    let mut x = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let len = 1 + (x % 12) as usize;
    format!("{i:x}{}", "k".repeat(len))
}

fn members(seed: u64, n: usize) -> String {
    (0..n)
        .map(|i| format!("\"{}\": {i}", key(seed, i)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The shapes of request the issue found quadratic, and their neighbours.
fn shape(which: usize, seed: u64, n: usize) -> String {
    let m = members(seed, n);
    match which {
        // An object as the value of `execute`.
        0 => format!("{{\"execute\": {{{m}}}}}"),
        // As `arguments.path`.
        1 => format!("{{\"execute\": \"guest-file-open\", \"arguments\": {{\"path\": {{{m}}}}}}}"),
        // As an unknown member.
        2 => format!("{{\"execute\": \"guest-ping\", \"bogus\": {{{m}}}}}"),
        // Members of the envelope itself.
        3 => format!("{{\"execute\": \"guest-ping\", {m}}}"),
        // Members of `arguments`: the unexpected-member check sees them all.
        4 => format!("{{\"execute\": \"guest-file-open\", \"arguments\": {{\"path\": \"/x\", {m}}}}}"),
        // A duplicate key after all of them.
        _ => format!(
            "{{\"execute\": \"guest-ping\", \"arguments\": {{{m}, \"{}\": 1}}}}",
            key(seed, 0)
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x011A_EA12),
        ..ProptestConfig::default()
    })]

    #[test]
    fn work_grows_in_proportion_to_the_members(which in 0usize..6, seed in any::<u64>(), n in 2_000usize..6_000) {
        let small = work_for(shape(which, seed, n).as_bytes());
        let large = work_for(shape(which, seed, 8 * n).as_bytes());
        prop_assert!(small as usize >= n, "the counter sees the members ({small} steps for {n})");
        prop_assert!(
            large as f64 <= 8.0 * (1.0 + SLACK) * small as f64,
            "shape {which}: {small} steps for {n} members, {large} for {}", 8 * n
        );
    }
}

/// The counter would catch a quadratic stage: a lookup per member in a
/// dict that scanned its members makes the ratio blow up.
#[test]
fn the_counter_sees_quadratic_work() {
    use crate::qobject::Dict;
    let scan = |n: usize| {
        let before = work::steps();
        let mut d = Dict::new();
        for i in 0..n {
            d.insert(key(1, i), crate::qobject::Value::Null);
        }
        // One scan per member: what a dict searched linearly costs.
        for i in 0..n {
            let name = key(1, i);
            work::count(d.iter().position(|(k, _)| k == name).expect("inserted") as u64 + 1);
        }
        work::steps() - before
    };
    let (small, large) = (scan(200), scan(1600));
    assert!(large as f64 > 8.0 * (1.0 + SLACK) * small as f64, "{small} vs {large}");
}
