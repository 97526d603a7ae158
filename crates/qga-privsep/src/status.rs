//! What `/proc/<pid>/status` says about a process's privilege: the proof
//! every drop is verified against.

use std::fs;
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path} has no valid {field} line")]
    Field { path: String, field: &'static str },
}

/// The privilege-related lines of `/proc/<pid>/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessStatus {
    pub cap_inheritable: u64,
    pub cap_permitted: u64,
    pub cap_effective: u64,
    pub cap_bounding: u64,
    pub cap_ambient: u64,
    pub no_new_privs: bool,
    /// 0 none, 1 strict, 2 filter.
    pub seccomp: u32,
    /// Real, effective, saved, filesystem.
    pub uids: [u32; 4],
    pub gids: [u32; 4],
    pub groups: Vec<u32>,
    pub threads: u32,
}

impl ProcessStatus {
    pub fn of_self() -> Result<Self, StatusError> {
        Self::read("/proc/self/status")
    }

    pub fn of_pid(pid: i32) -> Result<Self, StatusError> {
        Self::read(&format!("/proc/{pid}/status"))
    }

    fn read(path: &str) -> Result<Self, StatusError> {
        let text = fs::read_to_string(path).map_err(|source| StatusError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &str, text: &str) -> Result<Self, StatusError> {
        let line = |field: &'static str| {
            text.lines()
                .find_map(|l| l.strip_prefix(field).and_then(|rest| rest.strip_prefix(':')))
                .map(str::trim)
                .ok_or_else(|| StatusError::Field {
                    path: path.into(),
                    field,
                })
        };
        let bad = |field: &'static str| StatusError::Field {
            path: path.into(),
            field,
        };
        let hex = |field: &'static str| line(field).and_then(|v| u64::from_str_radix(v, 16).map_err(|_| bad(field)));
        let dec = |field: &'static str| line(field).and_then(|v| v.parse::<u32>().map_err(|_| bad(field)));
        let four = |field: &'static str| -> Result<[u32; 4], StatusError> {
            let values: Vec<u32> = line(field)?
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| bad(field))?;
            values.try_into().map_err(|_| bad(field))
        };
        Ok(Self {
            cap_inheritable: hex("CapInh")?,
            cap_permitted: hex("CapPrm")?,
            cap_effective: hex("CapEff")?,
            cap_bounding: hex("CapBnd")?,
            cap_ambient: hex("CapAmb")?,
            no_new_privs: dec("NoNewPrivs")? == 1,
            seccomp: dec("Seccomp")?,
            uids: four("Uid")?,
            gids: four("Gid")?,
            groups: line("Groups")?
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|_| bad("Groups"))?,
            threads: dec("Threads")?,
        })
    }
}
