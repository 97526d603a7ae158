//! `qga:agent/freeze`: FIFREEZE/FITHAW and the agent's frozen state.
//!
//! The state lives here, in the host, not in any handler: a
//! [`FreezeState`] shared by every call and by dispatch (which answers
//! qemu-ga's "has been disabled: the agent is in frozen state" while it is
//! set). It is persisted as `<statedir>/qga.state.isfrozen`, the file
//! qemu-ga uses, written *before* the first FIFREEZE and removed after the
//! last FITHAW, so an agent killed while frozen (or while freezing) starts
//! up frozen and can still thaw. The file lists the mount points being
//! frozen, one per line (qemu-ga writes it empty; both read as frozen).

mod host;
mod mount_root;
mod sys;

pub use host::{Freeze, FreezeView, add_to_linker};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use thiserror::Error;

use super::{Denied, QgaError, io_strerror};
use crate::write_gate::WriteGate;
use mount_root::{MountLine, MountRootError, mount_lines, open_root};

/// The file qemu-ga 7.2 keeps while frozen.
pub const STATE_FILE: &str = "qga.state.isfrozen";

/// A failure of the fsfreeze hook, with qemu-ga's texts.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HookError {
    #[error("can't access fsfreeze hook '{path}': {reason}")]
    Access { path: String, reason: String },
    #[error("failed to create child process: {0}")]
    Spawn(String),
    #[error("fsfreeze hook has terminated abnormally")]
    Abnormal,
    #[error("fsfreeze hook has failed with status {0}")]
    Status(i32),
}

/// What the hook is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookArg {
    Freeze,
    Thaw,
}

impl HookArg {
    fn as_str(self) -> &'static str {
        match self {
            HookArg::Freeze => "freeze",
            HookArg::Thaw => "thaw",
        }
    }
}

/// A freeze or thaw failure, with qemu-ga's texts.
#[derive(Debug, Error)]
pub enum FreezeError {
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error("failed to open /proc/self/mountinfo: {0}")]
    Mounts(String),
    #[error("failed to open {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("failed to freeze {path}: {reason}")]
    Freeze { path: String, reason: String },
    #[error("Command {0} has been disabled: the agent is in frozen state")]
    AlreadyFrozen(String),
    #[error(transparent)]
    Denied(#[from] Denied),
}

pub use qga_text::mountinfo::{Mount, decode_mntname, parse_mountinfo};

/// The mounted filesystems, read now.
pub fn mounts() -> Result<Vec<Mount>, FreezeError> {
    Ok(mount_table()?.0)
}

/// qemu-ga's mount list and every mountinfo line (to check the
/// descriptor a walk ends on), from one read.
fn mount_table() -> Result<(Vec<Mount>, Vec<MountLine>), FreezeError> {
    let bytes = sys::mountinfo().map_err(|e| FreezeError::Mounts(io_strerror(&e)))?;
    let text = String::from_utf8_lossy(&bytes);
    let mounts = parse_mountinfo(&text, &|source| sys::block_dev(Path::new(source)));
    Ok((mounts, mount_lines(&text)))
}

#[derive(Debug, Default)]
struct Frozen {
    frozen: bool,
    /// Mount points frozen (or being frozen) by this agent.
    mounts: Vec<String>,
    /// Frozen since start-up (found the state file).
    at_start: bool,
}

/// The agent's frozen state and fsfreeze hook.
#[derive(Debug)]
pub struct FreezeState {
    state_file: PathBuf,
    hook: Option<PathBuf>,
    inner: Mutex<Frozen>,
    /// The gate, readable without `inner`'s lock: a freeze holds that lock
    /// for as long as its hook and FIFREEZE take (seconds), and dispatch
    /// reads the gate for every request on the event loop. A freeze in
    /// progress already reads as frozen, as qemu-ga, which answers nothing
    /// else until it is done, would have it.
    gate: AtomicU8,
    /// The agent's own log writes: closed from before the hook until after
    /// the last FITHAW, so that no log line blocks on a frozen filesystem.
    writes: Arc<WriteGate>,
}

const THAWED: u8 = 0;
const FROZEN: u8 = 1;
const FROZEN_AT_START: u8 = 2;

impl FreezeState {
    /// The state persisted in `state_dir` (frozen if qemu-ga's or our
    /// `qga.state.isfrozen` is there) and the hook to run (`-F`).
    pub fn load(state_dir: &Path, hook: Option<PathBuf>, writes: Arc<WriteGate>) -> FreezeState {
        let state_file = state_dir.join(STATE_FILE);
        let mut frozen = Frozen::default();
        if let Ok(text) = std::fs::read_to_string(&state_file) {
            tracing::warn!(
                "previous instance appears to have exited with frozen filesystems. disabling non-fsfreeze-safe commands until guest-fsfreeze-thaw is issued, or filesystems are manually unfrozen and the file {} is removed",
                state_file.display()
            );
            frozen.frozen = true;
            frozen.at_start = true;
            frozen.mounts = text.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect();
        }
        let gate = AtomicU8::new(gate_of(&frozen));
        if frozen.frozen {
            writes.close();
        }
        FreezeState {
            state_file,
            hook,
            inner: Mutex::new(frozen),
            gate,
            writes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Frozen> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_frozen(&self) -> bool {
        self.gate.load(Ordering::Acquire) != THAWED
    }

    /// The state as dispatch's freeze gate needs it; never waits.
    pub fn gate(&self) -> crate::state::FreezeGate {
        use crate::state::FreezeGate;
        match self.gate.load(Ordering::Acquire) {
            THAWED => FreezeGate::Thawed,
            FROZEN_AT_START => FreezeGate::FrozenAtStart,
            _ => FreezeGate::Frozen,
        }
    }

    /// Make `gate` say what `frozen` holds.
    fn publish(&self, frozen: &Frozen) {
        self.gate.store(gate_of(frozen), Ordering::Release);
        if !frozen.frozen {
            self.writes.open();
        }
    }

    /// Mount points this agent froze (for status tools and tests).
    pub fn frozen_mounts(&self) -> Vec<String> {
        self.lock().mounts.clone()
    }

    /// qemu-ga's `execute_fsfreeze_hook`.
    pub fn run_hook(&self, arg: HookArg) -> Result<(), HookError> {
        let Some(hook) = &self.hook else {
            return Ok(());
        };
        sys::executable(hook).map_err(|e| HookError::Access {
            path: hook.display().to_string(),
            reason: io_strerror(&e),
        })?;
        tracing::info!("executing fsfreeze hook with arg '{}'", arg.as_str());
        match sys::run_hook(hook, arg.as_str()) {
            Err(e) => Err(HookError::Spawn(io_strerror(&e))),
            Ok(sys::HookExit::Abnormal) => Err(HookError::Abnormal),
            Ok(sys::HookExit::Code(0)) => Ok(()),
            Ok(sys::HookExit::Code(code)) => Err(HookError::Status(code)),
        }
    }

    fn persist(&self, frozen: &mut Frozen, mounts: Vec<String>) {
        frozen.frozen = true;
        frozen.at_start = false;
        frozen.mounts = mounts;
        self.publish(frozen);
        let mut text = frozen.mounts.join("\n");
        text.push('\n');
        if let Err(e) = std::fs::write(&self.state_file, text) {
            tracing::warn!(
                "unable to create {}, fsfreeze may not function properly: {}",
                self.state_file.display(),
                io_strerror(&e)
            );
        }
    }

    fn clear(&self, frozen: &mut Frozen) {
        frozen.frozen = false;
        frozen.at_start = false;
        frozen.mounts.clear();
        self.publish(frozen);
        if let Err(e) = std::fs::remove_file(&self.state_file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(
                "unable to delete {}, fsfreeze may not function properly: {}",
                self.state_file.display(),
                io_strerror(&e)
            );
        }
    }

    /// guest-fsfreeze-freeze(-list) for `command`, within `allowed` mount
    /// points.
    pub fn freeze(
        &self,
        command: &str,
        mountpoints: Option<&[String]>,
        allowed: &dyn Fn(&str) -> bool,
    ) -> Result<i64, FreezeError> {
        let mut state = self.lock();
        if state.frozen {
            return Err(FreezeError::AlreadyFrozen(command.to_owned()));
        }
        if let Some(list) = mountpoints
            && let Some(bad) = list.iter().find(|m| !allowed(m))
        {
            return Err(Denied::Mount {
                command: command.to_owned(),
                path: bad.clone(),
            }
            .into());
        }
        // Frozen from now on for everyone else; thawed again below if the
        // freeze does not happen.
        self.gate.store(FROZEN, Ordering::Release);
        self.writes.close();
        let started = self
            .run_hook(HookArg::Freeze)
            .map_err(FreezeError::from)
            .and_then(|()| mount_table());
        let (mounts, lines) = match started {
            Ok(table) => table,
            Err(e) => {
                self.publish(&state);
                return Err(e);
            }
        };
        let targets: Vec<&Mount> = mounts
            .iter()
            .rev()
            .filter(|m| match mountpoints {
                Some(list) => list.contains(&m.dirname),
                None => allowed(&m.dirname),
            })
            .collect();
        // Frozen (and persisted) before the first FIFREEZE: the agent must
        // not block itself on a write once filesystems are frozen.
        self.persist(&mut state, targets.iter().map(|m| m.dirname.clone()).collect());
        let mut count = 0i64;
        let mut failure = None;
        let mut frozen = Vec::new();
        for mount in targets {
            let file = match open_root(mount, &lines) {
                Ok(f) => f,
                Err(e @ MountRootError::Shadowed { .. }) => {
                    // Not the mount listed: nothing of it is frozen, and
                    // nothing else is frozen in its place.
                    tracing::warn!("not freezing: {e}");
                    continue;
                }
                Err(e) => {
                    failure = Some(FreezeError::Open {
                        path: mount.dirname.clone(),
                        reason: e.to_string(),
                    });
                    break;
                }
            };
            match sys::freeze(&file) {
                Ok(()) => {
                    count += 1;
                    frozen.push(mount.dirname.clone());
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EBUSY)) => {}
                Err(e) => {
                    failure = Some(FreezeError::Freeze {
                        path: mount.dirname.clone(),
                        reason: io_strerror(&e),
                    });
                    break;
                }
            }
        }
        match failure {
            Some(err) => {
                drop(state);
                let _ = self.thaw(allowed);
                Err(err)
            }
            None if count == 0 => {
                self.clear(&mut state);
                Ok(0)
            }
            None => {
                // What really was frozen (the state file, written before,
                // keeps the longer list: thaw walks every mount anyway).
                state.mounts = frozen;
                Ok(count)
            }
        }
    }

    /// guest-fsfreeze-thaw: FITHAW every allowed mount (and every mount
    /// this agent froze) until it refuses; the number thawed.
    pub fn thaw(&self, allowed: &dyn Fn(&str) -> bool) -> Result<i64, FreezeError> {
        let mut state = self.lock();
        let (mounts, lines) = mount_table()?;
        let mut count = 0i64;
        for mount in &mounts {
            if !allowed(&mount.dirname) && !state.mounts.contains(&mount.dirname) {
                continue;
            }
            // Only the root of the mount listed there, walked as for freeze.
            let Ok(file) = open_root(mount, &lines) else {
                continue;
            };
            let mut thawed = false;
            while sys::thaw(&file).is_ok() {
                if !thawed {
                    count += 1;
                    thawed = true;
                }
            }
        }
        self.clear(&mut state);
        drop(state);
        self.run_hook(HookArg::Thaw)?;
        Ok(count)
    }
}

fn gate_of(frozen: &Frozen) -> u8 {
    match (frozen.frozen, frozen.at_start) {
        (false, _) => THAWED,
        (true, false) => FROZEN,
        (true, true) => FROZEN_AT_START,
    }
}

fn qga_error(e: FreezeError) -> wasmtime::Result<Result<i64, QgaError>> {
    match e {
        FreezeError::Denied(denied) => Err(denied.into()),
        other => Ok(Err(QgaError {
            desc: other.to_string(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_makes_a_new_agent_frozen() {
        let dir = std::env::temp_dir().join(format!("qga-freeze-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join(STATE_FILE));
        assert!(!FreezeState::load(&dir, None, WriteGate::new()).is_frozen());
        // qemu-ga writes the file empty.
        std::fs::write(dir.join(STATE_FILE), "").unwrap();
        let s = FreezeState::load(&dir, None, WriteGate::new());
        assert!(s.is_frozen());
        assert!(s.frozen_mounts().is_empty());
        std::fs::write(dir.join(STATE_FILE), "/mnt/x\n").unwrap();
        assert_eq!(
            FreezeState::load(&dir, None, WriteGate::new()).frozen_mounts(),
            ["/mnt/x"]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_hook_is_qemu_ga_access_error() {
        let s = FreezeState::load(
            Path::new("/nonexistent-dir"),
            Some("/nonexistent/hook".into()),
            WriteGate::new(),
        );
        assert_eq!(
            s.run_hook(HookArg::Freeze).unwrap_err().to_string(),
            "can't access fsfreeze hook '/nonexistent/hook': No such file or directory"
        );
    }

    #[test]
    fn the_gate_reads_frozen_without_waiting_while_a_freeze_runs() {
        use crate::state::FreezeGate;
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("qga-freeze-gate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let started = dir.join("hook-started");
        let release = dir.join("hook-may-end");
        let hook = dir.join("hook");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\n[ \"$1\" = freeze ] || exit 0\ntouch {}\nwhile [ ! -e {} ]; do sleep 0.01; done\n",
                started.display(),
                release.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let state = std::sync::Arc::new(FreezeState::load(&dir, Some(hook), WriteGate::new()));
        assert_eq!(state.gate(), FreezeGate::Thawed);
        let freezing = {
            let state = state.clone();
            // No mount point given: the hook runs, nothing is frozen.
            std::thread::spawn(move || state.freeze("guest-fsfreeze-freeze-list", Some(&[]), &|_| false))
        };
        while !started.exists() {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // The freeze holds its lock until the hook ends; the gate does not
        // wait for it, and already reads frozen. (Read on another thread, so
        // that a gate that waited fails here instead of hanging the test.)
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = state.clone();
        std::thread::spawn(move || {
            let _ = tx.send((reader.gate(), reader.is_frozen()));
        });
        let during = rx.recv_timeout(std::time::Duration::from_secs(30));
        std::fs::write(&release, "").unwrap();
        assert_eq!(during, Ok((FreezeGate::Frozen, true)), "the gate waited for the freeze");
        assert_eq!(freezing.join().unwrap().unwrap(), 0);
        assert_eq!(state.gate(), FreezeGate::Thawed, "nothing frozen: thawed again");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
