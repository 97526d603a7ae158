//! The registry of capabilities: every WIT capability interface the host
//! implements, its name, whether a call to it can wait, and its linker
//! registration. Adding a capability touches its module
//! (`capabilities/<name>/`), this file and its WIT file (`wit/cap-<name>.wit`,
//! and the `host-capabilities` world); a constraint of its grant adds its
//! `settings.rs` to the policy's registry.

use wasmtime::component::Linker;

use super::view::{Granted, grant_view};
use super::{CallCtx, qga};

/// How long a call to a capability can take: whether a command holding it
/// may run on the event loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Reads the clock, names, procfs, sysfs or small files.
    Quick,
    /// Quick when the grant holds no mount point.
    QuickWithoutMounts,
    /// Waits on a device, a child, a helper or a big transfer.
    Blocking,
}

/// A capability interface of the WIT package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    Clock,
    HostInfo,
    ReadFile,
    Freeze,
    Trim,
    FsStat,
    Files,
    Process,
    Sysfs,
    NetInfo,
    Helper,
    ClockSet,
    AuthorizedKeys,
    LoadAverage,
}

impl Capability {
    pub const ALL: [Capability; 14] = [
        Capability::Clock,
        Capability::HostInfo,
        Capability::ReadFile,
        Capability::Freeze,
        Capability::Trim,
        Capability::FsStat,
        Capability::Files,
        Capability::Process,
        Capability::Sysfs,
        Capability::NetInfo,
        Capability::Helper,
        Capability::ClockSet,
        Capability::AuthorizedKeys,
        Capability::LoadAverage,
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
            Capability::Files => "qga:agent/files",
            Capability::Process => "qga:agent/process",
            Capability::Sysfs => "qga:agent/sysfs",
            Capability::NetInfo => "qga:agent/net-info",
            Capability::Helper => "qga:agent/helper",
            Capability::ClockSet => "qga:agent/clock-set",
            Capability::AuthorizedKeys => "qga:agent/authorized-keys",
            Capability::LoadAverage => "qga:agent/load-average",
        }
    }

    pub fn from_interface(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.interface() == name)
    }

    /// Whether a call to it can wait (see [`Grant::is_prompt`]).
    pub fn pace(self) -> Pace {
        match self {
            Capability::Clock
            | Capability::HostInfo
            | Capability::NetInfo
            | Capability::Sysfs
            | Capability::LoadAverage
            | Capability::ReadFile => Pace::Quick,
            // Freeze without a mount point can only read the frozen state.
            Capability::Freeze => Pace::QuickWithoutMounts,
            Capability::Trim
            | Capability::FsStat
            | Capability::Files
            | Capability::Process
            | Capability::Helper
            | Capability::ClockSet
            | Capability::AuthorizedKeys => Pace::Blocking,
        }
    }

    /// Link this capability's host implementation.
    pub fn add_to_linker(self, linker: &mut Linker<CallCtx>) -> wasmtime::Result<()> {
        match self {
            Capability::Clock => qga::agent::clock::add_to_linker::<CallCtx, Granted>(linker, grant_view),
            Capability::HostInfo => qga::agent::host_info::add_to_linker::<CallCtx, Granted>(linker, grant_view),
            Capability::ReadFile => qga::agent::read_file::add_to_linker::<CallCtx, Granted>(linker, grant_view),
            Capability::Freeze => super::freeze::add_to_linker(linker),
            Capability::Trim => qga::agent::trim::add_to_linker::<CallCtx, Granted>(linker, grant_view),
            Capability::FsStat => qga::agent::fs_stat::add_to_linker::<CallCtx, Granted>(linker, grant_view),
            Capability::Files => super::files::add_to_linker(linker),
            Capability::Process => super::process::add_to_linker(linker),
            Capability::Sysfs => qga::agent::sysfs::add_to_linker::<CallCtx, Granted>(linker, grant_view),
            Capability::NetInfo => qga::agent::net_info::add_to_linker::<CallCtx, Granted>(linker, grant_view),
            Capability::Helper => qga::agent::helper::add_to_linker::<CallCtx, Granted>(linker, grant_view),
            Capability::ClockSet => qga::agent::clock_set::add_to_linker::<CallCtx, Granted>(linker, grant_view),
            Capability::AuthorizedKeys => {
                qga::agent::authorized_keys::add_to_linker::<CallCtx, Granted>(linker, grant_view)
            }
            Capability::LoadAverage => qga::agent::load_average::add_to_linker::<CallCtx, Granted>(linker, grant_view),
        }
    }
}
