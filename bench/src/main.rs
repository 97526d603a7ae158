//! qga-bench: starts qga and the real qemu-ga 7.2 on unix sockets and
//! measures both in one run, interleaved so that machine noise falls on
//! both alike. Prints each metric for both agents and the ratio qga/qemu-ga.
//!
//! Usage: qga-bench [--qga PATH] [--qemu-ga PATH] [--rounds N] [--client PATH] [--vm-dir DIR] [--only coldstart|startup|latency|transfers|client-cp|shapes|vm-boot]...
//!
//! `vm-boot` (TCG guests, about a minute) runs only when asked for with
//! `--only vm-boot`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod client_cp;
mod coldstart;
mod shapes;
mod vmboot;

struct Agent {
    name: &'static str,
    binary: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

impl Agent {
    fn new(name: &'static str, binary: PathBuf) -> Agent {
        let dir = std::env::temp_dir().join(format!("qga-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("state")).unwrap();
        Agent {
            name,
            binary,
            dir,
            child: None,
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("agent.sock")
    }

    /// Start the agent; returns the time until its first ping reply.
    fn start(&mut self) -> Duration {
        self.stop();
        let _ = std::fs::remove_file(self.socket());
        let started = Instant::now();
        let child = Command::new(&self.binary)
            .args(["-m", "unix-listen", "-p"])
            .arg(self.socket())
            .arg("-t")
            .arg(self.dir.join("state"))
            .env("QGA_CONF", self.dir.join("none.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        self.child = Some(child);
        loop {
            if let Ok(stream) = UnixStream::connect(self.socket()) {
                let mut conn = Conn::new(stream);
                conn.call(b"{\"execute\": \"guest-ping\"}\n");
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{} did not start",
                self.name
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// (Re)start the agent; returns the time until its first
    /// guest-get-osinfo reply (a component call, where qga loads a family).
    fn start_to_first_osinfo(&mut self) -> Duration {
        let t = Instant::now();
        self.start();
        self.connect().call(b"{\"execute\": \"guest-get-osinfo\"}\n");
        t.elapsed()
    }

    /// Empty the agent's state directory (as `/run/qga` is at boot).
    fn empty_state(&self) {
        let state = self.dir.join("state");
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&state).unwrap();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn connect(&self) -> Conn {
        Conn::new(UnixStream::connect(self.socket()).unwrap())
    }

    /// A `/proc/PID/status` memory figure (`VmRSS:`, `VmHWM:`), KiB.
    fn status_kib(&self, field: &str) -> u64 {
        let pid = self.child.as_ref().unwrap().id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct Conn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    line: Vec<u8>,
}

impl Conn {
    fn new(stream: UnixStream) -> Conn {
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Conn {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
            line: Vec::new(),
        }
    }

    fn call(&mut self, request: &[u8]) -> &[u8] {
        self.writer.write_all(request).unwrap();
        self.line.clear();
        self.reader.read_until(b'\n', &mut self.line).unwrap();
        assert!(
            self.line.ends_with(b"\n"),
            "no reply to {}",
            String::from_utf8_lossy(request)
        );
        &self.line
    }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

struct Row {
    metric: String,
    qga: f64,
    qemu_ga: f64,
    unit: &'static str,
}

/// Both agents' resident memory now (`VmRSS:`) or at its peak
/// (`VmHWM:`), in MiB.
fn rss_row(metric: &str, field: &str, agents: &[Agent]) -> Row {
    Row {
        metric: metric.into(),
        qga: agents[0].status_kib(field) as f64 / 1024.0,
        qemu_ga: agents[1].status_kib(field) as f64 / 1024.0,
        unit: "MiB",
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The `"return"` member's integer in a reply such as `{"return": 1000}`.
fn return_int(reply: &[u8]) -> i64 {
    let text = String::from_utf8_lossy(reply);
    let start = text.find("\"return\": ").expect("a return value") + 10;
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().unwrap_or_else(|_| panic!("no integer in {text}"))
}

/// A reply's integer member `"name": N`.
fn member_int(reply: &[u8], name: &str) -> i64 {
    let text = String::from_utf8_lossy(reply);
    let key = format!("\"{name}\": ");
    let start = text
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {}", &text[..text.len().min(200)]))
        + key.len();
    let digits: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().unwrap()
}

/// `len` bytes of deterministic noise (xorshift from `seed`), so that
/// base64 and checksums see no trivial repetition.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// guest-file-read/-write throughput, RSS after the transfers, and the
/// guest-exec /bin/true round trip, interleaved between the agents.
fn file_and_exec(agents: &[Agent; 2], rounds: usize, rows: &mut Vec<Row>) {
    use base64::Engine as _;
    const CHUNK: usize = 4 << 20;
    const WRITE_TOTAL: usize = 64 << 20;
    const READ_TOTAL: usize = 48 << 20;
    let chunk = noise(CHUNK, 0x9e37_79b9_7f4a_7c15);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&chunk);
    let mut conns: Vec<Conn> = agents.iter().map(Agent::connect).collect();
    let mut write = [Duration::ZERO; 2];
    let mut read_one = [Duration::ZERO; 2];
    let mut read_chunks = [Duration::ZERO; 2];
    let transfers = rounds.clamp(1, 3);
    for _ in 0..transfers {
        for (i, conn) in conns.iter_mut().enumerate() {
            let path = agents[i].dir.join("bench.bin");
            let open = format!(
                "{{\"execute\": \"guest-file-open\", \"arguments\": {{\"path\": \"{}\", \"mode\": \"w+\"}}}}\n",
                path.display()
            );
            let h = return_int(conn.call(open.as_bytes()));
            let write_req = format!(
                "{{\"execute\": \"guest-file-write\", \"arguments\": {{\"handle\": {h}, \"buf-b64\": \"{b64}\"}}}}\n"
            );
            let t = Instant::now();
            for _ in 0..WRITE_TOTAL / CHUNK {
                assert_eq!(member_int(conn.call(write_req.as_bytes()), "count"), CHUNK as i64);
            }
            write[i] += t.elapsed();
            let seek = format!(
                "{{\"execute\": \"guest-file-seek\", \"arguments\": {{\"handle\": {h}, \"offset\": 0, \"whence\": \"set\"}}}}\n"
            );
            conn.call(seek.as_bytes());
            let read = |count: usize| {
                format!(
                    "{{\"execute\": \"guest-file-read\", \"arguments\": {{\"handle\": {h}, \"count\": {count}}}}}\n"
                )
            };
            let t = Instant::now();
            assert_eq!(
                member_int(conn.call(read(READ_TOTAL).as_bytes()), "count"),
                READ_TOTAL as i64
            );
            read_one[i] += t.elapsed();
            conn.call(seek.as_bytes());
            let t = Instant::now();
            for _ in 0..READ_TOTAL / CHUNK {
                assert_eq!(member_int(conn.call(read(CHUNK).as_bytes()), "count"), CHUNK as i64);
            }
            read_chunks[i] += t.elapsed();
            let close = format!("{{\"execute\": \"guest-file-close\", \"arguments\": {{\"handle\": {h}}}}}\n");
            conn.call(close.as_bytes());
            let _ = std::fs::remove_file(&path);
        }
    }
    for (metric, bytes, t) in [
        ("file-read 48 MiB, 1 call", READ_TOTAL, read_one),
        ("file-read 48 MiB, 4 MiB calls", READ_TOTAL, read_chunks),
        ("file-write 64 MiB, 4 MiB calls", WRITE_TOTAL, write),
    ] {
        rows.push(Row {
            metric: metric.into(),
            qga: mb_per_s(bytes * transfers, t[0]),
            qemu_ga: mb_per_s(bytes * transfers, t[1]),
            unit: "MB/s",
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    rows.push(rss_row("peak RSS (transfers)", "VmHWM:", agents));
    rows.push(rss_row("RSS after transfers", "VmRSS:", agents));

    // guest-exec /bin/true, then guest-exec-status until exited.
    let mut exec: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, conn) in conns.iter_mut().enumerate() {
            for _ in 0..5 {
                let t = Instant::now();
                let pid = member_int(
                    conn.call(b"{\"execute\": \"guest-exec\", \"arguments\": {\"path\": \"/bin/true\"}}\n"),
                    "pid",
                );
                let status = format!("{{\"execute\": \"guest-exec-status\", \"arguments\": {{\"pid\": {pid}}}}}\n");
                loop {
                    let reply = conn.call(status.as_bytes());
                    if reply.windows(14).any(|w| w == b"\"exited\": true") {
                        break;
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
                exec[i].push(t.elapsed());
            }
        }
    }
    rows.push(Row {
        metric: "exec /bin/true until exited p50".into(),
        qga: micros(percentile(&mut exec[0], 0.5)),
        qemu_ga: micros(percentile(&mut exec[1], 0.5)),
        unit: "us",
    });
}

/// (Re)start each agent and time it to its first guest-get-osinfo reply, ms.
fn restart_to_first_osinfo(agents: &mut [Agent; 2]) -> [f64; 2] {
    let mut ms = [0f64; 2];
    for (i, agent) in agents.iter_mut().enumerate() {
        ms[i] = micros(agent.start_to_first_osinfo()) / 1000.0;
    }
    ms
}

/// Start-up with a cold and a warm compiled-component cache, then idle RSS.
fn startup(agents: &mut [Agent; 2], rounds: usize, rows: &mut Vec<Row>) {
    // Cold start: an empty state directory (qga compiles every family in
    // the background and caches it); time to the first component reply.
    for agent in agents.iter() {
        agent.empty_state();
    }
    let [qga, qemu_ga] = restart_to_first_osinfo(agents);
    rows.push(Row {
        metric: "cold start to first osinfo".into(),
        qga,
        qemu_ga,
        unit: "ms",
    });
    // Let the background compile finish and fill the cache.
    std::thread::sleep(Duration::from_secs(5));
    let [qga, qemu_ga] = restart_to_first_osinfo(agents);
    rows.push(Row {
        metric: "warm start to first osinfo".into(),
        qga,
        qemu_ga,
        unit: "ms",
    });

    // Start-up to first ping (warm cache), interleaved, median of starts.
    let mut startup: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds.min(10) {
        for (i, agent) in agents.iter_mut().enumerate() {
            startup[i].push(agent.start());
        }
    }
    rows.push(Row {
        metric: "start-up to first ping p50".into(),
        qga: micros(percentile(&mut startup[0], 0.5)) / 1000.0,
        qemu_ga: micros(percentile(&mut startup[1], 0.5)) / 1000.0,
        unit: "ms",
    });
    std::thread::sleep(Duration::from_millis(200));
    rows.push(rss_row("idle RSS", "VmRSS:", agents));
}

/// Round trips on one connection: ping, component-dispatched commands,
/// and connect+ping+close.
fn latency(agents: &[Agent; 2], rounds: usize, rows: &mut Vec<Row>) {
    // Ping round trip on one connection, blocks of 200 alternating.
    let mut conns: Vec<Conn> = agents.iter().map(Agent::connect).collect();
    let mut pings: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, conn) in conns.iter_mut().enumerate() {
            for _ in 0..200 {
                let t = Instant::now();
                conn.call(b"{\"execute\": \"guest-ping\"}\n");
                pings[i].push(t.elapsed());
            }
        }
    }
    for (label, p) in [("p50", 0.5), ("p99", 0.99)] {
        rows.push(Row {
            metric: format!("ping round trip {label}"),
            qga: micros(percentile(&mut pings[0], p)),
            qemu_ga: micros(percentile(&mut pings[1], p)),
            unit: "us",
        });
    }
    // Component-dispatched commands (qga: a fresh sandbox instance per call).
    // osinfo and time run on the event loop; fsfreeze-status and fsinfo on a
    // handler thread (fsinfo walks sysfs through WASI files).
    for command in [
        "guest-get-osinfo",
        "guest-get-time",
        "guest-fsfreeze-status",
        "guest-get-fsinfo",
    ] {
        let request = format!("{{\"execute\": \"{command}\"}}\n");
        let mut samples: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..rounds {
            for (i, conn) in conns.iter_mut().enumerate() {
                for _ in 0..50 {
                    let t = Instant::now();
                    conn.call(request.as_bytes());
                    samples[i].push(t.elapsed());
                }
            }
        }
        rows.push(Row {
            metric: format!("{command} p50"),
            qga: micros(percentile(&mut samples[0], 0.5)),
            qemu_ga: micros(percentile(&mut samples[1], 0.5)),
            unit: "us",
        });
    }
    drop(conns);

    // connect + ping + close, per second (qemu-ga serves one client at a time).
    let mut rate = [0f64; 2];
    for _ in 0..rounds.min(10) {
        for (i, agent) in agents.iter().enumerate() {
            let t = Instant::now();
            for _ in 0..100 {
                let mut conn = agent.connect();
                conn.call(b"{\"execute\": \"guest-ping\"}\n");
            }
            rate[i] += t.elapsed().as_secs_f64();
        }
    }
    let runs = (rounds.min(10) * 100) as f64;
    rows.push(Row {
        metric: "connect+ping+close".into(),
        qga: runs / rate[0],
        qemu_ga: runs / rate[1],
        unit: "/s",
    });
}

const USAGE: &str = "usage: qga-bench [--qga PATH] [--qemu-ga PATH] [--rounds N] [--client PATH] [--vm-dir DIR] [--only coldstart|startup|latency|transfers|client-cp|shapes|vm-boot]...";

fn main() {
    let mut args = std::env::args().skip(1);
    let mut qga = PathBuf::from("target/release/qga");
    let mut qemu_ga = PathBuf::from("/usr/sbin/qemu-ga");
    let mut rounds = 20usize;
    let mut client = PathBuf::from("target/release/qga-client");
    let mut only: Vec<String> = Vec::new();
    let mut vm_dir = PathBuf::from("tests/vm");
    while let Some(arg) = args.next() {
        let mut value = |what: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("{arg} needs {what}\n{USAGE}");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--qga" => qga = value("PATH").into(),
            "--qemu-ga" => qemu_ga = value("PATH").into(),
            "--client" => client = value("PATH").into(),
            "--vm-dir" => vm_dir = value("DIR").into(),
            "--rounds" => {
                rounds = value("N").parse().unwrap_or_else(|_| {
                    eprintln!("--rounds needs a number\n{USAGE}");
                    std::process::exit(2)
                })
            }
            "--only" => only.push(value("a section")),
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => {
                eprintln!("unknown argument {other}\n{USAGE}");
                std::process::exit(2)
            }
        }
    }
    // vm-boot only when named; the others also when nothing is named.
    let vm_boot = only.iter().any(|o| o == "vm-boot");
    only.retain(|o| o != "vm-boot");
    let wanted = |section: &str| (only.is_empty() && !vm_boot) || only.iter().any(|o| o == section);
    let mut agents = [Agent::new("qga", qga), Agent::new("qemu-ga", qemu_ga)];
    let mut rows = Vec::new();
    if vm_boot {
        vmboot::vm_boot(&agents, &vm_dir, rounds, &mut rows);
    }
    if wanted("coldstart") {
        coldstart::coldstart(&mut agents, rounds, &mut rows);
    }
    if wanted("startup") {
        startup(&mut agents, rounds, &mut rows);
    } else if ["latency", "transfers", "client-cp", "shapes"]
        .iter()
        .any(|s| wanted(s))
    {
        // As after the start-up section: a warm compiled-component cache,
        // and no background compile competing with the measurements.
        restart_to_first_osinfo(&mut agents);
        std::thread::sleep(Duration::from_secs(5));
        restart_to_first_osinfo(&mut agents);
    }
    if wanted("latency") {
        latency(&agents, rounds, &mut rows);
    }
    if wanted("transfers") {
        file_and_exec(&agents, rounds, &mut rows);
    }
    if wanted("client-cp") {
        client_cp::client_cp(&agents, &client, rounds, &mut rows);
    }
    if wanted("shapes") {
        shapes::shapes_section(&agents, rounds, &mut rows);
    }
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len() as f64 / (1024.0 * 1024.0))
            .unwrap_or(f64::NAN)
    };
    rows.push(Row {
        metric: "binary size".into(),
        qga: size(&agents[0].binary),
        qemu_ga: size(&agents[1].binary),
        unit: "MiB",
    });

    println!("{:<30} {:>12} {:>12} {:>8}", "metric", "qga", "qemu-ga", "ratio");
    let mut summary = Vec::new();
    for row in &rows {
        let ratio = row.qga / row.qemu_ga;
        println!(
            "{:<30} {:>9.2} {:<3}{:>9.2} {:<3}{:>7.2}",
            row.metric, row.qga, row.unit, row.qemu_ga, row.unit, ratio
        );
        summary.push(format!("{}={ratio:.2}", row.metric.replace(' ', "_")));
    }
    println!("qga-bench summary (qga/qemu-ga): {}", summary.join(" "));
}
