//! `qga:agent/process`: the guest-exec child table, held by the host so it
//! outlives every call (and a swap of the handler component).
//!
//! Each child gets host threads: one reaps it (waitpid as soon as it exits,
//! so no zombie is left whether or not anyone asks), one per captured
//! stream (at most 16 MiB kept, the rest read and dropped with the
//! truncation flag set), and one feeding its stdin with blocking writes
//! (a child that exits early ends them with EPIPE: no busy loop, unlike
//! qemu-ga 7.2, which polls the dead pipe at 100% CPU).
//!
//! qemu-ga bounds none of this; qga caps the children running at once,
//! the children kept until guest-exec-status reports them, and the output
//! captured for all of them together, so that a spawn loop (a hostile
//! handler, or a client that never asks) cannot exhaust the guest.

mod host;
pub mod settings;
mod sys;

pub use host::{Process, ProcessView, add_to_linker};

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use base64::Engine as _;

use super::qga::agent::process::{CaptureMode, ChildStatus};
use super::{Denied, Grant, glob};

/// qemu-ga's GUEST_EXEC_MAX_OUTPUT: bytes kept per captured stream.
pub const MAX_OUTPUT: usize = 16 << 20;
/// Most children running at once (each holds up to three pipes and four
/// host threads until it exits).
pub const MAX_RUNNING: usize = 64;
/// Most children in the table: running, or exited and not yet reported by
/// guest-exec-status.
pub const MAX_CHILDREN: usize = 1024;
/// Most captured output held for all children together; past it, output
/// is read and dropped and the stream marked truncated, as past
/// [`MAX_OUTPUT`].
pub const MAX_CAPTURED: usize = 256 << 20;
/// Most input-data held for running children together, not yet read by
/// them (a child that does not read its stdin keeps its input in the
/// agent until it exits).
pub const MAX_INPUT_HELD: usize = 256 << 20;

/// Why the table refused to start another child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("cannot start another child: {MAX_RUNNING} children of guest-exec are running")]
    Running,
    #[error(
        "cannot start another child: {MAX_CHILDREN} children of guest-exec have not been reported by guest-exec-status"
    )]
    Unreported,
    #[error(
        "cannot start another child: the input-data of running children would exceed {} MiB",
        MAX_INPUT_HELD >> 20
    )]
    Input,
}

/// Why a spawn failed.
#[derive(Debug)]
enum SpawnFailure {
    Refused(Refused),
    Os(std::io::Error),
}

/// Which children a command may start, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessGrant {
    /// Globs over the resolved program path (symlinks followed).
    pub programs: Vec<String>,
    /// Names of environment variables a request may set (None: any).
    pub env_names: Option<Vec<String>>,
    /// Run children as this uid/gid (None: the agent's).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl ProcessGrant {
    /// Anything, as qemu-ga.
    pub fn any() -> ProcessGrant {
        ProcessGrant {
            programs: vec!["/**".to_owned()],
            env_names: None,
            uid: None,
            gid: None,
        }
    }

    pub fn nothing() -> ProcessGrant {
        ProcessGrant {
            programs: Vec::new(),
            env_names: Some(Vec::new()),
            uid: None,
            gid: None,
        }
    }
}

/// The grant check of a spawn: the program's resolved path (see
/// [`super::resolve`]; the checked descriptor is what runs) against the
/// allowlist, each environment name against the allowed names.
pub fn check_spawn(
    grant: &Grant,
    command: &str,
    resolved: &std::path::Path,
    env: Option<&[String]>,
) -> Result<(), Denied> {
    check_program(grant, command, resolved)?;
    if let (Some(allowed), Some(env)) = (&grant.process.env_names, env) {
        for entry in env {
            let name = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
            if !allowed.iter().any(|a| a == name) {
                return Err(Denied::Env {
                    command: command.to_owned(),
                    name: name.to_owned(),
                });
            }
        }
    }
    Ok(())
}

/// The program allowlist alone.
fn check_program(grant: &Grant, command: &str, resolved: &std::path::Path) -> Result<(), Denied> {
    // Matched as bytes, never as the lossy text of a name that is not UTF-8.
    if grant.process.programs.iter().any(|p| glob::matches_path(p, resolved)) {
        Ok(())
    } else {
        Err(Denied::Program {
            command: command.to_owned(),
            program: resolved.to_string_lossy().into_owned(),
        })
    }
}

#[derive(Default)]
struct Capture {
    data: Vec<u8>,
    truncated: bool,
    closed: bool,
}

struct Child {
    pid: i64,
    has_output: bool,
    status: Mutex<Option<ExitStatus>>,
    out: Mutex<Capture>,
    err: Mutex<Capture>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The host's children, in spawn order (a reused pid finds the older,
/// unreported entry first, as in qemu-ga's list).
#[derive(Default)]
pub struct ChildTable {
    children: Mutex<Vec<Arc<Child>>>,
    /// Signalled when a child changes state (tests and shutdown wait on it).
    changed: Condvar,
    /// Children not yet reaped.
    running: AtomicUsize,
    /// Captured bytes held, all children together.
    captured: AtomicUsize,
    /// input-data bytes held for children, not yet written to them.
    input_held: Arc<AtomicUsize>,
}

impl std::fmt::Debug for ChildTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildTable").field("children", &self.len()).finish()
    }
}

fn drain(mut from: impl Read, into: Arc<Child>, stderr: bool, table: &ChildTable) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut c = lock(if stderr { &into.err } else { &into.out });
        let keep = table.reserve(n.min(MAX_OUTPUT - c.data.len()));
        if keep < n {
            c.truncated = true;
        }
        c.data.extend_from_slice(&buf[..keep]);
    }
    let mut c = lock(if stderr { &into.err } else { &into.out });
    c.closed = true;
    c.data.shrink_to_fit();
}

fn thread(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    std::thread::Builder::new().name(name.to_owned()).spawn(f).map(drop)
}

impl ChildTable {
    pub fn len(&self) -> usize {
        lock(&self.children).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Children not yet reaped.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Captured bytes held for all children.
    pub fn captured(&self) -> usize {
        self.captured.load(Ordering::Acquire)
    }

    /// Take up to `want` bytes of the capture budget; what was granted.
    fn reserve(&self, want: usize) -> usize {
        let mut granted = 0;
        let _ = self.captured.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            granted = want.min(MAX_CAPTURED.saturating_sub(held));
            Some(held + granted)
        });
        granted
    }

    fn release(&self, bytes: usize) {
        self.captured.fetch_sub(bytes, Ordering::AcqRel);
    }

    fn spawn(self: &Arc<Self>, s: &sys::Spawn<'_>, input: &mut Option<Vec<u8>>) -> Result<i64, SpawnFailure> {
        if self.len() >= MAX_CHILDREN {
            return Err(SpawnFailure::Refused(Refused::Unreported));
        }
        let slot = self.running.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_RUNNING).then_some(n + 1)
        });
        if slot.is_err() {
            return Err(SpawnFailure::Refused(Refused::Running));
        }
        let input_len = input.as_ref().map_or(0, Vec::len);
        let held = self
            .input_held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held + input_len <= MAX_INPUT_HELD).then_some(held + input_len)
            });
        if held.is_err() {
            self.running.fetch_sub(1, Ordering::AcqRel);
            return Err(SpawnFailure::Refused(Refused::Input));
        }
        let sys::Started { mut child, merged } = match sys::spawn(s) {
            Ok(started) => started,
            Err(e) => {
                self.running.fetch_sub(1, Ordering::AcqRel);
                self.input_held.fetch_sub(input_len, Ordering::AcqRel);
                return Err(SpawnFailure::Os(e));
            }
        };
        let input = input.take();
        let pid = i64::from(child.id());
        let entry = Arc::new(Child {
            pid,
            has_output: s.capture != CaptureMode::None,
            status: Mutex::new(None),
            out: Mutex::new(Capture::default()),
            err: Mutex::new(Capture::default()),
        });
        // A stream with no reader is finished from the start: the child
        // counts as exited once it is reaped and every read stream is at
        // end of file, so its exit code and all its output come together.
        let stdout: Option<Box<dyn Read + Send>> = match merged {
            Some(reader) => Some(Box::new(reader)),
            None => child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        };
        let stderr = child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>);
        lock(&entry.out).closed = stdout.is_none();
        lock(&entry.err).closed = stderr.is_none();
        lock(&self.children).push(entry.clone());
        match (child.stdin.take(), input) {
            (Some(mut stdin), Some(input)) => {
                // Blocking writes: EPIPE ends them when the child is gone.
                let held = self.input_held.clone();
                let spawned = thread("qga-exec-in", move || {
                    let _ = stdin.write_all(&input);
                    drop(input);
                    held.fetch_sub(input_len, Ordering::AcqRel);
                });
                if spawned.is_err() {
                    self.input_held.fetch_sub(input_len, Ordering::AcqRel);
                }
            }
            _ => {
                self.input_held.fetch_sub(input_len, Ordering::AcqRel);
            }
        }
        for (stream, is_err) in [(stdout, false), (stderr, true)] {
            if let Some(stream) = stream {
                let e = entry.clone();
                let table = self.clone();
                let _ = thread("qga-exec-out", move || {
                    drain(stream, e, is_err, &table);
                    table.changed.notify_all();
                });
            }
        }
        let table = self.clone();
        let reaped = entry.clone();
        let reaper = thread("qga-exec-wait", move || {
            let status = loop {
                match child.wait() {
                    Ok(s) => break Some(s),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break None,
                }
            };
            *lock(&reaped.status) = Some(status.unwrap_or_else(|| ExitStatus::from_raw(0)));
            table.running.fetch_sub(1, Ordering::AcqRel);
            table.changed.notify_all();
        });
        if let Err(e) = reaper {
            tracing::warn!("cannot start a reaper thread for pid {pid}: {e}");
        }
        Ok(pid)
    }

    /// The child's state; once it is reported exited it is forgotten.
    fn status(&self, pid: i64) -> Option<ChildStatus> {
        let mut children = lock(&self.children);
        let index = children.iter().position(|c| c.pid == pid)?;
        let child = children[index].clone();
        let status = *lock(&child.status);
        let mut finished = status.is_some();
        if child.has_output {
            finished &= lock(&child.out).closed && lock(&child.err).closed;
        }
        if !finished {
            return Some(ChildStatus {
                exited: false,
                exitcode: None,
                signal: None,
                out_b64: None,
                err_b64: None,
                out_truncated: false,
                err_truncated: false,
            });
        }
        children.remove(index);
        drop(children);
        let status = status.unwrap_or_else(|| ExitStatus::from_raw(0));
        let take = |m: &Mutex<Capture>| {
            let c = std::mem::take(&mut *lock(m));
            self.release(c.data.len());
            let data = (!c.data.is_empty()).then(|| base64::engine::general_purpose::STANDARD.encode(&c.data));
            (data, c.truncated)
        };
        let (out_b64, out_truncated) = take(&child.out);
        let (err_b64, err_truncated) = take(&child.err);
        Some(ChildStatus {
            exited: true,
            exitcode: status.code().map(i64::from),
            signal: if status.code().is_none() {
                status.signal().map(i64::from)
            } else {
                None
            },
            out_b64,
            err_b64,
            out_truncated,
            err_truncated,
        })
    }

    /// Wait until `pid` has been reaped by the host (tests).
    pub fn wait_reaped(&self, pid: i64, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut children = lock(&self.children);
        loop {
            let done = match children.iter().find(|c| c.pid == pid) {
                Some(c) => lock(&c.status).is_some(),
                None => true,
            };
            let now = std::time::Instant::now();
            if done || now >= deadline {
                return done;
            }
            children = self
                .changed
                .wait_timeout(children, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

/// Mark the descriptors the agent inherited close-on-exec, so no child
/// (guest-exec, helpers, the fsfreeze hook) inherits them; see
/// [`sys::close_inherited_on_exec`]. Call once at start-up.
pub fn close_inherited_on_exec() -> std::io::Result<()> {
    sys::close_inherited_on_exec()
}

/// Whether the checked program starts with `#!`.
fn is_script(program: &super::resolve::Resolved) -> bool {
    let mut head = [0u8; 2];
    program
        .open(super::resolve::OFlag::O_RDONLY | super::resolve::OFlag::O_NONBLOCK)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| &head == b"#!")
}

/// GLib's g_spawn error text.
fn spawn_failed(program: &str, errno: &std::io::Error) -> String {
    format!(
        "Failed to execute child process \u{201c}{program}\u{201d} ({})",
        super::io_strerror(errno)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_as_g_spawn() {
        assert_eq!(sys::search("/x/y", "").unwrap(), PathBuf::from("/x/y"));
        let sh = sys::search("sh", "/nonexistent:/bin:/usr/bin").unwrap();
        assert!(sh.ends_with("sh"));
        assert_eq!(
            sys::search("nonexistent-qga-prog", "/bin").unwrap_err(),
            nix::errno::Errno::ENOENT
        );
        // A directory named like the program: EACCES, as execve reports.
        assert_eq!(sys::search("tmp", "/").unwrap_err(), nix::errno::Errno::EACCES);
        assert_eq!(sys::search("", "/bin").unwrap_err(), nix::errno::Errno::ENOENT);
    }

    #[test]
    fn capture_budget_is_shared_and_given_back() {
        let t = ChildTable::default();
        assert_eq!(t.reserve(MAX_CAPTURED - 10), MAX_CAPTURED - 10);
        assert_eq!(t.reserve(100), 10);
        assert_eq!(t.reserve(1), 0);
        t.release(50);
        assert_eq!(t.reserve(100), 50);
        assert_eq!(t.captured(), MAX_CAPTURED);
    }

    #[test]
    fn spawn_error_text_is_glibs() {
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(
            spawn_failed("/nonexistent", &e),
            "Failed to execute child process \u{201c}/nonexistent\u{201d} (No such file or directory)"
        );
    }

    #[test]
    fn program_allowlist_and_env_names() {
        let mut g = Grant::none().with(super::super::Capability::Process);
        g.process = ProcessGrant {
            programs: vec!["/usr/bin/*".to_owned()],
            env_names: Some(vec!["LANG".to_owned()]),
            uid: None,
            gid: None,
        };
        let ok = std::path::Path::new("/usr/bin/env");
        assert!(check_spawn(&g, "c", ok, None).is_ok());
        assert!(check_spawn(&g, "c", ok, Some(&["LANG=C".to_owned()])).is_ok());
        assert!(matches!(
            check_spawn(&g, "c", ok, Some(&["LD_PRELOAD=x".to_owned()])),
            Err(Denied::Env { .. })
        ));
        assert!(matches!(
            check_spawn(&g, "c", std::path::Path::new("/sbin/reboot-qga-test"), None),
            Err(Denied::Program { .. })
        ));
    }
}
