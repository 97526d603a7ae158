//! `qga:agent/files`: the open-file table of guest-file-*, held by the
//! host so it outlives every call (and a swap of the handler component).
//!
//! Handles come from a counter persisted in the state directory exactly as
//! qemu-ga keeps it: `<statedir>/qga.state`, a GLib key file
//! `[global]\nfd_counter=N\n`, rewritten before each handle is returned.
//! Every path is checked against the command's grant after `..` and
//! symlinks are resolved, and again on the descriptor actually opened.

mod sys;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::BlobData;
use super::qga::agent::files::{Chunk, FileError, Host, OpenMode, Whence};
use super::{CallCtx, Capability, Denied, Grant, glob};

/// The first handle with a fresh state directory (qemu-ga's default).
pub const FIRST_HANDLE: i64 = 1000;
/// Most files open at once through guest-file-open. qemu-ga has no limit
/// but its descriptor limit (typically 1024, shared with everything else it
/// does); qga stops well below it so that an open-and-never-close loop
/// cannot starve the agent's clients, children and state files of
/// descriptors. Past it an open fails with EMFILE's text, as qemu-ga's
/// does when it runs out.
pub const MAX_OPEN_FILES: usize = 512;
/// The state file's name in the state directory (qemu-ga's QGA_STATE_NAME... `qga.state`).
pub const STATE_FILE: &str = "qga.state";

/// One grant rule of the files capability: paths matching `pattern` may be
/// opened in any of `modes` (qemu-ga mode names without `b`: r r+ w w+ a a+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRule {
    pub pattern: String,
    pub modes: Vec<String>,
}

/// All six qemu-ga modes.
pub const ALL_MODES: [&str; 6] = ["r", "r+", "w", "w+", "a", "a+"];

impl FileRule {
    /// `pattern` in every mode.
    pub fn any_mode(pattern: &str) -> FileRule {
        FileRule {
            pattern: pattern.to_owned(),
            modes: ALL_MODES.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    /// `pattern` read-only.
    pub fn read_only(pattern: &str) -> FileRule {
        FileRule {
            pattern: pattern.to_owned(),
            modes: vec!["r".to_owned()],
        }
    }
}

/// A mode name without its `b` ("rb+" and "r+b" are "r+").
pub fn base_mode(mode: &str) -> String {
    mode.chars().filter(|&c| c != 'b').collect()
}

/// `path` made absolute, with every existing prefix's symlinks and `..`
/// resolved by the kernel (realpath) and the non-existent rest normalized
/// lexically (a component that does not exist cannot be a symlink).
pub fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let components: Vec<Component> = absolute.components().collect();
    for split in (1..=components.len()).rev() {
        let prefix: PathBuf = components[..split].iter().collect();
        if let Ok(mut real) = std::fs::canonicalize(&prefix) {
            for c in &components[split..] {
                match c {
                    Component::ParentDir => {
                        real.pop();
                    }
                    Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                    Component::Normal(name) => real.push(name),
                }
            }
            return real;
        }
    }
    absolute
}

/// The grant check of an open: the resolved path must match a rule that
/// allows the mode.
pub fn check_path(grant: &Grant, command: &str, resolved: &Path, mode: &str) -> Result<(), Denied> {
    let base = base_mode(mode);
    let text = resolved.to_string_lossy();
    if grant
        .files
        .iter()
        .any(|r| r.modes.contains(&base) && glob::matches(&r.pattern, &text))
    {
        Ok(())
    } else {
        Err(Denied::File {
            command: command.to_owned(),
            path: text.into_owned(),
            mode: mode.to_owned(),
        })
    }
}

/// The host's open files and the persistent handle counter.
pub struct FileTable {
    state_path: PathBuf,
    inner: Mutex<Table>,
}

struct Table {
    next: i64,
    open: HashMap<i64, Arc<File>>,
}

impl std::fmt::Debug for FileTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTable")
            .field("state_path", &self.state_path)
            .finish()
    }
}

/// The counter in a qemu-ga state file, if it holds one.
pub fn parse_state(text: &str) -> Option<i64> {
    let mut in_global = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_global = line == "[global]";
        } else if in_global && let Some(v) = line.strip_prefix("fd_counter=") {
            return v.trim().parse().ok();
        }
    }
    None
}

pub fn format_state(counter: i64) -> String {
    format!("[global]\nfd_counter={counter}\n")
}

impl FileTable {
    /// Load the counter from `<state_dir>/qga.state`, writing the default
    /// file when there is none (as qemu-ga does at start-up).
    pub fn new(state_dir: &Path) -> FileTable {
        let state_path = state_dir.join(STATE_FILE);
        let next = match std::fs::read_to_string(&state_path) {
            Ok(text) => parse_state(&text).unwrap_or(FIRST_HANDLE),
            Err(_) => {
                // qemu-ga refuses to start here; qga serves on, and
                // guest-file-open fails until the state can be written.
                if let Err(e) = write_state(&state_path, FIRST_HANDLE) {
                    tracing::error!(
                        "unable to create state file at path {}: {}",
                        state_path.display(),
                        super::io_strerror(&e)
                    );
                }
                FIRST_HANDLE
            }
        };
        FileTable {
            state_path,
            inner: Mutex::new(Table {
                next,
                open: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether another file may be opened now (see [`MAX_OPEN_FILES`]).
    pub fn has_room(&self) -> bool {
        self.lock().open.len() < MAX_OPEN_FILES
    }

    /// Add an open file under a new handle; the counter is committed to
    /// disk first, as qemu-ga's ga_get_fd_handle does. Like qemu-ga, a
    /// handle whose commit failed is used up all the same (the next open
    /// gets the one after it), and the file is closed.
    pub fn add(&self, file: File) -> Result<i64, AddError> {
        let mut t = self.lock();
        if t.open.len() >= MAX_OPEN_FILES {
            return Err(AddError::Full);
        }
        let handle = t.next;
        t.next = handle + 1;
        if let Err(e) = write_state(&self.state_path, handle + 1) {
            tracing::error!(
                "failed to write persistent state to {}: {}",
                self.state_path.display(),
                super::io_strerror(&e)
            );
            return Err(AddError::Commit);
        }
        t.open.insert(handle, Arc::new(file));
        Ok(handle)
    }

    pub fn get(&self, handle: i64) -> Option<Arc<File>> {
        self.lock().open.get(&handle).cloned()
    }

    pub fn remove(&self, handle: i64) -> Option<Arc<File>> {
        self.lock().open.remove(&handle)
    }

    pub fn len(&self) -> usize {
        self.lock().open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a file could not be added to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddError {
    /// [`MAX_OPEN_FILES`] are open.
    #[error("Too many open files")]
    Full,
    /// The counter could not be written (qemu-ga's words).
    #[error("failed to commit persistent state to disk")]
    Commit,
}

impl From<AddError> for FileError {
    fn from(e: AddError) -> FileError {
        match e {
            // The file family words it as qemu-ga words EMFILE.
            AddError::Full => FileError::Os(super::strerror(libc::EMFILE)),
            AddError::Commit => FileError::Other(e.to_string()),
        }
    }
}

/// Write the state file atomically (temporary file + rename, as GLib's
/// g_file_set_contents). A failed write leaves no temporary file behind
/// (on a full disk it would hold on to the space).
fn write_state(path: &Path, counter: i64) -> std::io::Result<()> {
    let tmp = path.with_extension("state.tmp");
    let written = std::fs::write(&tmp, format_state(counter)).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn os(e: &std::io::Error) -> FileError {
    FileError::Os(super::io_strerror(e))
}

impl CallCtx {
    fn files_allowed(&self) -> wasmtime::Result<()> {
        self.grant.require(&self.command, Capability::Files)?;
        Ok(())
    }

    fn open_file(&self, handle: i64) -> Result<Arc<File>, FileError> {
        self.state.files.get(handle).ok_or(FileError::NoHandle)
    }
}

impl Host for CallCtx {
    fn open(&mut self, path: String, mode: OpenMode) -> wasmtime::Result<Result<i64, FileError>> {
        self.files_allowed()?;
        let path = super::c_string(&path);
        let resolved = resolve(Path::new(&path));
        check_path(&self.grant, &self.command, &resolved, &mode.name)?;
        // Before opening: a refused open must not create or truncate.
        if !self.state.files.has_room() {
            return Ok(Err(AddError::Full.into()));
        }
        let flags = sys::Flags {
            read: mode.read,
            write: mode.write,
            append: mode.append,
            create: mode.create,
            truncate: mode.truncate,
        };
        let file = match sys::open(Path::new(&path), flags) {
            Ok(f) => f,
            Err(e) => return Ok(Err(os(&e))),
        };
        // The descriptor is what counts: re-check the path the kernel
        // opened, in case a component was swapped for a symlink meanwhile.
        match sys::real_path(&file) {
            Ok(real) => check_path(&self.grant, &self.command, &real, &mode.name)?,
            Err(e) => return Ok(Err(os(&e))),
        }
        Ok(self.state.files.add(file).map_err(FileError::from))
    }

    fn exists(&mut self, handle: i64) -> wasmtime::Result<bool> {
        self.files_allowed()?;
        Ok(self.state.files.get(handle).is_some())
    }

    fn read(&mut self, handle: i64, count: u64) -> wasmtime::Result<Result<Chunk, FileError>> {
        self.files_allowed()?;
        // qemu-ga's GUEST_FILE_READ_COUNT_MAX, whatever the handler asks.
        let count = count.min(48 << 20);
        let read = self
            .open_file(handle)
            .and_then(|f| sys::read(&f, count).map_err(|e| os(&e)));
        let (bytes, eof) = match read {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(Chunk {
            count: bytes.len() as u64,
            data: BlobData::push_base64(&mut self.table, &mut self.limiter, &bytes)?,
            eof,
        }))
    }

    fn write(&mut self, handle: i64, data: Vec<u8>) -> wasmtime::Result<Result<u64, FileError>> {
        self.files_allowed()?;
        Ok(self.open_file(handle).and_then(|f| {
            sys::write(&f, &data).map_err(|e| os(&e))?;
            Ok(data.len() as u64)
        }))
    }

    fn seek(&mut self, handle: i64, offset: i64, whence: Whence) -> wasmtime::Result<Result<u64, FileError>> {
        self.files_allowed()?;
        let whence = match whence {
            Whence::Set => sys::Whence::Set,
            Whence::Cur => sys::Whence::Cur,
            Whence::End => sys::Whence::End,
        };
        Ok(self
            .open_file(handle)
            .and_then(|f| sys::seek(&f, offset, whence).map_err(|e| os(&e))))
    }

    fn flush(&mut self, handle: i64) -> wasmtime::Result<Result<(), FileError>> {
        self.files_allowed()?;
        // Writes are not buffered in the agent: nothing to push (qemu-ga's
        // fflush does not fsync either).
        Ok(self.open_file(handle).map(|_| ()))
    }

    fn close(&mut self, handle: i64) -> wasmtime::Result<Result<(), FileError>> {
        self.files_allowed()?;
        Ok(self.state.files.remove(handle).map(drop).ok_or(FileError::NoHandle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_is_qemu_ga_key_file() {
        assert_eq!(format_state(1000), "[global]\nfd_counter=1000\n");
        assert_eq!(parse_state("[global]\nfd_counter=1003\n"), Some(1003));
        assert_eq!(parse_state("[other]\nfd_counter=5\n[global]\nfd_counter=7\n"), Some(7));
        assert_eq!(parse_state("garbage"), None);
    }

    #[test]
    fn counter_persists_across_tables() {
        let dir = std::env::temp_dir().join(format!("qga-files-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let t = FileTable::new(&dir);
        assert_eq!(
            std::fs::read_to_string(dir.join("qga.state")).unwrap(),
            "[global]\nfd_counter=1000\n"
        );
        assert_eq!(t.add(File::open("/dev/null").unwrap()).unwrap(), 1000);
        assert_eq!(t.add(File::open("/dev/null").unwrap()).unwrap(), 1001);
        drop(t);
        let t = FileTable::new(&dir);
        assert_eq!(t.add(File::open("/dev/null").unwrap()).unwrap(), 1002);
        assert_eq!(
            std::fs::read_to_string(dir.join("qga.state")).unwrap(),
            "[global]\nfd_counter=1003\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn table_is_capped_and_a_failed_commit_uses_up_its_handle() {
        let dir = std::env::temp_dir().join(format!("qga-files-cap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let t = FileTable::new(&dir);
        for i in 0..MAX_OPEN_FILES {
            assert_eq!(t.add(File::open("/dev/null").unwrap()).unwrap(), 1000 + i as i64);
        }
        assert!(!t.has_room());
        assert_eq!(t.add(File::open("/dev/null").unwrap()), Err(AddError::Full));
        assert!(t.remove(1000).is_some());
        assert!(t.has_room());
        let next = 1000 + MAX_OPEN_FILES as i64;
        assert_eq!(t.add(File::open("/dev/null").unwrap()).unwrap(), next);
        // The state directory goes away: the commit fails, the handle is
        // spent (as in qemu-ga), nothing is left open and no temporary
        // file stays behind.
        t.remove(next);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(t.add(File::open("/dev/null").unwrap()), Err(AddError::Commit));
        assert_eq!(t.len(), MAX_OPEN_FILES - 1);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(t.add(File::open("/dev/null").unwrap()).unwrap(), next + 2);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["qga.state"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resolve_follows_dotdot_and_symlinks() {
        let dir = std::env::temp_dir().join(format!("qga-files-resolve-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let real = std::fs::canonicalize(&dir).unwrap();
        std::os::unix::fs::symlink("/etc/shadow", dir.join("link")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("etc")).unwrap();
        assert_eq!(resolve(&dir.join("link")), Path::new("/etc/shadow"));
        assert_eq!(resolve(&dir.join("../../etc/shadow")), Path::new("/etc/shadow"));
        assert_eq!(resolve(&dir.join("etc/new-file")), Path::new("/etc/new-file"));
        assert_eq!(resolve(&dir.join("nope/../../x")), real.parent().unwrap().join("x"));
        assert_eq!(resolve(&dir.join("new")), real.join("new"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn modes_and_globs_decide() {
        let mut g = Grant::none().with(Capability::Files);
        g.files = vec![FileRule::any_mode("/tmp/**"), FileRule::read_only("/var/log/*.log")];
        assert!(check_path(&g, "c", Path::new("/tmp/a"), "w+").is_ok());
        assert!(check_path(&g, "c", Path::new("/var/log/x.log"), "rb").is_ok());
        let e = check_path(&g, "c", Path::new("/var/log/x.log"), "a").unwrap_err();
        assert_eq!(
            e.to_string(),
            "permission denied: c may not open /var/log/x.log (mode 'a')"
        );
        assert!(check_path(&g, "c", Path::new("/etc/shadow"), "r").is_err());
        assert_eq!(base_mode("r+b"), "r+");
        assert_eq!(base_mode("ab+"), "a+");
    }
}
