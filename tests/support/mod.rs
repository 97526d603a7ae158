//! Test support: start an agent (qga or the reference qemu-ga) on a unix
//! socket in a private directory, and talk to it line by line.

#![allow(dead_code)]

pub mod artifacts;
pub mod audit;
pub mod fixture;
pub mod loopfs;
pub mod signing;
pub mod vm;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const QEMU_GA: &str = "/usr/sbin/qemu-ga";
/// How long a client waits for a reply before the test fails: a guard
/// against a hung agent, not a budget, so generous enough for a 48 MiB
/// reply on a loaded 2-core machine.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A path as the `&str` an argument list takes.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Replace the number after each `"KEY": ` with 0 (counters that move
/// between two agents' replies).
pub fn mask(reply: &str, keys: &[&str]) -> String {
    let mut out = reply.to_owned();
    for key in keys {
        let pat = format!("\"{key}\": ");
        let mut result = String::new();
        let mut rest = out.as_str();
        while let Some(at) = rest.find(&pat) {
            let start = at + pat.len();
            result.push_str(&rest[..start]);
            let after = &rest[start..];
            let digits = after.bytes().take_while(|b| b.is_ascii_digit()).count();
            assert!(digits > 0, "no number after {pat} in {reply}");
            result.push('0');
            rest = &after[digits..];
        }
        result.push_str(rest);
        out = result;
    }
    out
}

/// Run `cmd`; its trimmed stdout. Panics when it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub fn qga_binary() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_qga") {
        Some(path) => PathBuf::from(path),
        // The tests of another package (qga-client): the workspace's build
        // of the agent, beside this test's deps/ directory.
        None => {
            let exe = std::env::current_exe().unwrap();
            let path = exe.parent().and_then(Path::parent).unwrap().join("qga");
            assert!(
                path.exists(),
                "{} is missing: cargo build --release -p qga",
                path.display()
            );
            path
        }
    }
}

/// The reference agent; tests that compare with it fail loudly when it is
/// missing (the README's test command installs it).
pub fn qemu_ga_binary() -> PathBuf {
    let path = PathBuf::from(QEMU_GA);
    assert!(
        path.exists(),
        "{QEMU_GA} is missing: install qemu-guest-agent (tests/run-all.sh does)"
    );
    path
}

/// The second reference, qemu-ga 10.0: the wrapper that
/// `../shared/tools/qemu-ga-10.sh` (beside the project, read-only) prints
/// after fetching Debian 13's package into a private directory. The script
/// runs once per test process; a test that needs it fails loudly when it
/// cannot.
pub fn qemu_ga_10_binary() -> PathBuf {
    static WRAPPER: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    WRAPPER
        .get_or_init(|| {
            // ../shared from the project root (one level further up from a
            // worktree under wt/).
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let script = ["../shared/tools/qemu-ga-10.sh", "../../shared/tools/qemu-ga-10.sh"]
                .iter()
                .map(|p| root.join(p))
                .find(|p| p.is_file())
                .expect("../shared/tools/qemu-ga-10.sh beside the project");
            let out = Command::new("bash")
                .arg(&script)
                .stderr(Stdio::inherit())
                .output()
                .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
            assert!(out.status.success(), "{} failed", script.display());
            let text = String::from_utf8(out.stdout).unwrap();
            let wrapper = PathBuf::from(text.lines().last().unwrap_or_default().trim());
            assert!(wrapper.is_file(), "{} printed no wrapper: {text}", script.display());
            wrapper
        })
        .clone()
}

/// A private scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "qga-test-{}-{}-{}",
            tag,
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running agent on a unix socket.
pub struct Agent {
    pub child: Child,
    pub socket: PathBuf,
    pub scratch: Scratch,
}

impl Agent {
    pub fn qga(args: &[&str]) -> Agent {
        Agent::start(&qga_binary(), args)
    }

    pub fn qemu_ga(args: &[&str]) -> Agent {
        Agent::start(&qemu_ga_binary(), args)
    }

    pub fn qemu_ga_10(args: &[&str]) -> Agent {
        Agent::start(&qemu_ga_10_binary(), args)
    }

    pub fn start(binary: &Path, args: &[&str]) -> Agent {
        Agent::start_with(binary, args, None, None)
    }

    /// [`Agent::start`] on `state` (a private one when None, so that a
    /// restart can find the same one when given), through `bash -c 'exec …
    /// <redirects>'` when `redirects` is given, so that the agent inherits
    /// whatever descriptors they open.
    pub fn start_with(binary: &Path, args: &[&str], state: Option<&Path>, redirects: Option<&str>) -> Agent {
        let scratch = Scratch::new("agent");
        let socket = scratch.path("agent.sock");
        let state = state.map_or_else(|| scratch.path("state"), Path::to_path_buf);
        std::fs::create_dir_all(&state).unwrap();
        let log = std::fs::File::create(scratch.path("agent.log")).unwrap();
        let mut command = match redirects {
            Some(redirects) => {
                let mut c = Command::new("bash");
                c.arg("-c").arg(format!(r#"exec "$0" "$@" {redirects}"#)).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .args(["-m", "unix-listen", "-p"])
            .arg(&socket)
            .arg("-t")
            .arg(&state)
            .args(args)
            .env("QGA_CONF", scratch.path("none.conf"))
            // Relative paths in fixtures (guest-file-open) land in the
            // agent's private directory.
            .current_dir(&scratch.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("agent starts");
        let mut agent = Agent { child, socket, scratch };
        agent.wait_ready(binary);
        agent
    }

    fn wait_ready(&mut self, binary: &Path) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(self.socket.exists() && UnixStream::connect(&self.socket).is_ok()) {
            assert!(self.is_running(), "{} exited: {}", binary.display(), self.log());
            assert!(
                Instant::now() < deadline,
                "{} did not listen on {}: {}",
                binary.display(),
                self.socket.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(&self.socket)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.path("agent.log")).unwrap_or_default()
    }

    /// CPU time (user + system) the agent has used so far.
    pub fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 1000 / 100)
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Peak resident memory in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).unwrap().count()
    }

    /// Wait until the agent is quiet: over one whole second none of its
    /// threads ran (not one context switch, voluntary or not, and every
    /// thread asleep at both ends of the window). An event, not a budget:
    /// a spinning thread is always runnable and never gets there, however
    /// loaded the machine; a quiet agent gets there however slowly it ran
    /// before. Panics if it has not happened after 60 s.
    pub fn wait_idle(&self) {
        let mut seen = Vec::new();
        for _ in 0..60 {
            let before = self.thread_activity();
            std::thread::sleep(Duration::from_secs(1));
            let after = self.thread_activity();
            if before == after && after.iter().all(|t| t.asleep) {
                return;
            }
            seen.push(after);
        }
        panic!("agent never went quiet for a whole second: {:?}", seen.last());
    }

    /// Each thread of the agent: its id, context switches so far and
    /// whether it is asleep (state S or D, or stopped).
    pub fn thread_activity(&self) -> Vec<ThreadActivity> {
        let mut out = Vec::new();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return out;
        };
        for task in tasks.flatten() {
            let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
                continue; // the thread ended meanwhile
            };
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_owned()
            };
            let switches = field("voluntary_ctxt_switches:").parse::<u64>().unwrap_or(0)
                + field("nonvoluntary_ctxt_switches:").parse::<u64>().unwrap_or(0);
            let state = field("State:").chars().next().unwrap_or('?');
            out.push(ThreadActivity {
                tid: task.file_name().to_string_lossy().parse().unwrap_or(0),
                switches,
                asleep: matches!(state, 'S' | 'D' | 'T' | 't' | 'I'),
            });
        }
        out.sort_by_key(|t| t.tid);
        out
    }

    /// Threads of the agent process.
    pub fn threads(&self) -> usize {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// The agent's child processes (zombies included): pid and state letter.
    pub fn children(&self) -> Vec<(u32, char)> {
        children_of(self.pid())
    }

    pub fn signal(&self, signal: i32) {
        assert!(
            Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(self.pid().to_string())
                .status()
                .unwrap()
                .success()
        );
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "agent did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

/// The child processes of `parent` (zombies included): pid and state
/// letter (R, S, Z, …) from /proc/<pid>/stat.
pub fn children_of(parent: u32) -> Vec<(u32, char)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let mut fields = rest.split(' ');
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        if fields.next() == Some(parent.to_string().as_str()) {
            out.push((pid, state));
        }
    }
    out.sort();
    out
}

/// Poll `probe` until `done` holds for its value or `timeout` passes; the
/// last value (for the caller's assertion and its message).
pub fn settle<T>(timeout: Duration, mut probe: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let value = probe();
        if done(&value) || Instant::now() >= deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client connection that reads replies line by line.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    pub fn connect(socket: &Path) -> Client {
        Client::from_stream(UnixStream::connect(socket).expect("connect to agent"))
    }

    pub fn from_stream(stream: UnixStream) -> Client {
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        let writer = stream.try_clone().unwrap();
        Client {
            reader: BufReader::new(stream),
            writer,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send to agent");
    }

    pub fn send_line(&mut self, line: &str) {
        self.send(format!("{line}\n").as_bytes());
    }

    /// One reply line, without its newline.
    pub fn read_line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("reply from agent");
        assert!(
            line.ends_with(b"\n"),
            "connection closed mid-reply: {:?}",
            String::from_utf8_lossy(&line)
        );
        line.pop();
        line
    }

    pub fn read_text(&mut self) -> String {
        String::from_utf8(self.read_line()).expect("reply is UTF-8")
    }

    /// Send a request line and return the reply line.
    pub fn call(&mut self, line: &str) -> String {
        self.send_line(line);
        self.read_text()
    }

    /// True if a reply arrives within `wait`.
    pub fn has_pending_reply(&mut self, wait: Duration) -> bool {
        if !self.reader.buffer().is_empty() {
            return true;
        }
        self.reader.get_ref().set_read_timeout(Some(wait)).unwrap();
        let pending = matches!(self.reader.fill_buf(), Ok(buf) if !buf.is_empty());
        self.reader.get_ref().set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
        pending
    }

    pub fn shutdown_write(&self) {
        self.writer.shutdown(std::net::Shutdown::Write).unwrap();
    }

    pub fn into_stream(self) -> UnixStream {
        self.writer
    }

    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
        rest
    }
}

/// One thread of a process, as [`Agent::thread_activity`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadActivity {
    pub tid: u32,
    /// Voluntary and involuntary context switches so far.
    pub switches: u64,
    pub asleep: bool,
}
