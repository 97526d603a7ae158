//! The audit log (`--audit-log FILE`, config key `audit-log`): one JSON
//! line per request and per policy/component event.
//!
//! The file is created with mode 0600 (an existing file is tightened to
//! 0600 through the opened descriptor; a symlink at the path is refused)
//! and opened `O_APPEND`; every line is one `write(2)`, so lines from
//! concurrent clients never interleave and the agent never rewrites what it
//! wrote. Fsync policy: lifecycle events (start, policy load/reload, component
//! load/swap/reject) are followed by `fdatasync`; request lines are not
//! individually synced (they reach the page cache at once and survive an
//! agent crash; on power loss the last moments of request lines may be lost),
//! and the file is `fdatasync`ed at most once per [`SYNC_INTERVAL`] while
//! requests flow. While a freeze runs, lines wait in memory (bounded; an
//! overflow is counted and reported in a `lines-dropped` event) and are
//! written after the thaw: see [`crate::logfile`].
//!
//! Argument values are never written: a request line holds the command name,
//! never its `arguments`, and an outcome *class*, never an error text (error
//! texts can quote argument values).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value as Json};
use thiserror::Error;

use crate::logfile::{Durability, LogFile, LogFileError};
use crate::write_gate::WriteGate;

/// Request lines are fdatasync'ed at most this often.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("cannot open audit log {path}: {source}")]
    Open { path: PathBuf, source: LogFileError },
}

pub struct AuditLog {
    sink: Arc<LogFile>,
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
    /// Open (or create) the log at `path`; while `gate` is closed (a
    /// freeze) lines are kept in memory and written after the thaw.
    pub fn open(path: &Path, gate: Arc<WriteGate>) -> Result<AuditLog, AuditError> {
        let sink = LogFile::open(path, true, gate, SYNC_INTERVAL, dropped_line).map_err(|source| AuditError::Open {
            path: path.to_owned(),
            source,
        })?;
        Ok(AuditLog { sink })
    }

    pub fn path(&self) -> &Path {
        self.sink.path()
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
        let durability = if sync { Durability::Sync } else { Durability::Batched };
        self.sink.write_line(text.as_bytes(), durability);
    }
}

/// The line written after a thaw when lines were dropped while frozen.
fn dropped_line(count: u64) -> String {
    let mut m = Map::new();
    m.insert("time".into(), Json::from(now_rfc3339()));
    m.insert("event".into(), Json::from("lines-dropped"));
    m.insert("count".into(), Json::from(count));
    m.insert("reason".into(), Json::from("filesystems were frozen"));
    Json::Object(m).to_string()
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
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn file_is_private_and_appended() {
        let dir = std::env::temp_dir().join(format!("qga-audit-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        std::fs::write(&path, "earlier\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let log = AuditLog::open(&path, WriteGate::new()).unwrap();
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
