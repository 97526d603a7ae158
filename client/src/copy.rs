//! `cp`: files in and out of the guest, chunk by chunk through
//! guest-file-open/-read/-write/-close. Copying out writes a temporary file
//! beside the destination and renames it at the end (no partial host file);
//! copying in writes `DST.part` and moves it with guest-exec `mv` when exec
//! is enabled, else writes DST in place and reports the bytes written.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::exec::{ExecError, Outcome, run};
use crate::progress::Progress;
use crate::session::{Session, SessionError};

const GUEST_PREFIX: &str = "guest:";

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("exactly one of SRC and DST must be guest:/path")]
    Sides,
    #[error("{0}")]
    Session(#[from] SessionError),
    #[error("{what} {path}: {source}")]
    Host {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{source}; {written} bytes were written to guest:{path}")]
    Partial {
        source: SessionError,
        written: u64,
        path: String,
    },
    #[error("{source}; nothing was written to {path}")]
    OutFailed { source: SessionError, path: String },
    #[error("guest:{path}: guest-file-read returned {reply}")]
    BadRead { path: String, reply: String },
    #[error("moving guest:{part} to guest:{path}: {detail}")]
    Move { part: String, path: String, detail: String },
    #[error("{0}; guest:{1} was removed")]
    PartRemoved(Box<CopyError>, String),
    #[error("--verify: {0}")]
    Verify(String),
    #[error("{0}")]
    Exec(#[from] ExecError),
}

pub struct CopyOptions {
    pub chunk: u64,
    pub verify: bool,
}

pub fn command(session: &mut Session, src: &str, dst: &str, options: &CopyOptions) -> Result<(), CopyError> {
    match (src.strip_prefix(GUEST_PREFIX), dst.strip_prefix(GUEST_PREFIX)) {
        (Some(guest), None) => copy_out(session, guest, Path::new(dst), options),
        (None, Some(guest)) => copy_in(session, Path::new(src), guest, options),
        (Some(_), Some(_)) | (None, None) => Err(CopyError::Sides),
    }
}

fn host_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CopyError {
    let path = path.display().to_string();
    move |source| CopyError::Host { what, path, source }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').find(|s| !s.is_empty()).unwrap_or(path)
}

/// A host file being written under a temporary name; removed unless kept.
struct TempFile {
    path: PathBuf,
    kept: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.kept {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn copy_out(session: &mut Session, guest: &str, dst: &Path, options: &CopyOptions) -> Result<(), CopyError> {
    let dst = if dst.is_dir() {
        dst.join(base_name(guest))
    } else {
        dst.to_path_buf()
    };
    let dir = match dst.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let handle = session
        .call("guest-file-open", Some(json!({"path": guest, "mode": "r"})))?
        .value;
    let total = guest_size(session, &handle);
    let temp = TempFile {
        path: dir.join(format!(".{name}.qga-client-{}", std::process::id())),
        kept: false,
    };
    let result = (|| {
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(&temp.path)
            .map_err(host_error("cannot create", &temp.path))?;
        let mut hasher = Sha256::new();
        let mut progress = Progress::new(total);
        loop {
            let reply = session
                .call(
                    "guest-file-read",
                    Some(json!({"handle": handle, "count": options.chunk})),
                )
                .map_err(|source| CopyError::OutFailed {
                    source,
                    path: dst.display().to_string(),
                })?
                .value;
            let data = reply
                .get("buf-b64")
                .and_then(Value::as_str)
                .and_then(|b| STANDARD.decode(b).ok())
                .ok_or_else(|| CopyError::BadRead {
                    path: guest.to_owned(),
                    reply: reply.to_string(),
                })?;
            file.write_all(&data).map_err(host_error("cannot write", &temp.path))?;
            hasher.update(&data);
            progress.advance(data.len() as u64);
            if data.is_empty() || reply.get("eof").and_then(Value::as_bool) == Some(true) {
                break;
            }
        }
        progress.finish();
        file.sync_all().map_err(host_error("cannot write", &temp.path))?;
        Ok(hasher.finalize())
    })();
    // After a channel failure (the agent stopped answering) the channel is
    // out of step: do not wait for a close that cannot be answered.
    if let Err(
        e @ CopyError::OutFailed {
            source: SessionError::During { .. },
            ..
        },
    ) = result
    {
        return Err(e);
    }
    let closed = session.call("guest-file-close", Some(json!({"handle": handle})));
    let digest = result?;
    closed?;
    std::fs::rename(&temp.path, &dst).map_err(host_error("cannot rename the copy to", &dst))?;
    let mut temp = temp;
    temp.kept = true;
    if options.verify {
        verify(session, guest, &hex(&digest))?;
    }
    Ok(())
}

/// The guest file's size (seek to its end and back), when the agent tells.
fn guest_size(session: &mut Session, handle: &Value) -> Option<u64> {
    let end = session
        .call(
            "guest-file-seek",
            Some(json!({"handle": handle, "offset": 0, "whence": "end"})),
        )
        .ok()?;
    session
        .call(
            "guest-file-seek",
            Some(json!({"handle": handle, "offset": 0, "whence": "set"})),
        )
        .ok()?;
    end.value.get("position").and_then(Value::as_u64)
}

fn copy_in(session: &mut Session, src: &Path, guest: &str, options: &CopyOptions) -> Result<(), CopyError> {
    let mut file = File::open(src).map_err(host_error("cannot open", src))?;
    let total = file.metadata().ok().map(|m| m.len());
    let can_exec = session.enabled(&["guest-exec", "guest-exec-status"])?;
    // Into a directory (named with a trailing slash, or one that exists when
    // exec can tell): under the source's name, as cp does.
    let into_dir = guest.ends_with('/') || (can_exec && is_guest_dir(session, guest)?);
    let guest = if into_dir {
        let name = src.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        format!("{}/{name}", guest.trim_end_matches('/'))
    } else {
        guest.to_owned()
    };
    let target = if can_exec {
        format!("{guest}.part")
    } else {
        guest.clone()
    };
    let handle = session
        .call("guest-file-open", Some(json!({"path": target, "mode": "w"})))?
        .value;
    let mut written = 0u64;
    let mut hasher = Sha256::new();
    let mut progress = Progress::new(total);
    let mut buffer = vec![0u8; options.chunk as usize];
    let partial = |source, written| CopyError::Partial {
        source,
        written,
        path: target.clone(),
    };
    let result = loop {
        let n = match read_full(&mut file, &mut buffer) {
            Ok(n) => n,
            Err(e) => break Err(host_error("cannot read", src)(e)),
        };
        if n == 0 {
            break Ok(());
        }
        let chunk = &buffer[..n];
        match session.call(
            "guest-file-write",
            Some(json!({"handle": handle, "buf-b64": STANDARD.encode(chunk)})),
        ) {
            Ok(reply) => {
                let count = reply.value.get("count").and_then(Value::as_u64).unwrap_or(0);
                written += count;
                if count != n as u64 {
                    break Err(CopyError::Partial {
                        source: SessionError::BadReply {
                            command: "guest-file-write".to_owned(),
                            text: format!("wrote {count} of {n} bytes"),
                        },
                        written,
                        path: target.clone(),
                    });
                }
            }
            Err(e) => break Err(partial(e, written)),
        }
        hasher.update(chunk);
        progress.advance(n as u64);
    };
    progress.finish();
    if let Err(e) = result {
        if !matches!(
            e,
            CopyError::Partial {
                source: SessionError::During { .. },
                ..
            }
        ) {
            let _ = session.call("guest-file-close", Some(json!({"handle": handle})));
            // The agent still answers: with exec, leave no half-written DST.part.
            if can_exec && remove_guest_file(session, &target) {
                return Err(CopyError::PartRemoved(Box::new(e), target));
            }
        }
        return Err(e);
    }
    if let Err(e) = session.call("guest-file-close", Some(json!({"handle": handle}))) {
        let answering = !matches!(e, SessionError::During { .. });
        let e = partial(e, written);
        if can_exec && answering && remove_guest_file(session, &target) {
            return Err(CopyError::PartRemoved(Box::new(e), target));
        }
        return Err(e);
    }
    if can_exec {
        // -T: never into a directory that appeared at DST meanwhile.
        let argv = ["mv", "-f", "-T", "--", &target, &guest].map(str::to_owned);
        let detail = match run(session, &argv, &[], None, None)? {
            Outcome::Exited { code: 0, .. } => None,
            Outcome::Exited { code, stderr, .. } => Some(format!(
                "mv exited with {code}: {}",
                String::from_utf8_lossy(&stderr).trim()
            )),
            Outcome::Killed { signal, .. } => Some(format!("mv was killed by signal {signal}")),
            Outcome::StillRunning { pid } => Some(format!("mv is still running as pid {pid}")),
        };
        if let Some(detail) = detail {
            return Err(CopyError::Move {
                part: target,
                path: guest,
                detail,
            });
        }
    }
    if options.verify {
        verify(session, &guest, &hex(&hasher.finalize()))?;
    }
    Ok(())
}

/// `rm -f -- path` in the guest; whether it worked.
fn remove_guest_file(session: &mut Session, path: &str) -> bool {
    let argv = ["rm", "-f", "--", path].map(str::to_owned);
    matches!(
        run(session, &argv, &[], None, None),
        Ok(Outcome::Exited { code: 0, .. })
    )
}

/// Whether `path` is a directory in the guest (`test -d` through exec).
fn is_guest_dir(session: &mut Session, path: &str) -> Result<bool, CopyError> {
    let argv = ["test", "-d", path].map(str::to_owned);
    Ok(matches!(
        run(session, &argv, &[], None, None)?,
        Outcome::Exited { code: 0, .. }
    ))
}

fn read_full(file: &mut File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compare `host_sha256` with `sha256sum` of the guest file, through
/// guest-exec; when exec is not enabled, say that the guest side was not
/// checked.
fn verify(session: &mut Session, guest: &str, host_sha256: &str) -> Result<(), CopyError> {
    if !session.enabled(&["guest-exec", "guest-exec-status"])? {
        eprintln!(
            "qga-client: --verify: guest-exec is not enabled on this agent, so the guest's copy was not checked \
             (host SHA-256 {host_sha256})"
        );
        return Ok(());
    }
    let argv = ["sha256sum", "--", guest].map(str::to_owned);
    match run(session, &argv, &[], None, None)? {
        Outcome::Exited { code: 0, stdout, .. } => {
            let text = String::from_utf8_lossy(&stdout);
            let guest_sha256 = text.split_whitespace().next().unwrap_or("");
            if guest_sha256 == host_sha256 {
                eprintln!("qga-client: verified: SHA-256 {host_sha256} on both sides");
                Ok(())
            } else {
                Err(CopyError::Verify(format!(
                    "SHA-256 differs: host {host_sha256}, guest {guest_sha256}"
                )))
            }
        }
        Outcome::Exited { code, stderr, .. } => Err(CopyError::Verify(format!(
            "sha256sum in the guest exited with {code}: {}",
            String::from_utf8_lossy(&stderr).trim()
        ))),
        Outcome::Killed { signal, .. } => Err(CopyError::Verify(format!(
            "sha256sum in the guest was killed by signal {signal}"
        ))),
        Outcome::StillRunning { .. } => Err(CopyError::Verify("sha256sum did not finish".to_owned())),
    }
}
