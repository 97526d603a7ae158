//! Linux capabilities by name and number, and sets of them.

use std::fmt;
use std::fs;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CapsError {
    #[error("unknown Linux capability {0:?}")]
    Unknown(String),
    #[error("reading /proc/sys/kernel/cap_last_cap: {0}")]
    LastCap(String),
}

/// Every capability this crate knows, by number (`linux/capability.h`).
pub const NAMES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A set of capabilities, as the kernel's 64-bit masks.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSet(u64);

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);

    pub fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    pub fn bits(self) -> u64 {
        self.0
    }

    /// Parses names such as `CAP_SYS_ADMIN`; an unknown name is an error,
    /// never silently ignored.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self, CapsError> {
        names.iter().try_fold(Self::EMPTY, |set, name| {
            let name = name.as_ref();
            let number = NAMES
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| CapsError::Unknown(name.into()))?;
            Ok(set.with(number as u32))
        })
    }

    pub fn with(self, cap: u32) -> Self {
        Self(self.0 | (1 << cap))
    }

    pub fn contains(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    pub fn intersect(self, other: CapSet) -> CapSet {
        CapSet(self.0 & other.0)
    }

    pub fn names(self) -> impl Iterator<Item = String> {
        (0..64u32)
            .filter(move |&c| self.contains(c))
            .map(|c| match NAMES.get(c as usize) {
                Some(name) => (*name).to_owned(),
                None => format!("CAP_{c}"),
            })
    }
}

impl fmt::Debug for CapSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// The highest capability number the running kernel knows.
pub fn last_cap() -> Result<u32, CapsError> {
    let text = fs::read_to_string("/proc/sys/kernel/cap_last_cap").map_err(|e| CapsError::LastCap(e.to_string()))?;
    text.trim()
        .parse()
        .map_err(|_| CapsError::LastCap(format!("not a number: {text:?}")))
}
