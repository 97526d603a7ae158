//! TEST FIXTURE: a hostile build of the `file`, `exec` and `system-info`
//! families. Installed under one of those names (`--handlers DIR`), it
//! replaces that family, gets the real commands' grants, and abuses them:
//!
//! - guest-file-open(path): opens `path` read-only again and again without
//!   closing, until the host refuses (or 100 000 times);
//! - guest-file-close(handle): closes `handle` and every open handle after
//!   it (a test's clean-up);
//! - guest-file-read(handle, count): reads `count` bytes at a time and keeps
//!   every chunk (the host holds their data); at the end of a handle's file
//!   it goes on with the next handle (the read grant has no seek), until
//!   the host refuses or the deadline;
//! - guest-exec(path, arg, …): starts the program again and again, until
//!   the host refuses (or 100 000 times);
//! - guest-exec-status(pid): asks for the child's status forever;
//! - guest-get-time: reads the clock forever;
//! - guest-get-osinfo: reads /etc/os-release forever;
//! - guest-get-load: reads /proc/net/route, which only
//!   guest-network-get-route may read.
//!
//! Everything else fails with "not in this build". Never embedded.

// The bindings wit-bindgen generates are `unsafe` glue (exports, the
// canonical ABI); the code written here is safe Rust.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        world: "fixture-hostile",
        path: "../../wit",
    });

    use super::Hostile;
    export!(Hostile with_types_in self);
}

use bindings::{exports, qga};

use exports::qga::agent::exec::{ExecStarted, ExecStatus, Guest as ExecGuest, GuestExecCaptureOutput};
use exports::qga::agent::file::{FileRead, FileSeek, FileWrite, Guest as FileGuest, GuestFileWhence};
use exports::qga::agent::system_info::{
    Guest as SystemInfoGuest, GuestHostName, GuestLoadAverage, GuestOsInfo, GuestTimezone, GuestUser,
};
use qga::agent::files::{self, FileError, OpenMode};
use qga::agent::types::QgaError;
use qga::agent::{clock, process, read_file};

/// Most repetitions of the loops that stop when the host refuses.
const TRIES: u32 = 100_000;

struct Hostile;

fn err(desc: String) -> QgaError {
    QgaError { desc }
}

fn absent<T>() -> Result<T, QgaError> {
    Err(err("not in this build".to_owned()))
}

fn file_error(e: FileError) -> String {
    match e {
        FileError::NoHandle => "no such handle".to_owned(),
        FileError::Os(s) | FileError::Other(s) => s,
    }
}

impl FileGuest for Hostile {
    fn guest_file_open(path: String, _mode: Option<String>) -> Result<i64, QgaError> {
        for opened in 0..TRIES {
            if let Err(e) = files::open(&path, OpenMode::R) {
                return Err(err(format!("opened {opened}, then: {}", file_error(e))));
            }
        }
        Ok(i64::from(TRIES))
    }

    fn guest_file_close(handle: i64) -> Result<(), QgaError> {
        let mut next = handle;
        while files::exists(next) {
            files::close(next).map_err(|e| err(file_error(e)))?;
            next += 1;
        }
        Ok(())
    }

    fn guest_file_read(handle: i64, count: Option<i64>) -> Result<FileRead, QgaError> {
        let count = count.unwrap_or(4096).max(0) as u64;
        // guest-file-read may only read (seeking back is not its grant):
        // at the end of one handle's file, go on with the next handle.
        let mut kept = Vec::new();
        let mut handle = handle;
        loop {
            let chunk = files::read(handle, count).map_err(|e| err(file_error(e)))?;
            if chunk.eof {
                handle += 1;
            }
            kept.push(chunk);
        }
    }

    fn guest_file_write(_: i64, _: String, _: Option<i64>) -> Result<FileWrite, QgaError> {
        absent()
    }

    fn guest_file_seek(_: i64, _: i64, _: GuestFileWhence) -> Result<FileSeek, QgaError> {
        absent()
    }

    fn guest_file_flush(_: i64) -> Result<(), QgaError> {
        absent()
    }
}

impl ExecGuest for Hostile {
    fn guest_exec_status(pid: i64) -> Result<ExecStatus, QgaError> {
        loop {
            std::hint::black_box(process::status(pid));
        }
    }

    fn guest_exec(
        path: String,
        arg: Option<Vec<String>>,
        env: Option<Vec<String>>,
        _input_data: Option<String>,
        capture_output: Option<GuestExecCaptureOutput>,
    ) -> Result<ExecStarted, QgaError> {
        let req = process::SpawnRequest {
            path,
            args: arg.unwrap_or_default(),
            env,
            input: None,
            capture: match capture_output {
                Some(GuestExecCaptureOutput::Flag(true)) => process::CaptureMode::Separated,
                _ => process::CaptureMode::None,
            },
        };
        for started in 0..TRIES {
            if let Err(e) = process::spawn(&req) {
                return Err(err(format!("started {started}, then: {e}")));
            }
        }
        Ok(ExecStarted { pid: i64::from(TRIES) })
    }
}

impl SystemInfoGuest for Hostile {
    fn guest_get_time() -> Result<i64, QgaError> {
        loop {
            std::hint::black_box(clock::now_ns());
        }
    }

    fn guest_get_osinfo() -> Result<GuestOsInfo, QgaError> {
        loop {
            let _ = std::hint::black_box(read_file::read("/etc/os-release"));
        }
    }

    fn guest_get_host_name() -> Result<GuestHostName, QgaError> {
        absent()
    }

    fn guest_get_timezone() -> Result<GuestTimezone, QgaError> {
        absent()
    }

    fn guest_get_users() -> Result<Vec<GuestUser>, QgaError> {
        absent()
    }

    fn guest_get_load() -> Result<GuestLoadAverage, QgaError> {
        let table = read_file::read("/proc/net/route");
        Err(err(format!(
            "read /proc/net/route: {} bytes",
            table.map(|t| t.len()).unwrap_or(0)
        )))
    }
}
