//! Test support: running a closure in a forked child, so that dropping
//! privilege, Landlock and seccomp never touch the test runner itself.
#![allow(dead_code)]

pub mod sys;

use std::io::{Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A child still running after this long is killed (SIGALRM): a hang guard,
/// not a timing assertion.
pub const HANG_GUARD_SECONDS: u32 = 300;

/// Runs `body` in a forked child and returns what it returned (a panic in
/// the child is an `Err` with its message).
pub fn in_child(body: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let (mut reader, mut writer) = std::io::pipe().map_err(|e| e.to_string())?;
    match sys::fork().map_err(|e| e.to_string())? {
        None => {
            drop(reader);
            sys::alarm(HANG_GUARD_SECONDS);
            let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|panic| {
                let text = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                Err(format!("child panicked: {text}"))
            });
            let code = match outcome {
                Ok(()) => 0,
                Err(message) => {
                    let _ = writer.write_all(message.as_bytes());
                    1
                }
            };
            drop(writer);
            sys::exit_now(code)
        }
        Some(pid) => {
            drop(writer);
            let mut message = String::new();
            let _ = reader.read_to_string(&mut message);
            match sys::wait(pid).map_err(|e| e.to_string())? {
                Ok(0) => Ok(()),
                Ok(code) => Err(format!("child exited {code}: {message}")),
                Err(signal) => Err(format!("child killed by signal {signal}: {message}")),
            }
        }
    }
}

/// `Err` with a description unless `cond`.
pub fn ensure(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what()) }
}

/// The errno of an `io::Result`'s error, or a description of its success.
pub fn errno_of<T: std::fmt::Debug>(result: std::io::Result<T>) -> Result<i32, String> {
    match result {
        Ok(value) => Err(format!("succeeded with {value:?}")),
        Err(e) => e.raw_os_error().ok_or_else(|| format!("error without errno: {e}")),
    }
}

/// A fresh directory under the temp dir, world-writable so it stays usable
/// after a child drops to `nobody`; removed when dropped (in the process
/// that created it: forked children only borrow it).
pub struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn temp_dir(name: &str) -> TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("qga-privsep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    TempDir(dir)
}
