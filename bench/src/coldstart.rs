//! Cold start, as at boot: each start on an empty state directory.
//! Spawn → first ping and spawn → first guest-get-osinfo (medians of
//! interleaved starts), CPU used in the first 5 s with no requests, RSS
//! idle after those 5 s, and RSS after one call to each handler family.

use std::time::Duration;

use super::{Agent, Row, micros, percentile};

/// One harmless call per handler family (a family loads on its first
/// call). Power and time get a wrongly typed argument: refused by both
/// agents before anything runs, but qga has loaded the family by then.
const ONE_CALL_PER_FAMILY: &[&str] = &[
    r#"{"execute": "guest-get-osinfo"}"#,
    r#"{"execute": "guest-get-fsinfo"}"#,
    r#"{"execute": "guest-file-open", "arguments": {"path": "/etc/hostname"}}"#,
    r#"{"execute": "guest-exec-status", "arguments": {"pid": 1}}"#,
    r#"{"execute": "guest-network-get-interfaces"}"#,
    r#"{"execute": "guest-get-vcpus"}"#,
    r#"{"execute": "guest-shutdown", "arguments": {"mode": 5}}"#,
    r#"{"execute": "guest-set-time", "arguments": {"time": "now"}}"#,
    r#"{"execute": "guest-ssh-get-authorized-keys", "arguments": {"username": "qga-bench-no-such-user"}}"#,
];

/// CPU time (user + system) the running agent has used, in seconds.
fn cpu_seconds(agent: &Agent) -> f64 {
    let pid = agent.child.as_ref().unwrap().id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SC_CLK_TCK is 100 on Linux.
    ticks as f64 / 100.0
}

pub fn coldstart(agents: &mut [Agent; 2], rounds: usize, rows: &mut Vec<Row>) {
    let starts = rounds.clamp(3, 10);
    let mut ping: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut osinfo: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..starts {
        for (i, agent) in agents.iter_mut().enumerate() {
            agent.empty_state();
            ping[i].push(agent.start());
            agent.stop();
            agent.empty_state();
            osinfo[i].push(agent.start_to_first_osinfo());
            agent.stop();
        }
    }
    let ms = |d: Duration| micros(d) / 1000.0;
    rows.push(Row {
        metric: "cold spawn to ping p50".into(),
        qga: ms(percentile(&mut ping[0], 0.5)),
        qemu_ga: ms(percentile(&mut ping[1], 0.5)),
        unit: "ms",
    });
    rows.push(Row {
        metric: "cold spawn to osinfo p50".into(),
        qga: ms(percentile(&mut osinfo[0], 0.5)),
        qemu_ga: ms(percentile(&mut osinfo[1], 0.5)),
        unit: "ms",
    });
    // Both start at once, then 5 s with no requests.
    for agent in agents.iter_mut() {
        agent.empty_state();
        agent.start();
    }
    std::thread::sleep(Duration::from_secs(5));
    rows.push(Row {
        metric: "cold CPU in first 5 s idle".into(),
        qga: cpu_seconds(&agents[0]),
        qemu_ga: cpu_seconds(&agents[1]),
        unit: "s",
    });
    rows.push(super::rss_row("cold RSS idle (5 s)", "VmRSS:", agents));
    for agent in agents.iter() {
        let mut conn = agent.connect();
        for call in ONE_CALL_PER_FAMILY {
            conn.call(format!("{call}\n").as_bytes());
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    rows.push(super::rss_row("cold RSS after each family", "VmRSS:", agents));
}
