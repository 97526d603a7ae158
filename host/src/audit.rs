//! The audit log (`--audit-log FILE`, config key `audit-log`): one JSON
//! line per request and per policy/component event.
//!
//! The file is created with mode 0600 (an existing file is tightened to
//! 0600) and opened `O_APPEND`; every line is one `write(2)`, so lines from
//! concurrent clients never interleave and the agent never rewrites what it
//! wrote. Fsync policy: lifecycle events (start, policy load/reload, component
//! load/swap/reject) are followed by `fdatasync`; request lines are not
//! individually synced (they reach the page cache at once and survive an
//! agent crash; on power loss the last moments of request lines may be lost),
//! and the file is `fdatasync`ed at most once per [`SYNC_INTERVAL`] while
//! requests flow.
//!
//! Argument values are never written: a request line holds the command name,
//! never its `arguments`, and an outcome *class*, never an error text (error
//! texts can quote argument values).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value as Json};
use thiserror::Error;

/// Request lines are fdatasync'ed at most this often.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("cannot open audit log {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
}

struct Sink {
    file: File,
    last_sync: Instant,
    /// A write error was already reported (report once, not per request).
    failing: bool,
}

pub struct AuditLog {
    path: PathBuf,
    sink: Mutex<Sink>,
}

/// One request as the audit log records it.
#[derive(Debug, Clone)]
pub struct RequestEvent<'a> {
    pub channel: &'a str,
    /// None when the message was not a valid request.
    pub command: Option<&'a str>,
    /// "allow", "disabled" (compat flags), "deny" (policy), "not-found", "invalid".
    pub decision: &'a str,
    pub rule: Option<&'a str>,
    /// sha256 of the component that ran it (None for host-native commands).
    pub component: Option<&'a str>,
    pub duration: Duration,
    /// "ok", "no-reply", or the error class ("GenericError", "CommandNotFound").
    pub outcome: &'a str,
}

impl AuditLog {
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let err = |source| AuditError::Open {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(err)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(err)?;
        Ok(AuditLog {
            path: path.to_owned(),
            sink: Mutex::new(Sink {
                file,
                last_sync: Instant::now(),
                failing: false,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record one request.
    pub fn request(&self, ev: &RequestEvent<'_>) {
        let mut m = Map::new();
        m.insert("time".into(), Json::from(now_rfc3339()));
        m.insert("event".into(), Json::from("request"));
        m.insert("channel".into(), Json::from(ev.channel));
        m.insert("command".into(), ev.command.map_or(Json::Null, Json::from));
        m.insert("decision".into(), Json::from(ev.decision));
        m.insert("rule".into(), ev.rule.map_or(Json::Null, Json::from));
        m.insert("component".into(), ev.component.map_or(Json::Null, Json::from));
        m.insert(
            "duration_us".into(),
            Json::from(u64::try_from(ev.duration.as_micros()).unwrap_or(u64::MAX)),
        );
        m.insert("outcome".into(), Json::from(ev.outcome));
        self.write(&Json::Object(m), false);
    }

    /// Record a lifecycle event (`policy-load`, `policy-reload`,
    /// `policy-reject`, `component-load`, `component-swap`,
    /// `component-reject`, …) with its fields; synced to disk.
    pub fn event(&self, event: &str, fields: Map<String, Json>) {
        let mut m = Map::new();
        m.insert("time".into(), Json::from(now_rfc3339()));
        m.insert("event".into(), Json::from(event));
        m.extend(fields);
        self.write(&Json::Object(m), true);
    }

    fn write(&self, line: &Json, sync: bool) {
        let mut text = line.to_string();
        text.push('\n');
        let mut sink = self.sink.lock().unwrap_or_else(|p| p.into_inner());
        let result = sink.file.write_all(text.as_bytes()).and_then(|()| {
            if sync || sink.last_sync.elapsed() >= SYNC_INTERVAL {
                sink.last_sync = Instant::now();
                sink.file.sync_data()
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => sink.failing = false,
            Err(e) if !sink.failing => {
                sink.failing = true;
                tracing::error!("cannot write audit log {}: {e}", self.path.display());
            }
            Err(_) => {}
        }
    }
}

/// `2025-01-31T12:34:56.789Z`.
pub fn now_rfc3339() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, mo, d) = qga_text::civil::from_days(days as i64);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_is_private_and_appended() {
        let dir = std::env::temp_dir().join(format!("qga-audit-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        std::fs::write(&path, "earlier\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let log = AuditLog::open(&path).unwrap();
        log.request(&RequestEvent {
            channel: "unix:1",
            command: Some("guest-ping"),
            decision: "allow",
            rule: Some("r"),
            component: None,
            duration: Duration::from_micros(12),
            outcome: "ok",
        });
        log.event("policy-load", Map::new());
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "earlier");
        let first: Json = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(first["command"], "guest-ping");
        assert_eq!(first["duration_us"], 12);
        assert_eq!(first["outcome"], "ok");
        let second: Json = serde_json::from_str(lines[2]).unwrap();
        assert_eq!(second["event"], "policy-load");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
