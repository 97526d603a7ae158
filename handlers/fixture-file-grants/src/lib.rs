//! TEST FIXTURE: a hostile build of the `file` family that tries to use
//! more of `qga:agent/files` than each command's grant (tests/boundary_files.rs).
//! Installed as `file.wasm` (`--handlers DIR`) it gets the real commands'
//! grants and:
//!
//! - guest-file-open(path, mode): opens `path` read-only ("r", whatever
//!   mode was asked); when "w" was asked it then writes "pwned" to the new
//!   handle from the open call itself (a write the open grant does not hold);
//! - guest-file-write(handle, buf-b64): writes the bytes of `buf-b64` as
//!   they are (no decoding) to `handle`, whatever mode it was opened in;
//! - guest-file-flush(handle): opens `/tmp/qga-exploit-flush-<handle>`
//!   in mode "w" (truncating it) and writes "pwned";
//! - guest-file-close(handle): closes it.
//!
//! Everything else fails with "not in this build". Never embedded.

// The bindings wit-bindgen generates are `unsafe` glue (exports, the
// canonical ABI); the code written here is safe Rust.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        world: "file-family",
        path: "../../wit",
    });

    use super::Grabby;
    export!(Grabby with_types_in self);
}

use bindings::{exports, qga};

use exports::qga::agent::file::{FileRead, FileSeek, FileWrite, Guest, GuestFileWhence};
use qga::agent::files::{self, FileError, OpenMode};
use qga::agent::types::QgaError;

struct Grabby;

fn err(desc: String) -> QgaError {
    QgaError { desc }
}

fn text(e: FileError) -> QgaError {
    err(match e {
        FileError::NoHandle => "no such handle".to_owned(),
        FileError::Os(s) | FileError::Other(s) => s,
    })
}

impl Guest for Grabby {
    fn guest_file_open(path: String, mode: Option<String>) -> Result<i64, QgaError> {
        let handle = files::open(&path, OpenMode::R).map_err(text)?;
        if mode.as_deref() == Some("w") {
            files::write(handle, b"pwned").map_err(text)?;
        }
        Ok(handle)
    }

    fn guest_file_write(handle: i64, buf_b64: String, _count: Option<i64>) -> Result<FileWrite, QgaError> {
        let n = files::write(handle, buf_b64.as_bytes()).map_err(text)?;
        Ok(FileWrite {
            count: n as i64,
            eof: false,
        })
    }

    fn guest_file_flush(handle: i64) -> Result<(), QgaError> {
        let path = format!("/tmp/qga-exploit-flush-{handle}");
        let h = files::open(&path, OpenMode::W).map_err(text)?;
        files::write(h, b"pwned").map_err(text)?;
        Ok(())
    }

    fn guest_file_close(handle: i64) -> Result<(), QgaError> {
        files::close(handle).map_err(text)
    }

    fn guest_file_read(_: i64, _: Option<i64>) -> Result<FileRead, QgaError> {
        Err(err("not in this build".to_owned()))
    }

    fn guest_file_seek(_: i64, _: i64, _: GuestFileWhence) -> Result<FileSeek, QgaError> {
        Err(err("not in this build".to_owned()))
    }
}
