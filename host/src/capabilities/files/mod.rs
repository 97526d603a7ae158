//! `qga:agent/files`: guest-file-* on the open-file table, which outlives
//! every call (it and the persistent handle counter live in
//! [`crate::state::open_files`]).
//!
//! Grants are per command ([`FileOp`]): only an `open` grant opens, and
//! its path is resolved race-free ([`super::resolve`]): the grant is
//! matched against the resolved path of the object actually opened, a new
//! file is created O_EXCL through its checked parent, and truncation
//! happens after the check, on the checked descriptor. Each handle records
//! its open mode; reads and writes on a handle whose mode does not allow
//! them fail with EBADF's text, as qemu-ga's do.

pub mod settings;
mod sys;

use std::fs::File;
use std::path::Path;

use wasmtime::component::{HasData, Linker, ResourceTable};

use super::BlobData;
use super::qga::agent::files::{Chunk, FileError, Host, OpenMode, Whence};
use super::resolve::{self, OFlag, Target};
use super::{CallCtx, Capability, Denied, Grant, glob};
use crate::limits::CallLimiter;

mod mode;
pub use crate::state::Access;
pub use crate::state::open_files::{
    AddError, FIRST_HANDLE, FileTable, MAX_OPEN_FILES, OpenFile, STATE_FILE, format_state, parse_state,
};
pub use mode::{access_of, base, mode_name, open_flags};

/// One grant rule of the files capability: paths matching `pattern` may be
/// opened in any of `modes` (qemu-ga mode names without `b`: r r+ w w+ a a+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRule {
    pub pattern: String,
    pub modes: Vec<String>,
}

/// All six qemu-ga modes.
pub const ALL_MODES: [&str; 6] = ["r", "r+", "w", "w+", "a", "a+"];

/// What a command may do with guest files.
#[derive(Debug, Clone, PartialEq)]
pub struct FilesGrant {
    /// Which paths may be opened in which modes (matched against the
    /// resolved path of the object opened). Only an `open` grant uses them.
    pub rules: Vec<FileRule>,
    /// Which operations of the open-file table the command may use
    /// (guest-file-read only reads handles, guest-file-flush opens nothing).
    pub ops: std::collections::BTreeSet<FileOp>,
}

impl FilesGrant {
    /// No path and no operation.
    pub fn nothing() -> FilesGrant {
        FilesGrant {
            rules: Vec::new(),
            ops: std::collections::BTreeSet::new(),
        }
    }
}

/// One operation of the files capability, granted per command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FileOp {
    Open,
    Read,
    Write,
    Seek,
    Flush,
    Close,
}

impl FileOp {
    pub const ALL: [FileOp; 6] = [
        FileOp::Open,
        FileOp::Read,
        FileOp::Write,
        FileOp::Seek,
        FileOp::Flush,
        FileOp::Close,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FileOp::Open => "open",
            FileOp::Read => "read",
            FileOp::Write => "write",
            FileOp::Seek => "seek",
            FileOp::Flush => "flush",
            FileOp::Close => "close",
        }
    }
}

/// Most times an open resolves its path again when a file appeared where
/// it was about to create one.
const MAX_CREATE_RACES: usize = 8;

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

/// The grant check of an open: the resolved path must match a rule that
/// allows the mode.
pub fn check_path(grant: &Grant, command: &str, resolved: &Path, mode: &str) -> Result<(), Denied> {
    let base = base_mode(mode);
    // Matched as bytes: a name that is not UTF-8 is never taken for its
    // lossy text (the message shows that text).
    if grant
        .files
        .rules
        .iter()
        .any(|r| r.modes.contains(&base) && glob::matches_path(&r.pattern, resolved))
    {
        Ok(())
    } else {
        Err(Denied::File {
            command: command.to_owned(),
            path: resolved.to_string_lossy().into_owned(),
            mode: mode.to_owned(),
        })
    }
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

fn os(e: &std::io::Error) -> FileError {
    FileError::Os(super::io_strerror(e))
}

/// What the files capability sees of a call: the command and its grant,
/// the agent's open-file table, and the call's resource table and memory
/// budget (a read returns a blob). Nothing of another capability.
pub struct FilesView<'a> {
    command: &'a str,
    grant: &'a Grant,
    files: &'a FileTable,
    table: &'a mut ResourceTable,
    limiter: &'a mut CallLimiter,
}

/// The files capability's store data, as a linker sees it.
pub struct Files;

impl HasData for Files {
    type Data<'a> = FilesView<'a>;
}

/// Link the files interface: each call sees only [`FilesView`].
pub fn add_to_linker(linker: &mut Linker<CallCtx>) -> wasmtime::Result<()> {
    super::qga::agent::files::add_to_linker::<CallCtx, Files>(linker, |c| FilesView {
        command: &c.command,
        grant: &c.grant,
        files: &c.state.files,
        table: &mut c.table,
        limiter: &mut c.limiter,
    })
}

impl FilesView<'_> {
    /// The command holds `files` and this operation of it.
    fn files_allowed(&self, op: FileOp) -> wasmtime::Result<()> {
        self.grant.require(self.command, Capability::Files)?;
        if !self.grant.files.ops.contains(&op) {
            return Err(Denied::FileOp {
                command: self.command.to_string(),
                op: op.name().to_owned(),
            }
            .into());
        }
        Ok(())
    }

    fn open_file(&self, handle: i64) -> Result<OpenFile, FileError> {
        self.files.get(handle).ok_or(FileError::NoHandle)
    }

    /// Resolve, check and open `path`: the file opened is the object
    /// whose resolved path matched the grant, whatever is swapped meanwhile.
    fn open_checked(&self, path: &Path, mode: OpenMode) -> Result<Result<File, FileError>, Denied> {
        let name = mode_name(mode);
        let access = access_of(mode);
        let flags = open_flags(access) | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
        for _ in 0..MAX_CREATE_RACES {
            let target = match resolve::resolve(path, access.create) {
                Ok(t) => t,
                Err(e) => {
                    // Fail closed: where resolution stopped must be inside
                    // the grant for the caller to learn why.
                    check_path(self.grant, self.command, &e.at, name)?;
                    return Ok(Err(os(&e.io())));
                }
            };
            match target {
                Target::Existing(found) => {
                    check_path(self.grant, self.command, &found.path, name)?;
                    let file = match found.open(flags) {
                        Ok(f) => f,
                        Err(e) => return Ok(Err(os(&e))),
                    };
                    // O_TRUNC only now, on the checked descriptor (a FIFO
                    // or a device is not truncated, as O_TRUNC ignores them).
                    if access.truncate
                        && found.kind == resolve::Kind::Regular
                        && let Err(e) = file.set_len(0)
                    {
                        return Ok(Err(os(&e)));
                    }
                    return Ok(Ok(file));
                }
                Target::Missing(missing) => {
                    check_path(self.grant, self.command, &missing.path, name)?;
                    match missing.create(flags, sys::NEW_FILE_MODE) {
                        Ok(f) => return Ok(Ok(f)),
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                        Err(e) => return Ok(Err(os(&e))),
                    }
                }
            }
        }
        Ok(Err(os(&std::io::Error::from_raw_os_error(libc::EEXIST))))
    }
}

impl Host for FilesView<'_> {
    fn open(&mut self, path: String, mode: OpenMode) -> wasmtime::Result<Result<i64, FileError>> {
        self.files_allowed(FileOp::Open)?;
        let path = super::c_string(&path);
        // Before opening: a refused open must not create or truncate.
        if !self.files.has_room() {
            return Ok(Err(AddError::Full.into()));
        }
        let file = match self.open_checked(Path::new(&path), mode)? {
            Ok(f) => f,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.files.add(file, access_of(mode)).map_err(FileError::from))
    }

    fn exists(&mut self, handle: i64) -> wasmtime::Result<bool> {
        self.grant.require(self.command, Capability::Files)?;
        Ok(self.files.get(handle).is_some())
    }

    fn read(&mut self, handle: i64, count: u64) -> wasmtime::Result<Result<Chunk, FileError>> {
        self.files_allowed(FileOp::Read)?;
        // qemu-ga's GUEST_FILE_READ_COUNT_MAX, whatever the handler asks.
        let count = count.min(48 << 20);
        let read = self.open_file(handle).and_then(|f| {
            // A read of nothing touches nothing (qemu-ga's fread of 0).
            if !f.access.read && count > 0 {
                return Err(os(&std::io::Error::from_raw_os_error(libc::EBADF)));
            }
            sys::read(&f.file, count).map_err(|e| os(&e))
        });
        let (bytes, eof) = match read {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        Ok(Ok(Chunk {
            count: bytes.len() as u64,
            data: BlobData::push_base64(self.table, self.limiter, &bytes)?,
            eof,
        }))
    }

    fn write(&mut self, handle: i64, data: Vec<u8>) -> wasmtime::Result<Result<u64, FileError>> {
        self.files_allowed(FileOp::Write)?;
        Ok(self.open_file(handle).and_then(|f| {
            if !f.access.write && !data.is_empty() {
                return Err(os(&std::io::Error::from_raw_os_error(libc::EBADF)));
            }
            sys::write(&f.file, &data).map_err(|e| os(&e))?;
            Ok(data.len() as u64)
        }))
    }

    fn seek(&mut self, handle: i64, offset: i64, whence: Whence) -> wasmtime::Result<Result<u64, FileError>> {
        self.files_allowed(FileOp::Seek)?;
        let whence = match whence {
            Whence::Set => sys::Whence::Set,
            Whence::Cur => sys::Whence::Cur,
            Whence::End => sys::Whence::End,
        };
        Ok(self
            .open_file(handle)
            .and_then(|f| sys::seek(&f.file, offset, whence).map_err(|e| os(&e))))
    }

    fn flush(&mut self, handle: i64) -> wasmtime::Result<Result<(), FileError>> {
        self.files_allowed(FileOp::Flush)?;
        // Writes are not buffered in the agent: nothing to push (qemu-ga's
        // fflush does not fsync either).
        Ok(self.open_file(handle).map(|_| ()))
    }

    fn close(&mut self, handle: i64) -> wasmtime::Result<Result<(), FileError>> {
        self.files_allowed(FileOp::Close)?;
        Ok(self.files.remove(handle).map(drop).ok_or(FileError::NoHandle))
    }
}

#[cfg(test)]
mod tests;
