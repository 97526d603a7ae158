//! Host capabilities: the WIT interfaces handlers import (`wit/cap-*.wit`),
//! implemented by the host, and the grants that say which command may call
//! which of them with which arguments.
//!
//! Each capability is a module: `mod.rs` (the WIT host impl and its grant
//! checks, safe Rust) and `sys.rs` (the syscalls; any `unsafe` lives there).
//! Grants are data, computed before any wasm runs and checked in one helper
//! ([`Grant::require`]) that returns a permission error.

pub mod clock;
pub mod freeze;
pub mod fs_stat;
pub mod host_info;
pub mod read_file;
pub mod trim;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::runtime::limits::CallLimiter;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "host-capabilities",
    imports: { default: trappable },
});

pub use self::qga::agent::types::QgaError;

/// A capability interface of the WIT package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    Clock,
    HostInfo,
    ReadFile,
    Freeze,
    Trim,
    FsStat,
}

impl Capability {
    pub const ALL: [Capability; 6] = [
        Capability::Clock,
        Capability::HostInfo,
        Capability::ReadFile,
        Capability::Freeze,
        Capability::Trim,
        Capability::FsStat,
    ];

    /// The interface's name as a component imports it.
    pub fn interface(self) -> &'static str {
        match self {
            Capability::Clock => "qga:agent/clock",
            Capability::HostInfo => "qga:agent/host-info",
            Capability::ReadFile => "qga:agent/read-file",
            Capability::Freeze => "qga:agent/freeze",
            Capability::Trim => "qga:agent/trim",
            Capability::FsStat => "qga:agent/fs-stat",
        }
    }

    pub fn from_interface(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.interface() == name)
    }

    /// Link this capability's host implementation.
    pub fn add_to_linker(self, linker: &mut Linker<CallCtx>) -> wasmtime::Result<()> {
        match self {
            Capability::Clock => qga::agent::clock::add_to_linker::<CallCtx, HasSelf<CallCtx>>(linker, |c| c),
            Capability::HostInfo => qga::agent::host_info::add_to_linker::<CallCtx, HasSelf<CallCtx>>(linker, |c| c),
            Capability::ReadFile => qga::agent::read_file::add_to_linker::<CallCtx, HasSelf<CallCtx>>(linker, |c| c),
            Capability::Freeze => qga::agent::freeze::add_to_linker::<CallCtx, HasSelf<CallCtx>>(linker, |c| c),
            Capability::Trim => qga::agent::trim::add_to_linker::<CallCtx, HasSelf<CallCtx>>(linker, |c| c),
            Capability::FsStat => qga::agent::fs_stat::add_to_linker::<CallCtx, HasSelf<CallCtx>>(linker, |c| c),
        }
    }
}

/// A directory made visible to the handler through WASI.
#[derive(Debug, Clone, PartialEq)]
pub struct Preopen {
    pub host: PathBuf,
    pub guest: String,
    pub writable: bool,
}

/// What one command may do, and its limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Grant {
    pub capabilities: BTreeSet<Capability>,
    /// read-file: exact paths the command may read.
    pub read_files: Vec<PathBuf>,
    /// read-file: at most this many bytes per read.
    pub read_limit: u64,
    /// WASI environment variables visible to the handler.
    pub env: Vec<(String, String)>,
    /// WASI preopened directories.
    pub preopens: Vec<Preopen>,
    /// Cap on the instance's linear memory (and tables), bytes.
    pub memory_bytes: usize,
    /// Wall-clock deadline for the handler's own code.
    pub deadline: Duration,
    /// Cap on the JSON reply, bytes.
    pub reply_limit: usize,
    /// freeze, trim, fs-stat: mount points the command may act on. Each
    /// pattern is `*` (any), `DIR/**` (DIR and everything under it) or an
    /// exact path.
    pub mounts: Vec<String>,
}

pub const DEFAULT_MEMORY: usize = 64 << 20;
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
pub const DEFAULT_REPLY_LIMIT: usize = 16 << 20;

impl Grant {
    /// Nothing but the defaults: no capability, no file, no environment.
    pub fn none() -> Grant {
        Grant {
            capabilities: BTreeSet::new(),
            read_files: Vec::new(),
            read_limit: 1 << 20,
            env: Vec::new(),
            preopens: Vec::new(),
            memory_bytes: DEFAULT_MEMORY,
            deadline: DEFAULT_DEADLINE,
            reply_limit: DEFAULT_REPLY_LIMIT,
            mounts: Vec::new(),
        }
    }

    /// Whether the grant's mount patterns cover `path`.
    pub fn allows_mount(&self, path: &str) -> bool {
        self.mounts.iter().any(|pattern| mount_pattern_matches(pattern, path))
    }

    pub fn with(mut self, cap: Capability) -> Grant {
        self.capabilities.insert(cap);
        self
    }

    pub fn allows(&self, cap: Capability) -> bool {
        self.capabilities.contains(&cap)
    }

    /// The one grant check: `Ok` or a permission error that fails the call.
    pub fn require(&self, command: &str, cap: Capability) -> Result<(), Denied> {
        if self.allows(cap) {
            Ok(())
        } else {
            Err(Denied::Capability {
                command: command.to_owned(),
                interface: cap.interface().to_owned(),
            })
        }
    }

    /// The built-in least-privilege grant of a command (the default policy).
    /// `env` is the agent's environment (for `QGA_OS_RELEASE`).
    pub fn builtin(command: &str, env: &dyn Fn(&str) -> Option<String>) -> Grant {
        match command {
            "guest-get-time" | "guest-get-timezone" => Grant::none().with(Capability::Clock),
            "guest-get-host-name" => Grant::none().with(Capability::HostInfo),
            "guest-get-osinfo" => {
                let mut g = Grant::none().with(Capability::HostInfo).with(Capability::ReadFile);
                match env("QGA_OS_RELEASE") {
                    Some(path) => {
                        g.read_files.push(PathBuf::from(&path));
                        g.env.push(("QGA_OS_RELEASE".to_owned(), path));
                    }
                    None => {
                        g.read_files.push("/etc/os-release".into());
                        g.read_files.push("/usr/lib/os-release".into());
                    }
                }
                g
            }
            "guest-get-users" => {
                let mut g = Grant::none().with(Capability::ReadFile);
                g.read_files.push("/var/run/utmp".into());
                g.read_limit = 64 << 20;
                g
            }
            "guest-fsfreeze-status" => Grant::none().with(Capability::Freeze),
            "guest-fsfreeze-freeze" | "guest-fsfreeze-freeze-list" | "guest-fsfreeze-thaw" => {
                let mut g = Grant::none().with(Capability::Freeze);
                g.mounts.push("*".to_owned());
                g
            }
            "guest-fstrim" => {
                let mut g = Grant::none().with(Capability::Trim).with(Capability::ReadFile);
                g.read_files.push(MOUNTINFO.into());
                g.mounts.push("*".to_owned());
                g
            }
            "guest-get-fsinfo" => {
                let mut g = Grant::none().with(Capability::FsStat).with(Capability::ReadFile);
                g.read_files.push(MOUNTINFO.into());
                g.mounts.push("*".to_owned());
                g.preopens.extend(sysfs_preopens());
                g
            }
            "guest-get-disks" => {
                let mut g = Grant::none();
                g.preopens.extend(sysfs_preopens());
                g
            }
            "guest-get-diskstats" => {
                let mut g = Grant::none().with(Capability::ReadFile);
                g.read_files.push("/proc/diskstats".into());
                g
            }
            _ => Grant::none(),
        }
    }
}

/// The mount table the storage commands read (the agent's own, as qemu-ga).
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Read-only /sys, and udev's database where it exists (ID_SERIAL).
fn sysfs_preopens() -> Vec<Preopen> {
    let mut out = vec![Preopen {
        host: "/sys".into(),
        guest: "/sys".into(),
        writable: false,
    }];
    if std::path::Path::new("/run/udev/data").is_dir() {
        out.push(Preopen {
            host: "/run/udev/data".into(),
            guest: "/run/udev/data".into(),
            writable: false,
        });
    }
    out
}

fn mount_pattern_matches(pattern: &str, path: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix("/**") {
        Some("") => path.starts_with('/'),
        Some(dir) => path == dir || path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/')),
        None => pattern == path,
    }
}

/// strerror(3) text of an I/O error, without Rust's " (os error N)".
pub fn strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_owned(),
        None => e.to_string(),
    }
}

/// A call refused by a grant. It fails the call (a trap out of the
/// handler) and becomes a GenericError.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Denied {
    #[error("permission denied: {command} is not granted {interface}")]
    Capability { command: String, interface: String },
    #[error("permission denied: {command} may not read {path}")]
    Path { command: String, path: String },
    #[error("permission denied: {command} may not use mount point {path}")]
    Mount { command: String, path: String },
}

/// The store data of one call: WASI state, limits, and the command's grant.
pub struct CallCtx {
    pub command: std::sync::Arc<str>,
    pub grant: std::sync::Arc<Grant>,
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: CallLimiter,
    /// The agent's frozen state (freeze capability, dispatch's gate).
    pub freeze: std::sync::Arc<freeze::FreezeState>,
}

impl WasiView for CallCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl qga::agent::types::Host for CallCtx {}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn each_system_info_command_gets_only_its_capabilities() {
        let caps = |c| Grant::builtin(c, &no_env).capabilities.into_iter().collect::<Vec<_>>();
        assert_eq!(caps("guest-get-time"), [Capability::Clock]);
        assert_eq!(caps("guest-get-timezone"), [Capability::Clock]);
        assert_eq!(caps("guest-get-host-name"), [Capability::HostInfo]);
        assert_eq!(caps("guest-get-osinfo"), [Capability::HostInfo, Capability::ReadFile]);
        assert_eq!(caps("guest-get-users"), [Capability::ReadFile]);
        assert!(caps("fixture-ungranted").is_empty());
    }

    #[test]
    fn osinfo_reads_qga_os_release_instead_when_set() {
        let env = |k: &str| (k == "QGA_OS_RELEASE").then(|| "/tmp/osr".to_owned());
        let g = Grant::builtin("guest-get-osinfo", &env);
        assert_eq!(g.read_files, [PathBuf::from("/tmp/osr")]);
        assert_eq!(g.env, [("QGA_OS_RELEASE".to_owned(), "/tmp/osr".to_owned())]);
        let g = Grant::builtin("guest-get-osinfo", &no_env);
        assert_eq!(g.read_files.len(), 2);
        assert!(g.env.is_empty());
    }

    #[test]
    fn storage_commands_get_only_their_capabilities() {
        let caps = |c| Grant::builtin(c, &no_env).capabilities.into_iter().collect::<Vec<_>>();
        assert_eq!(caps("guest-fsfreeze-status"), [Capability::Freeze]);
        assert_eq!(caps("guest-fsfreeze-freeze-list"), [Capability::Freeze]);
        assert_eq!(caps("guest-fstrim"), [Capability::ReadFile, Capability::Trim]);
        assert_eq!(caps("guest-get-fsinfo"), [Capability::ReadFile, Capability::FsStat]);
        assert!(caps("guest-get-disks").is_empty());
        assert_eq!(caps("guest-get-diskstats"), [Capability::ReadFile]);
        // status needs no mount point; only /sys is preopened, read-only.
        assert!(Grant::builtin("guest-fsfreeze-status", &no_env).mounts.is_empty());
        let g = Grant::builtin("guest-get-disks", &no_env);
        assert!(g.preopens.iter().all(|p| !p.writable));
        assert_eq!(g.preopens[0].host, PathBuf::from("/sys"));
    }

    #[test]
    fn mount_patterns() {
        let mut g = Grant::none();
        assert!(!g.allows_mount("/"));
        g.mounts = vec!["/srv/**".into(), "/data".into()];
        assert!(g.allows_mount("/srv"));
        assert!(g.allows_mount("/srv/a/b"));
        assert!(!g.allows_mount("/srvx"));
        assert!(g.allows_mount("/data"));
        assert!(!g.allows_mount("/data/x"));
        assert!(!g.allows_mount("/"));
        g.mounts = vec!["*".into()];
        assert!(g.allows_mount("/"));
    }

    #[test]
    fn require_names_command_and_interface() {
        let err = Grant::none().require("guest-x", Capability::Clock).unwrap_err();
        assert_eq!(
            err.to_string(),
            "permission denied: guest-x is not granted qga:agent/clock"
        );
        assert!(
            Grant::none()
                .with(Capability::Clock)
                .require("x", Capability::Clock)
                .is_ok()
        );
    }
}
