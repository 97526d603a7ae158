//! Real-VM support: build the tests/vm image once (qga and /usr/sbin/qemu-ga
//! in it), boot it under qemu TCG with a chosen agent, and talk to the agent
//! over the host end of its virtio-serial (or isa-serial) chardev the way
//! libvirt does: no connection boundaries, so every session starts with a
//! `guest-sync-delimited` resync (skip to 0xFF, match the id).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use qga::protocol::StreamParser;
use qga::qobject::Value;

use super::{QEMU_GA, Scratch, qga_binary};

/// Guest path of qga in the image (qgavm.py puts agents outside /usr at /usr/bin/BASENAME).
pub const GUEST_QGA: &str = "/usr/bin/qga";
/// qemu-ga keeps its own path in the image.
pub const GUEST_QEMU_GA: &str = QEMU_GA;
pub const VIRTIO_ARGS: &str = "-m virtio-serial -p /dev/virtio-ports/org.qemu.guest_agent.0";
/// Boot deadline (first sync reply) on a slow 2-core TCG machine.
pub const BOOT_DEADLINE: Duration = Duration::from_secs(120);
/// Per-reply deadline once the agent answers (first calls of a family compile
/// its component inside the TCG guest).
pub const REPLY_DEADLINE: Duration = Duration::from_secs(60);

pub fn vm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vm")
}

/// Only one VM at a time: they share two cores and the timings are reported.
pub fn vm_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn require(what: &str, ok: bool, package: &str) {
    assert!(
        ok,
        "{what} is missing: install {package} (bash tests/run-all.sh installs it)"
    );
}

fn on_path(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// The image, built once per test binary with qga as default agent and
/// qemu-ga next to it.
pub struct Image {
    pub dir: PathBuf,
}

pub fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        require("qemu-system-x86_64", on_path("qemu-system-x86_64"), "qemu-system-x86");
        require(
            "busybox (static)",
            Path::new("/bin/busybox").exists() || Path::new("/usr/bin/busybox").exists(),
            "busybox-static",
        );
        require("mkfs.ext4", on_path("mkfs.ext4"), "e2fsprogs");
        require(QEMU_GA, Path::new(QEMU_GA).exists(), "qemu-guest-agent");
        require("python3", on_path("python3"), "python3");
        // Under target/tmp (a static is never dropped, so no scratch dir):
        // one per test binary, rebuilt on every run.
        let exe = std::env::current_exe().unwrap();
        let stem = exe.file_stem().unwrap().to_string_lossy().into_owned();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("qgavm-{stem}"));
        let _ = std::fs::remove_dir_all(&dir);
        let t = Instant::now();
        let out = Command::new("python3")
            .arg(vm_dir().join("qgavm.py"))
            .arg("build")
            .arg(&dir)
            .arg(qga_binary())
            .arg(QEMU_GA)
            .output()
            .expect("run qgavm.py build");
        assert!(
            out.status.success(),
            "building the VM image failed (needs apt lists for `apt-get download` of the \
             kernel: tests/run-all.sh runs apt-get update):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("vm: image built in {:.1} s", t.elapsed().as_secs_f64());
        Image { dir }
    })
}

/// What to boot.
pub struct Boot<'a> {
    pub agent: &'a str,
    pub agent_args: &'a str,
    pub isa_serial: bool,
    /// QEMU's `-cpu` model; None is QEMU's default.
    pub cpu: Option<&'a str>,
}

impl<'a> Boot<'a> {
    pub fn virtio(agent: &'a str) -> Boot<'a> {
        Boot {
            agent,
            agent_args: VIRTIO_ARGS,
            isa_serial: false,
            cpu: None,
        }
    }
}

/// A running VM (qemu under timeout(1) in its own process group).
pub struct Vm {
    runner: Child,
    pub run_dir: PathBuf,
    pub started: Instant,
    _scratch: Scratch,
}

impl Vm {
    pub fn boot(image: &Image, boot: &Boot) -> Vm {
        let scratch = Scratch::new("vm-run");
        let run_dir = scratch.path("run");
        std::fs::create_dir_all(&run_dir).unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(vm_dir().join("qgavm.py"))
            .arg("run")
            .arg(&image.dir)
            .arg("--run-dir")
            .arg(&run_dir)
            .args([
                "--timeout",
                "600",
                "--fresh-disk",
                "--mount",
                "--append",
                "qgavm.cpuwatch=1",
            ])
            .args(["--agent", boot.agent, "--agent-args", boot.agent_args]);
        if boot.isa_serial {
            cmd.arg("--isa-serial");
        }
        if let Some(cpu) = boot.cpu {
            cmd.arg("--qemu-arg=-cpu").arg(format!("--qemu-arg={cpu}"));
        }
        let stderr = std::fs::File::create(scratch.path("runner.stderr")).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0);
        let started = Instant::now();
        let runner = cmd.spawn().expect("start qgavm.py run");
        Vm {
            runner,
            run_dir,
            started,
            _scratch: scratch,
        }
    }

    pub fn socket(&self, name: &str) -> PathBuf {
        self.run_dir.join(name)
    }

    pub fn console(&self) -> String {
        let text = std::fs::read(self.run_dir.join("console.log")).unwrap_or_default();
        String::from_utf8_lossy(&text).replace('\r', "")
    }

    /// The console's last lines, for failure messages.
    pub fn console_tail(&self) -> String {
        let c = self.console();
        let lines: Vec<&str> = c.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Connect to a chardev socket and resync; returns the channel and the
    /// time from qemu's start to the first sync reply.
    pub fn connect(&self, name: &str, deadline: Duration) -> Chan {
        let path = self.socket(name);
        let until = Instant::now() + deadline;
        let stream = loop {
            match UnixStream::connect(&path) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(
                        Instant::now() < until,
                        "cannot connect to {}: {e}\n{}",
                        path.display(),
                        self.console_tail()
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        };
        let mut chan = Chan::from_stream(stream);
        if let Err(e) = chan.sync(until, false) {
            panic!("no sync reply on {name}: {e}\nconsole:\n{}", self.console_tail());
        }
        chan
    }

    /// `QGA-VM-CPU` samples for the process named `comm`: (guest uptime s, pid, ticks).
    pub fn cpu_samples(&self, comm: &str) -> Vec<(f64, u32, u64)> {
        self.console()
            .lines()
            .filter_map(|l| {
                let rest = l.split("QGA-VM-CPU ").nth(1)?;
                let f: Vec<&str> = rest.split_whitespace().collect();
                if f.len() != 5 || f[2] != comm {
                    return None;
                }
                Some((
                    f[0].parse().ok()?,
                    f[1].parse().ok()?,
                    f[3].parse::<u64>().ok()? + f[4].parse::<u64>().ok()?,
                ))
            })
            .collect()
    }

    /// `QGA-VM-TASK` samples for the process named `comm`, one per thread
    /// and sample: (guest uptime s, pid, tid, state letter, the system call
    /// it is blocked in: a number, or "running").
    pub fn task_samples(&self, comm: &str) -> Vec<TaskSample> {
        self.console()
            .lines()
            .filter_map(|l| {
                let rest = l.split("QGA-VM-TASK ").nth(1)?;
                let f: Vec<&str> = rest.split_whitespace().collect();
                if f.len() != 6 || f[2] != comm {
                    return None;
                }
                Some(TaskSample {
                    uptime: f[0].parse().ok()?,
                    pid: f[1].parse().ok()?,
                    tid: f[3].parse().ok()?,
                    state: f[4].chars().next()?,
                    syscall: f[5].to_owned(),
                })
            })
            .collect()
    }

    /// Wait until qemu exits (e.g. after guest-shutdown); true if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if self.runner.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let pgid = nix::unistd::Pid::from_raw(self.runner.id() as i32);
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = self.runner.wait();
    }
}

#[derive(Debug)]
pub enum ChanError {
    Timeout,
    Closed,
    Io(std::io::Error),
}

impl std::fmt::Display for ChanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChanError::Timeout => write!(f, "timed out"),
            ChanError::Closed => write!(f, "qemu closed the socket"),
            ChanError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// The host end of an agent channel.
pub struct Chan {
    stream: UnixStream,
    buf: Vec<u8>,
}

fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    // Unique per call, different across runs, fits an i64.
    ((seed ^ u64::from(std::process::id()) << 20) & 0x3fff_ffff_ffff_0000)
        + NEXT.fetch_add(1, Ordering::Relaxed) % 0xffff
}

impl Chan {
    pub fn from_stream(stream: UnixStream) -> Chan {
        Chan {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the chardev socket");
    }

    fn fill(&mut self, until: Instant) -> Result<(), ChanError> {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ChanError::Timeout);
        }
        self.stream.set_read_timeout(Some(left)).unwrap();
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(ChanError::Closed),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                Err(ChanError::Timeout)
            }
            Err(e) => Err(ChanError::Io(e)),
        }
    }

    /// One line without its newline.
    pub fn read_line(&mut self, until: Instant) -> Result<Vec<u8>, ChanError> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                return Ok(line);
            }
            self.fill(until)?;
        }
    }

    /// libvirt's resync: send guest-sync-delimited with a fresh id, drop
    /// everything up to the 0xFF sentinel, then read lines until one returns
    /// that id; re-send with a new id every 500 ms until `until` (bytes sent
    /// before the guest opened its end are lost). With `reset`, each attempt
    /// is preceded by a 0xFF byte, which resets the agent's parser (what the
    /// QAPI schema tells clients to do after an interrupted request).
    pub fn sync(&mut self, until: Instant, reset: bool) -> Result<u64, ChanError> {
        loop {
            let id = next_id();
            let mut req = Vec::new();
            if reset {
                req.push(0xff);
            }
            req.extend_from_slice(
                format!("{{\"execute\":\"guest-sync-delimited\",\"arguments\":{{\"id\":{id}}}}}\n").as_bytes(),
            );
            self.send(&req);
            let attempt = until.min(Instant::now() + Duration::from_millis(500));
            match self.await_sync(id, attempt) {
                Ok(()) => return Ok(id),
                Err(ChanError::Timeout) if Instant::now() < until => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn await_sync(&mut self, id: u64, until: Instant) -> Result<(), ChanError> {
        let want = format!("{{\"return\": {id}}}");
        loop {
            // Skip to (and past) the next sentinel.
            loop {
                if let Some(i) = self.buf.iter().position(|&b| b == 0xff) {
                    self.buf.drain(..=i);
                    break;
                }
                self.buf.clear();
                self.fill(until)?;
            }
            // Lines after it: the wanted reply, or stale ones from earlier ids.
            loop {
                if self.buf.iter().position(|&b| b == b'\n').is_none() && self.buf.contains(&0xff) {
                    break; // a later sentinel comes first: start over from it
                }
                let line = self.read_line(until)?;
                if line.contains(&0xff) {
                    let i = line.iter().rposition(|&b| b == 0xff).unwrap();
                    if line[i + 1..] == *want.as_bytes() {
                        return Ok(());
                    }
                    continue;
                }
                if line == want.as_bytes() {
                    return Ok(());
                }
            }
        }
    }

    /// Send one request line, return its reply line (raw bytes as text).
    pub fn call(&mut self, request: &str) -> String {
        self.send(format!("{request}\n").as_bytes());
        let until = Instant::now() + REPLY_DEADLINE;
        match self.read_line(until) {
            Ok(line) => String::from_utf8(line).expect("reply is UTF-8"),
            Err(e) => panic!("no reply to {request}: {e}"),
        }
    }

    /// True if nothing arrives within `wait` (no stray output from the agent).
    pub fn is_quiet(&mut self, wait: Duration) -> bool {
        self.buf.is_empty() && matches!(self.fill(Instant::now() + wait), Err(ChanError::Timeout))
    }
}

/// Parse one reply line with the agent's own JSON parser.
pub fn parse(line: &str) -> Value {
    let mut parser = StreamParser::new();
    let mut out = Vec::new();
    parser.feed(line.as_bytes(), &mut out);
    match out.pop() {
        Some(Ok(v)) if out.is_empty() => v,
        other => panic!("not one JSON value: {line:?}: {other:?}"),
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// One thread of an agent at one `QGA-VM-TASK` sample.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSample {
    pub uptime: f64,
    pub pid: u32,
    pub tid: u32,
    /// `/proc/PID/task/TID/stat`'s state: `S` sleeping, `R` running or
    /// runnable, `D` uninterruptible...
    pub state: char,
    /// `/proc/PID/task/TID/syscall`'s first field: the number of the
    /// system call the thread is blocked in, or `running`.
    pub syscall: String,
}

impl TaskSample {
    /// Asleep in a system call: waiting for something, not computing.
    pub fn is_blocked(&self) -> bool {
        matches!(self.state, 'S' | 'D' | 'I') && self.syscall.parse::<u64>().is_ok()
    }
}
