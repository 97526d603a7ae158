//! A file the agent appends its own lines to (the audit log, `-l FILE`),
//! which never blocks the agent on a frozen filesystem and never follows a
//! symlink.
//!
//! Opening: `O_APPEND|O_NOFOLLOW|O_NONBLOCK` (a symlink at the path is
//! refused, a FIFO does not wait for a reader), then `fstat` of the opened
//! descriptor: only a regular file or a character device (`/dev/null`, a
//! console) is accepted. A private file is tightened with `fchmod` on that
//! descriptor, never by path.
//!
//! Writing: each line is one `write(2)` while the [`WriteGate`] is open.
//! While a freeze holds it closed, lines are kept in memory, at most
//! [`PENDING_LINES`] lines and [`PENDING_BYTES`] bytes; later lines are
//! dropped and counted. When the gate opens, the kept lines are written,
//! then one line saying how many were dropped.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag, fchmod, fstat};
use thiserror::Error;

use crate::write_gate::{AfterThaw, WriteGate};

/// Lines kept while frozen, at most.
pub const PENDING_LINES: usize = 4096;
/// Bytes kept while frozen, at most.
pub const PENDING_BYTES: usize = 1 << 20;

#[derive(Debug, Error)]
pub enum LogFileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a regular file")]
    NotRegular,
}

/// Whether a line must reach the disk before the call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fdatasync now (lifecycle events).
    Sync,
    /// fdatasync at most once per `sync_interval` (request lines).
    Batched,
    /// Never synced (the `-l` log).
    None,
}

/// How the line that reports dropped lines reads.
pub type DroppedLine = fn(u64) -> String;

struct Inner {
    file: File,
    pending: VecDeque<(Vec<u8>, Durability)>,
    pending_bytes: usize,
    dropped: u64,
    last_sync: Instant,
    /// A write error was already reported (report once, not per line).
    failing: bool,
}

pub struct LogFile {
    path: PathBuf,
    gate: Arc<WriteGate>,
    sync_interval: Duration,
    dropped_line: DroppedLine,
    inner: Mutex<Inner>,
}

/// Open `path` for appending as described above; `private` creates it 0600
/// and tightens an existing file to 0600.
pub fn open_append(path: &Path, private: bool) -> Result<File, LogFileError> {
    let mode = if private { 0o600 } else { 0o666 };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(mode)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path)?;
    let st = fstat(file.as_fd()).map_err(std::io::Error::from)?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind == SFlag::S_IFCHR {
        return Ok(file);
    }
    if kind != SFlag::S_IFREG {
        return Err(LogFileError::NotRegular);
    }
    if private && st.st_mode & 0o777 != 0o600 {
        fchmod(file.as_fd(), Mode::from_bits_truncate(0o600)).map_err(std::io::Error::from)?;
    }
    Ok(file)
}

impl LogFile {
    /// `dropped_line` words the line written after a thaw when lines were
    /// dropped.
    pub fn open(
        path: &Path,
        private: bool,
        gate: Arc<WriteGate>,
        sync_interval: Duration,
        dropped_line: DroppedLine,
    ) -> Result<Arc<LogFile>, LogFileError> {
        let file = open_append(path, private)?;
        let log = Arc::new(LogFile {
            path: path.to_owned(),
            gate: gate.clone(),
            sync_interval,
            dropped_line,
            inner: Mutex::new(Inner {
                file,
                pending: VecDeque::new(),
                pending_bytes: 0,
                dropped: 0,
                last_sync: Instant::now(),
                failing: false,
            }),
        });
        let weak = Arc::downgrade(&(log.clone() as Arc<dyn AfterThaw>));
        gate.register(weak);
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Append one line (`line` ends with '\n'), or keep it while frozen.
    pub fn write_line(&self, line: &[u8], durability: Durability) {
        let mut inner = self.lock();
        match self.gate.enter() {
            Some(_pass) => {
                self.flush_pending(&mut inner);
                self.write_now(&mut inner, line, durability);
            }
            None => keep(&mut inner, line, durability),
        }
    }

    /// Write what was kept while frozen, then how many lines were dropped.
    fn flush_pending(&self, inner: &mut Inner) {
        while let Some((line, durability)) = inner.pending.pop_front() {
            inner.pending_bytes -= line.len();
            self.write_now(inner, &line, durability);
        }
        if inner.dropped > 0 {
            let mut text = (self.dropped_line)(std::mem::take(&mut inner.dropped));
            text.push('\n');
            self.write_now(inner, text.as_bytes(), Durability::Sync);
        }
    }

    fn write_now(&self, inner: &mut Inner, line: &[u8], durability: Durability) {
        let result = inner.file.write_all(line).and_then(|()| {
            let due = match durability {
                Durability::Sync => true,
                Durability::Batched => inner.last_sync.elapsed() >= self.sync_interval,
                Durability::None => false,
            };
            if due {
                inner.last_sync = Instant::now();
                inner.file.sync_data()
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => inner.failing = false,
            Err(e) if !inner.failing => {
                inner.failing = true;
                // Not through tracing: `-l` itself may be the failing file.
                eprintln!("cannot write {}: {e}", self.path.display());
            }
            Err(_) => {}
        }
    }
}

fn keep(inner: &mut Inner, line: &[u8], durability: Durability) {
    if inner.pending.len() >= PENDING_LINES || inner.pending_bytes + line.len() > PENDING_BYTES {
        inner.dropped += 1;
        return;
    }
    inner.pending_bytes += line.len();
    inner.pending.push_back((line.to_vec(), durability));
}

impl AfterThaw for LogFile {
    fn after_thaw(&self) {
        let mut inner = self.lock();
        if let Some(_pass) = self.gate.enter() {
            self.flush_pending(&mut inner);
        }
    }
}

/// `-l FILE` as tracing's writer: one event is one `write` call.
impl Write for &LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_line(buf, Durability::None);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("qga-logfile-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn dropped(n: u64) -> String {
        format!("dropped {n}")
    }

    #[test]
    fn lines_wait_while_the_gate_is_closed_and_overflow_is_counted() {
        let dir = scratch("gate");
        let path = dir.join("log");
        let gate = WriteGate::new();
        let log = LogFile::open(&path, false, gate.clone(), Duration::from_secs(1), dropped).unwrap();
        log.write_line(b"before\n", Durability::None);
        gate.close();
        for i in 0..PENDING_LINES + 3 {
            log.write_line(format!("frozen {i}\n").as_bytes(), Durability::Batched);
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "before\n");
        gate.open();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + PENDING_LINES + 1);
        assert_eq!(lines[1], "frozen 0");
        assert_eq!(lines[PENDING_LINES], format!("frozen {}", PENDING_LINES - 1));
        assert_eq!(lines[PENDING_LINES + 1], "dropped 3");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn symlinks_and_fifos_are_refused_and_chmod_acts_on_the_file_opened() {
        let dir = scratch("nofollow");
        let target = dir.join("target");
        std::fs::write(&target, "").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = open_append(&link, true).unwrap_err();
        assert!(
            matches!(&err, LogFileError::Io(e) if e.raw_os_error() == Some(libc::ELOOP)),
            "{err}"
        );
        assert_eq!(
            std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
            0o644,
            "the symlink's target was chmod'ed"
        );
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        // O_NONBLOCK: a FIFO without reader fails at once (ENXIO) instead of
        // waiting for one.
        assert!(open_append(&fifo, true).is_err());
        open_append(&target, true).unwrap();
        assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(open_append(Path::new("/dev/null"), false).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
