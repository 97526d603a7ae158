//! Reading the agent's audit log (one JSON object a line) in tests.

use std::path::Path;

/// The audit log's events named `event`, in order; a line that is not
/// (yet) a whole JSON object is skipped, as a reader racing the writer
/// must.
pub fn events(audit: &Path, event: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(audit)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == event)
        .collect()
}
