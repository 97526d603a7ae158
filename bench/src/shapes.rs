//! The worst shapes of request for a JSON parser, sent to both agents:
//! milliseconds per MB of request, from the first byte sent to the reply of
//! a `guest-sync` sent right behind it (so floods of error replies, where an
//! agent sends them, count too).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::{Agent, Row};

/// How long one shape may take before the agent counts as hung.
const HANG: Duration = Duration::from_secs(600);

/// `n` members `"k<i>": 0`, comma-separated.
fn members(n: usize) -> String {
    let mut out = String::with_capacity(n * 12);
    for i in 0..n {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!("\"k{i}\": 0"));
    }
    out
}

/// Each shape: its name and the bytes of its request(s).
fn shapes() -> Vec<(&'static str, Vec<u8>)> {
    let m100k = members(100_000);
    let mut nested = Vec::new();
    for _ in 0..1000 {
        nested.extend_from_slice(br#"{"execute": "guest-ping", "arguments": {"a": "#);
        nested.extend(std::iter::repeat_n(b'[', 1022));
        nested.extend(std::iter::repeat_n(b']', 1022));
        nested.extend_from_slice(b"}}\n");
    }
    let string_of = |escape: &str, total: usize| {
        let head = r#"{"execute": "guest-ping", "arguments": {"x": ""#;
        let count = (total - head.len() - 4) / escape.len();
        format!("{head}{}\"}}}}\n", escape.repeat(count)).into_bytes()
    };
    let array = {
        let mut a = String::from(r#"{"execute": "guest-ping", "arguments": {"a": ["#);
        a.push_str(&vec!["0"; 1_000_000].join(","));
        a.push_str("]}}\n");
        a.into_bytes()
    };
    let duplicates = {
        let mut d = String::from(r#"{"execute": "guest-ping", "arguments": {"#);
        d.push_str(&vec![r#""a": 0"#; 500_000].join(", "));
        d.push_str("}}\n");
        d.into_bytes()
    };
    vec![
        (
            "1M members (over token limit)",
            format!(
                "{{\"execute\": \"guest-ping\", \"arguments\": {{{}}}}}\n",
                members(1_000_000)
            )
            .into_bytes(),
        ),
        (
            "500K members in arguments",
            format!(
                "{{\"execute\": \"guest-ping\", \"arguments\": {{{}}}}}\n",
                members(500_000)
            )
            .into_bytes(),
        ),
        ("1M-element array", array),
        ("1000 x nesting at limit", nested),
        ("64 MiB of \\n escapes", string_of("\\n", (64 << 20) - 64)),
        ("64 MiB of \\u0041 escapes", string_of("\\u0041", (64 << 20) - 64)),
        ("500K duplicate keys", duplicates),
        (
            "100K members as execute",
            format!("{{\"execute\": {{{m100k}}}}}\n").into_bytes(),
        ),
        (
            "100K members as arguments.path",
            format!("{{\"execute\": \"guest-file-open\", \"arguments\": {{\"path\": {{{m100k}}}}}}}\n").into_bytes(),
        ),
        (
            "100K members as unknown member",
            format!("{{\"execute\": \"guest-ping\", \"bogus\": {{{m100k}}}}}\n").into_bytes(),
        ),
    ]
}

/// Send `request` then a guest-sync, read replies up to the sync's; the
/// time taken and how many replies came before the sync's.
fn run(agent: &Agent, request: &[u8], sync_id: u64) -> (Duration, usize) {
    let stream = UnixStream::connect(agent.socket()).unwrap();
    stream.set_read_timeout(Some(HANG)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sync = format!("{{\"execute\": \"guest-sync\", \"arguments\": {{\"id\": {sync_id}}}}}\n");
    let want = format!("{{\"return\": {sync_id}}}\n");
    let start = Instant::now();
    let request = request.to_vec();
    // The writer runs beside the reader: an agent that answers while the
    // request is still arriving (errors per token) must not block on us.
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
        let _ = writer.write_all(sync.as_bytes());
    });
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let mut line = Vec::new();
    let mut replies = 0;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .unwrap_or_else(|e| panic!("{}: {e}", agent.name));
        assert!(n > 0, "{} closed the connection", agent.name);
        if line == want.as_bytes() {
            break;
        }
        replies += 1;
    }
    let took = start.elapsed();
    sender.join().unwrap();
    (took, replies)
}

/// Milliseconds per MB of request for each shape, both agents, best of
/// `rounds` (at most 3) runs.
pub fn shapes_section(agents: &[Agent; 2], rounds: usize, rows: &mut Vec<Row>) {
    let mut sync_id = 1;
    for (name, request) in shapes() {
        let mb = request.len() as f64 / 1e6;
        let mut best = [f64::INFINITY; 2];
        let mut replies = [0usize; 2];
        for _ in 0..rounds.clamp(1, 3) {
            for (i, agent) in agents.iter().enumerate() {
                sync_id += 1;
                let (took, n) = run(agent, &request, sync_id);
                best[i] = best[i].min(took.as_secs_f64() * 1e3 / mb);
                replies[i] = n;
            }
        }
        eprintln!(
            "shape {name}: {mb:.1} MB, replies before the sync: qga {}, qemu-ga {}",
            replies[0], replies[1]
        );
        rows.push(Row {
            metric: format!("{name} ({mb:.0} MB)"),
            qga: best[0],
            qemu_ga: best[1],
            unit: "ms/MB",
        });
    }
}
