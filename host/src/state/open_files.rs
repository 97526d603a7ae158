//! guest-file-*'s open files and the persistent handle counter, held by
//! the host so they outlive every call (and a swap of the handler
//! component). Handles come from a counter persisted in the state
//! directory exactly as qemu-ga keeps it: `<statedir>/qga.state`, a GLib
//! key file `[global]\nfd_counter=N\n`, rewritten before each handle is
//! returned. What may be opened, and how, is the files capability's
//! business (`capabilities::files`).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::Access;

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

/// The host's open files and the persistent handle counter.
pub struct FileTable {
    state_path: PathBuf,
    inner: Mutex<Table>,
}

struct Table {
    next: i64,
    open: HashMap<i64, OpenFile>,
}

/// An open file and what its recorded open mode allows.
#[derive(Debug, Clone)]
pub struct OpenFile {
    pub file: Arc<File>,
    pub access: Access,
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
                        crate::errno_text::io_strerror(&e)
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
    pub fn add(&self, file: File, access: Access) -> Result<i64, AddError> {
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
                crate::errno_text::io_strerror(&e)
            );
            return Err(AddError::Commit);
        }
        t.open.insert(
            handle,
            OpenFile {
                file: Arc::new(file),
                access,
            },
        );
        Ok(handle)
    }

    pub fn get(&self, handle: i64) -> Option<OpenFile> {
        self.lock().open.get(&handle).cloned()
    }

    pub fn remove(&self, handle: i64) -> Option<OpenFile> {
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
