//! Host capabilities: the WIT interfaces handlers import (`wit/cap-*.wit`),
//! implemented by the host, and the grants that say which command may call
//! which of them with which arguments.
//!
//! Each capability is a module: `mod.rs` (the WIT host impl and its grant
//! checks, safe Rust) and `sys.rs` (the syscalls; any `unsafe` lives there).
//! Grants are data, computed before any wasm runs and checked in one helper
//! ([`Grant::require`]) that returns a permission error.

pub mod authorized_keys;
pub mod clock;
pub mod clock_set;
pub mod files;
pub mod freeze;
pub mod fs_stat;
pub mod glob;
pub mod helper;
pub mod host_info;
pub mod load_average;
pub mod net_info;
pub mod process;
pub mod read_file;
pub mod registry;
pub mod resolve;
pub mod setting;
pub mod sysfs;
pub mod trim;
pub mod view;
pub mod wasi_ctx;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use thiserror::Error;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::limits::CallLimiter;

pub use self::registry::{Capability, Pace};
pub use crate::errno_text::{io_strerror, strerror};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "host-capabilities",
    imports: { default: trappable },
});

/// The WIT `blob` resource as handles name it.
pub use self::qga::agent::types::Blob;

/// What a `blob` handle holds: data already base64-encoded for the wire.
/// It stays in the call's resource table until the reply is built, where
/// it becomes a JSON string without being copied. Its bytes count against
/// the call's memory budget ([`CallLimiter`]) while the table holds it.
#[derive(Debug)]
pub struct BlobData(pub String);

/// The WIT interface every component may import: its types and the
/// `blob` resource.
pub const TYPES_INTERFACE: &str = "qga:agent/types";

pub use self::view::add_types_to_linker;

impl BlobData {
    /// Put the base64 of `bytes` in `table`: a handle for the handler.
    /// The base64 is charged to `limiter` first: past the call's budget the
    /// call traps (the handler exceeded its memory limit).
    pub fn push_base64(
        table: &mut ResourceTable,
        limiter: &mut CallLimiter,
        bytes: &[u8],
    ) -> wasmtime::Result<Resource<Blob>> {
        let len = bytes.len().div_ceil(3).saturating_mul(4);
        limiter.charge_host(len)?;
        match table.push(BlobData(base64::engine::general_purpose::STANDARD.encode(bytes))) {
            Ok(data) => Ok(Resource::new_own(data.rep())),
            Err(e) => {
                limiter.release_host(len);
                Err(e.into())
            }
        }
    }

    /// Take the data of a blob handle out of `table`.
    pub fn take(table: &mut ResourceTable, blob: Resource<Blob>) -> Option<String> {
        table
            .delete(Resource::<BlobData>::new_own(blob.rep()))
            .ok()
            .map(|d| d.0)
    }
}

pub use self::qga::agent::types::QgaError;

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
    /// read-file: which exact paths, how many bytes per read.
    pub read_file: read_file::ReadFileGrant,
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
    /// freeze, trim, fs-stat: mount points the command may act on (globs,
    /// see [`glob`], over the resolved path).
    pub mounts: Vec<String>,
    /// files: which paths in which modes, which operations.
    pub files: files::FilesGrant,
    /// process: which programs may run, with which environment, as whom.
    pub process: process::ProcessGrant,
    /// sysfs: path patterns the command may read and write.
    pub sysfs: sysfs::SysfsGrant,
    /// helper: the exact argument vectors it may run.
    pub helper: helper::HelperGrant,
    /// authorized-keys: the users whose keys it may touch.
    pub authorized_keys: authorized_keys::AuthorizedKeysGrant,
}

pub const DEFAULT_MEMORY: usize = 64 << 20;
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);
pub const DEFAULT_REPLY_LIMIT: usize = 16 << 20;
/// Deadline of prompt commands ([`Grant::is_prompt`]), which run on the
/// event loop: the longest a runaway handler can hold up other clients.
pub const PROMPT_DEADLINE: Duration = Duration::from_secs(2);

impl Grant {
    /// Nothing but the defaults: no capability, no file, no environment.
    pub fn none() -> Grant {
        Grant {
            capabilities: BTreeSet::new(),
            read_file: read_file::ReadFileGrant::nothing(),
            env: Vec::new(),
            preopens: Vec::new(),
            memory_bytes: DEFAULT_MEMORY,
            deadline: DEFAULT_DEADLINE,
            reply_limit: DEFAULT_REPLY_LIMIT,
            files: files::FilesGrant::nothing(),
            process: process::ProcessGrant::nothing(),
            mounts: Vec::new(),
            sysfs: sysfs::SysfsGrant::nothing(),
            helper: helper::HelperGrant::nothing(),
            authorized_keys: authorized_keys::AuthorizedKeysGrant::nothing(),
        }
    }

    /// Whether the grant's mount patterns cover `path`.
    pub fn allows_mount(&self, path: &str) -> bool {
        self.mounts.iter().any(|pattern| glob::matches(pattern, path))
    }

    /// [`Grant::allows_mount`] for a resolved path, matched as bytes.
    pub fn allows_mount_path(&self, path: &std::path::Path) -> bool {
        self.mounts.iter().any(|pattern| glob::matches_path(pattern, path))
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

    /// Whether the command only reads the clock, the host's names, procfs
    /// or sysfs, small named files or the frozen state, and has no WASI
    /// filesystem: nothing
    /// that waits on a device, a network filesystem, a child or a big
    /// transfer. Such a command runs
    /// on the event loop, as every qemu-ga command does, which saves two
    /// cross-thread wake-ups per call; everything else runs on a blocking
    /// thread so that other clients are served meanwhile.
    pub fn is_prompt(&self) -> bool {
        self.prompt_capabilities() && self.deadline <= PROMPT_DEADLINE
    }

    pub fn prompt_capabilities(&self) -> bool {
        let quick = |c: &Capability| match c.pace() {
            Pace::Quick => true,
            Pace::QuickWithoutMounts => self.mounts.is_empty(),
            Pace::Blocking => false,
        };
        self.capabilities.iter().all(quick)
            && self.sysfs.write.is_empty()
            && self.read_file.limit <= 16 << 20
            && self.preopens.is_empty()
    }
}

/// A request string as qemu-ga hands it to the C library. QEMU's JSON
/// parser keeps `\u0000` as the two bytes C0 80 (modified UTF-8), so a NUL
/// never cuts a path, an argument or a name short: it is two more bytes of
/// it (`/dev/null\u0000x` names a file that does not exist).
pub fn c_string(s: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let mut bytes = Vec::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            0 => bytes.extend_from_slice(&[0xC0, 0x80]),
            b => bytes.push(b),
        }
    }
    std::ffi::OsString::from_vec(bytes)
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
    #[error("permission denied: {command} may not open {path} (mode '{mode}')")]
    File {
        command: String,
        path: String,
        mode: String,
    },
    #[error("permission denied: {command} is not granted files.{op}")]
    FileOp { command: String, op: String },
    #[error("permission denied: {command} may not run {program}")]
    Program { command: String, program: String },
    #[error("permission denied: {command} may not set environment variable {name}")]
    Env { command: String, name: String },
    #[error("permission denied: {command} may not write {path}")]
    WritePath { command: String, path: String },
    #[error("permission denied: {command} may not run {argv}")]
    Helper { command: String, argv: String },
    #[error("permission denied: {command} may not touch the keys of user {user}")]
    User { command: String, user: String },
    #[error("permission denied: {command} may not freeze or thaw: it is granted no mount point")]
    NoMounts { command: String },
}

/// State that outlives a call, held by the host and shared by every call
/// (independent of any component instance, so a handler swap keeps it):
/// the open files (in [`crate::state`]) and the children of guest-exec.
#[derive(Debug)]
pub struct HostState {
    /// guest-file-*: open files and the persistent handle counter.
    pub files: files::FileTable,
    /// guest-exec: children and their captured output.
    pub process: std::sync::Arc<process::ChildTable>,
}

impl HostState {
    /// Load what persists from `state_dir` (qemu-ga's `qga.state`).
    pub fn new(state_dir: &std::path::Path) -> HostState {
        HostState {
            files: files::FileTable::new(state_dir),
            process: std::sync::Arc::new(process::ChildTable::default()),
        }
    }
}

/// The store data of one call: WASI state, limits, and the command's grant.
pub struct CallCtx {
    pub command: std::sync::Arc<str>,
    pub grant: std::sync::Arc<Grant>,
    /// Built on the handler's first WASI call ([`wasi_ctx::for_grant`]).
    pub wasi: Option<WasiCtx>,
    pub table: ResourceTable,
    pub limiter: CallLimiter,
    /// Host state shared by all calls (file and child tables).
    pub state: std::sync::Arc<HostState>,
    /// The agent's frozen state (freeze capability, dispatch's gate).
    pub freeze: std::sync::Arc<freeze::FreezeState>,
}

impl WasiView for CallCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self
                .wasi
                .get_or_insert_with(|| wasi_ctx::for_grant(&self.command, &self.grant)),
            table: &mut self.table,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_nul_reaches_the_c_library_as_qemu_keeps_it() {
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(c_string("/dev/null").as_bytes(), b"/dev/null");
        assert_eq!(c_string("/dev/null\0x").as_bytes(), b"/dev/null\xc0\x80x");
        assert_eq!(c_string("\0\0").as_bytes(), b"\xc0\x80\xc0\x80");
    }

    #[test]
    fn each_system_info_command_gets_only_its_capabilities() {
        let caps = |c| {
            crate::policy::manifests::builtin(c, &no_env)
                .capabilities
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(caps("guest-get-time"), [Capability::Clock]);
        assert_eq!(caps("guest-get-timezone"), [Capability::Clock]);
        assert_eq!(caps("guest-get-host-name"), [Capability::HostInfo]);
        assert_eq!(caps("guest-get-osinfo"), [Capability::HostInfo, Capability::ReadFile]);
        assert_eq!(caps("guest-get-users"), [Capability::ReadFile]);
        assert_eq!(caps("guest-get-load"), [Capability::LoadAverage]);
        assert!(crate::policy::manifests::builtin("guest-get-load", &no_env).is_prompt());
        // only guest-get-load may read the load averages
        assert!(!crate::policy::manifests::builtin("guest-get-host-name", &no_env).allows(Capability::LoadAverage));
        assert!(caps("fixture-ungranted").is_empty());
    }

    #[test]
    fn each_system_command_gets_only_its_capabilities() {
        use Capability::*;
        let caps = |c| {
            crate::policy::manifests::builtin(c, &no_env)
                .capabilities
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(caps("guest-network-get-interfaces"), [ReadFile, NetInfo]);
        for c in [
            "guest-get-vcpus",
            "guest-set-vcpus",
            "guest-get-memory-blocks",
            "guest-set-memory-blocks",
            "guest-get-memory-block-info",
        ] {
            assert_eq!(caps(c), [Sysfs], "{c}");
        }
        assert_eq!(caps("guest-get-cpustats"), [ReadFile]);
        assert_eq!(caps("guest-shutdown"), [Helper]);
        assert_eq!(caps("guest-suspend-ram"), [Sysfs, Helper]);
        assert_eq!(caps("guest-suspend-disk"), [Sysfs, Helper]);
        assert_eq!(caps("guest-suspend-hybrid"), [Helper]);
        assert_eq!(caps("guest-set-time"), [Clock, Helper, ClockSet]);
        assert_eq!(caps("guest-set-user-password"), [Helper]);
        for c in [
            "guest-ssh-get-authorized-keys",
            "guest-ssh-add-authorized-keys",
            "guest-ssh-remove-authorized-keys",
        ] {
            assert_eq!(caps(c), [AuthorizedKeys], "{c}");
        }
        // read-only commands can write nothing and run nothing
        for c in [
            "guest-network-get-interfaces",
            "guest-get-vcpus",
            "guest-get-memory-blocks",
            "guest-get-memory-block-info",
            "guest-get-cpustats",
        ] {
            let g = crate::policy::manifests::builtin(c, &no_env);
            assert!(g.sysfs.write.is_empty() && g.helper.argvs.is_empty(), "{c}");
        }
        assert_eq!(
            crate::policy::manifests::builtin("guest-get-cpustats", &no_env)
                .read_file
                .paths,
            [PathBuf::from("/proc/stat")]
        );
        assert_eq!(
            crate::policy::manifests::builtin("guest-network-get-interfaces", &no_env)
                .read_file
                .paths,
            [PathBuf::from("/proc/net/dev")]
        );
        assert_eq!(caps("guest-network-get-route"), [ReadFile]);
        let route = crate::policy::manifests::builtin("guest-network-get-route", &no_env);
        assert_eq!(
            route.read_file.paths,
            [PathBuf::from("/proc/net/route"), PathBuf::from("/proc/net/ipv6_route")]
        );
        assert!(route.is_prompt() && route.preopens.is_empty() && route.helper.argvs.is_empty());
        // the clock is set only by guest-set-time; get-time cannot
        assert!(!crate::policy::manifests::builtin("guest-get-time", &no_env).allows(ClockSet));
    }

    #[test]
    fn osinfo_reads_qga_os_release_instead_when_set() {
        let env = |k: &str| (k == "QGA_OS_RELEASE").then(|| "/tmp/osr".to_owned());
        let g = crate::policy::manifests::builtin("guest-get-osinfo", &env);
        assert_eq!(g.read_file.paths, [PathBuf::from("/tmp/osr")]);
        assert_eq!(g.env, [("QGA_OS_RELEASE".to_owned(), "/tmp/osr".to_owned())]);
        let g = crate::policy::manifests::builtin("guest-get-osinfo", &no_env);
        assert_eq!(g.read_file.paths.len(), 2);
        assert!(g.env.is_empty());
    }

    #[test]
    fn storage_commands_get_only_their_capabilities() {
        let caps = |c| {
            crate::policy::manifests::builtin(c, &no_env)
                .capabilities
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(caps("guest-fsfreeze-status"), [Capability::Freeze]);
        assert_eq!(caps("guest-fsfreeze-freeze-list"), [Capability::Freeze]);
        assert_eq!(caps("guest-fstrim"), [Capability::ReadFile, Capability::Trim]);
        assert_eq!(caps("guest-get-fsinfo"), [Capability::ReadFile, Capability::FsStat]);
        assert!(caps("guest-get-disks").is_empty());
        assert_eq!(caps("guest-get-diskstats"), [Capability::ReadFile]);
        // status needs no mount point; only the block trees of /sys are
        // preopened, read-only.
        assert!(
            crate::policy::manifests::builtin("guest-fsfreeze-status", &no_env)
                .mounts
                .is_empty()
        );
        for command in ["guest-get-disks", "guest-get-fsinfo"] {
            let g = crate::policy::manifests::builtin(command, &no_env);
            assert!(g.preopens.iter().all(|p| !p.writable));
            let hosts: Vec<_> = g.preopens.iter().map(|p| p.host.clone()).collect();
            assert_eq!(
                hosts[..3],
                ["/sys/block", "/sys/dev/block", "/sys/devices"].map(PathBuf::from)[..]
            );
        }
    }

    #[test]
    fn mount_patterns() {
        let mut g = Grant::none();
        assert!(!g.allows_mount("/"));
        g.mounts = vec!["/srv/**".into(), "/data".into()];
        // `DIR/**` is below DIR, not DIR; `..` never matches.
        assert!(!g.allows_mount("/srv"));
        assert!(!g.allows_mount("/srv/.."));
        assert!(!g.allows_mount("/srv/a/../../etc"));
        assert!(g.allows_mount("/srv/a/b"));
        assert!(!g.allows_mount("/srvx"));
        assert!(g.allows_mount("/data"));
        assert!(!g.allows_mount("/data/x"));
        assert!(!g.allows_mount("/"));
        g.mounts = vec!["/".into(), "/**".into()];
        assert!(g.allows_mount("/"));
        assert!(g.allows_mount("/srv"));
    }

    #[test]
    fn strerror_is_glibc_wording() {
        assert_eq!(strerror(0), "Success");
        assert_eq!(strerror(libc::ENOENT), "No such file or directory");
        assert_eq!(strerror(libc::ELOOP), "Too many levels of symbolic links");
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
