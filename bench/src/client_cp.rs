//! `qga-client cp` throughput, both directions, against both agents: the
//! whole client (resync, guest-file-open, 4 MiB chunks, close; copy-in's
//! `mv` through guest-exec) as an operator runs it, median of the rounds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Agent, Row, mb_per_s, noise, percentile};

const SIZE: usize = 64 << 20;

/// One `qga-client -s SOCKET cp FROM TO`; its wall time.
fn timed_cp(client: &Path, agent: &Agent, from: &str, to: &str) -> Duration {
    let started = Instant::now();
    let out = Command::new(client)
        .arg("-s")
        .arg(agent.socket())
        .args(["cp", from, to])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", client.display()));
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "qga-client cp {from} {to} against {}: {}",
        agent.name,
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

pub fn client_cp(agents: &[Agent; 2], client: &Path, rounds: usize, rows: &mut Vec<Row>) {
    let dir = std::env::temp_dir().join(format!("qga-bench-client-cp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("src");
    let data = noise(SIZE, 0x2545_f491_4f6c_dd1d);
    std::fs::write(&src, &data).unwrap();
    let mut copy_in: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut copy_out: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds.clamp(1, 5) {
        for (i, agent) in agents.iter().enumerate() {
            let guest: PathBuf = dir.join(format!("in-{}", agent.name));
            let back: PathBuf = dir.join(format!("out-{}", agent.name));
            let guest_arg = format!("guest:{}", guest.display());
            copy_in[i].push(timed_cp(client, agent, src.to_str().unwrap(), &guest_arg));
            assert_eq!(std::fs::metadata(&guest).unwrap().len(), SIZE as u64);
            let _ = std::fs::remove_file(&back);
            copy_out[i].push(timed_cp(client, agent, &guest_arg, back.to_str().unwrap()));
            assert!(
                std::fs::read(&back).unwrap() == data,
                "{} copied out other bytes",
                agent.name
            );
        }
    }
    for (metric, samples) in [
        ("qga-client cp in (64 MiB)", &mut copy_in),
        ("qga-client cp out (64 MiB)", &mut copy_out),
    ] {
        let [qga, qemu_ga] = samples;
        rows.push(Row {
            metric: metric.into(),
            qga: mb_per_s(SIZE, percentile(qga, 0.5)),
            qemu_ga: mb_per_s(SIZE, percentile(qemu_ga, 0.5)),
            unit: "MB/s",
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
}
