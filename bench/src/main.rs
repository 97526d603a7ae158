//! qga-bench: starts qga and the real qemu-ga 7.2 on unix sockets and
//! measures both in one run, interleaved so that machine noise falls on
//! both alike. Prints each metric for both agents and the ratio qga/qemu-ga.
//!
//! Usage: qga-bench [--qga PATH] [--qemu-ga PATH] [--rounds N]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn connect(&self) -> Conn {
        Conn::new(UnixStream::connect(self.socket()).unwrap())
    }

    fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().unwrap().id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        };
        field("VmRSS:")
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

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut qga = PathBuf::from("target/release/qga");
    let mut qemu_ga = PathBuf::from("/usr/sbin/qemu-ga");
    let mut rounds = 20usize;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--qga" => qga = args.next().expect("--qga PATH").into(),
            "--qemu-ga" => qemu_ga = args.next().expect("--qemu-ga PATH").into(),
            "--rounds" => rounds = args.next().expect("--rounds N").parse().expect("a number"),
            other => panic!("unknown argument {other}; usage: qga-bench [--qga PATH] [--qemu-ga PATH] [--rounds N]"),
        }
    }
    let mut agents = [Agent::new("qga", qga), Agent::new("qemu-ga", qemu_ga)];
    let mut rows = Vec::new();

    // Start-up to first ping, interleaved, median of `rounds` starts.
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
    rows.push(Row {
        metric: "idle RSS".into(),
        qga: agents[0].rss_kib() as f64 / 1024.0,
        qemu_ga: agents[1].rss_kib() as f64 / 1024.0,
        unit: "MiB",
    });

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
