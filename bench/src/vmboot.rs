//! Cold start in a guest: one image (tests/vm/qgavm.py) holding both
//! agents, booted under QEMU TCG with one vCPU and each agent on
//! virtio-serial in turn; the time from starting QEMU to the agent's first
//! `guest-sync-delimited` reply on the host side of the port (medians of
//! interleaved boots). Also the agent's CPU ticks over ~5 s with no host
//! connected, from the guest's own accounting (`qgavm.cpuwatch`): the idle
//! budget the VM test no longer asserts.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Agent, Row, percentile};

/// Where the image puts qemu-ga (as on Debian) and qga.
const GUEST_QEMU_GA: &str = "/usr/sbin/qemu-ga";
const GUEST_QGA: &str = "/usr/bin/qga";
const VIRTIO_ARGS: &str = "-m virtio-serial -p /dev/virtio-ports/org.qemu.guest_agent.0";

/// One boot under `qgavm.py run` (in its own process group).
struct Boot {
    runner: Child,
    run_dir: PathBuf,
}

impl Boot {
    fn start(vm_dir: &Path, image: &Path, run_dir: PathBuf, agent: &str) -> Boot {
        let _ = std::fs::remove_dir_all(&run_dir);
        std::fs::create_dir_all(&run_dir).unwrap();
        let runner = Command::new("python3")
            .arg(vm_dir.join("qgavm.py"))
            .arg("run")
            .arg(image)
            .arg("--run-dir")
            .arg(&run_dir)
            .args(["--timeout", "300", "--fresh-disk", "--smp", "1"])
            .args(["--append", "qgavm.cpuwatch=1"])
            .args(["--agent", agent, "--agent-args", VIRTIO_ARGS])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start qgavm.py run");
        Boot { runner, run_dir }
    }

    /// Connect to the agent's port and resync until it answers; the
    /// connected stream.
    fn first_reply(&self, started: Instant) -> UnixStream {
        let socket = self.run_dir.join("qga.sock");
        let deadline = started + Duration::from_secs(240);
        let mut stream = loop {
            if let Ok(s) = UnixStream::connect(&socket) {
                break s;
            }
            assert!(Instant::now() < deadline, "no {}", socket.display());
            std::thread::sleep(Duration::from_millis(10));
        };
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut seen = Vec::new();
        for id in 1u64.. {
            assert!(Instant::now() < deadline, "no reply from the agent in the guest");
            let mut request = vec![0xff];
            request.extend(format!("{{\"execute\":\"guest-sync-delimited\",\"arguments\":{{\"id\":{id}}}}}\n").bytes());
            stream.write_all(&request).unwrap();
            let until = Instant::now() + Duration::from_millis(500);
            let mut buf = [0u8; 4096];
            while Instant::now() < until {
                match stream.read(&mut buf) {
                    Ok(0) => panic!("the port closed"),
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                    Err(_) => continue,
                }
                if String::from_utf8_lossy(&seen).contains("{\"return\": ") {
                    return stream;
                }
            }
        }
        unreachable!()
    }

    fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.run_dir.join("console.log")).unwrap_or_default()).into_owned()
    }

    /// The agent's CPU ticks (user + system) at its last `QGA-VM-CPU`
    /// sample, with the sample's guest uptime.
    fn agent_ticks(&self, comm: &str) -> Option<(f64, u64)> {
        self.console().lines().rev().find_map(|l| {
            let f: Vec<&str> = l.split("QGA-VM-CPU ").nth(1)?.split_whitespace().collect();
            (f.len() == 5 && f[2] == comm).then(|| {
                Some((
                    f[0].parse().ok()?,
                    f[3].parse::<u64>().ok()? + f[4].parse::<u64>().ok()?,
                ))
            })?
        })
    }
}

impl Drop for Boot {
    fn drop(&mut self) {
        // qgavm.py runs QEMU under timeout(1), which makes its own process
        // group: stop QEMU through its pid file first, then the runner's group.
        if let Ok(pid) = std::fs::read_to_string(self.run_dir.join("qemu.pid")) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.runner.id())])
            .status();
        let _ = self.runner.wait();
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// Build the image with both agents (`agents[0]` is qga's binary).
fn build_image(vm_dir: &Path, dir: &Path, agents: &[Agent; 2]) {
    let _ = std::fs::remove_dir_all(dir);
    let out = Command::new("python3")
        .arg(vm_dir.join("qgavm.py"))
        .arg("build")
        .args(["--agent-path", GUEST_QGA])
        .arg(dir)
        .arg(&agents[0].binary)
        .arg(&agents[1].binary)
        .output()
        .expect("run qgavm.py build");
    assert!(
        out.status.success(),
        "building the VM image failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn vm_boot(agents: &[Agent; 2], vm_dir: &Path, rounds: usize, rows: &mut Vec<Row>) {
    let work = std::env::temp_dir().join(format!("qga-bench-vm-{}", std::process::id()));
    let image = work.join("image");
    build_image(vm_dir, &image, agents);
    let guests = [(GUEST_QGA, "qga"), (GUEST_QEMU_GA, "qemu-ga")];
    let mut first: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut idle_ticks = [0f64; 2];
    for round in 0..rounds.clamp(1, 5) {
        for (i, (agent, comm)) in guests.iter().enumerate() {
            let started = Instant::now();
            let boot = Boot::start(vm_dir, &image, work.join(format!("run-{i}")), agent);
            let stream = boot.first_reply(started);
            first[i].push(started.elapsed());
            if round == 0 {
                // The host goes away: ~5 s of guest time with no host.
                drop(stream);
                let t0 = wait_for_sample(&boot, comm, 0.0);
                let t1 = wait_for_sample(&boot, comm, t0.0 + 5.0);
                idle_ticks[i] = (t1.1 - t0.1) as f64 / (t1.0 - t0.0) * 5.0;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    let secs = |d: Duration| d.as_secs_f64();
    rows.push(Row {
        metric: "VM 1 vCPU boot to reply p50".into(),
        qga: secs(percentile(&mut first[0], 0.5)),
        qemu_ga: secs(percentile(&mut first[1], 0.5)),
        unit: "s",
    });
    rows.push(Row {
        metric: "VM idle, no host, ticks/5 s".into(),
        qga: idle_ticks[0],
        qemu_ga: idle_ticks[1],
        unit: "",
    });
}

/// The first `QGA-VM-CPU` sample of `comm` at guest uptime ≥ `after`.
fn wait_for_sample(boot: &Boot, comm: &str, after: f64) -> (f64, u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(sample) = boot.agent_ticks(comm)
            && sample.0 >= after
        {
            return sample;
        }
        assert!(
            Instant::now() < deadline,
            "no CPU samples for {comm}:\n{}",
            boot.console()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
