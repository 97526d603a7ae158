//! Numbers for the README: `cargo test --release --test measure -- --ignored --nocapture`.

use std::path::PathBuf;
use std::time::Instant;

use qga::runtime::{Runtime, RuntimeConfig};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore]
fn measure() {
    let dir: PathBuf = std::env::temp_dir().join(format!("qga-measure-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = || RuntimeConfig::new(&dir);
    let rss0 = rss_kib();
    let t = Instant::now();
    let rt = Runtime::new(config()).unwrap();
    let new_cold = t.elapsed();
    let t = Instant::now();
    rt.load_all().unwrap();
    let compile = t.elapsed();
    let rss_compiled = rss_kib();
    drop(rt);

    let t = Instant::now();
    let rt = Runtime::new(config()).unwrap();
    let new_warm = t.elapsed();
    rt.load_all().unwrap();
    let cached_start = t.elapsed();
    let rss_cached = rss_kib();

    for _ in 0..200 {
        rt.call("guest-get-host-name", None).unwrap();
    }
    let n = 5000;
    let t = Instant::now();
    for _ in 0..n {
        rt.call("guest-get-host-name", None).unwrap();
    }
    let per_call = t.elapsed() / n;
    let t = Instant::now();
    for _ in 0..n {
        rt.call("guest-get-time", None).unwrap();
    }
    let per_call_time = t.elapsed() / n;
    println!("RSS before runtime: {rss0} KiB");
    println!("Runtime::new (cold cache): {new_cold:?}");
    println!("compile system-info (Cranelift, cold): {compile:?}  RSS after: {rss_compiled} KiB");
    println!(
        "Runtime::new (warm cache): {new_warm:?}; new + load_all from cache: {cached_start:?}  RSS: {rss_cached} KiB"
    );
    println!("per call guest-get-host-name (fresh instance + call + convert): {per_call:?}");
    println!("per call guest-get-time: {per_call_time:?}");
}
