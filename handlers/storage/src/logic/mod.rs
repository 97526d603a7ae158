//! Pure logic of the storage family, as qemu-ga 7.2 computes it
//! (qga/commands-posix.c): the mount list, guest-get-fsinfo's walk of
//! sysfs, guest-get-disks, /proc/diskstats.
//!
//! Files are read with std::fs under a root directory: `/` in the
//! component (where only /sys/block, /sys/dev/block and /sys/devices are
//! read-only WASI preopens), a directory holding a sysfs-shaped tree in
//! tests. Every path is resolved here, symlink by symlink, before it is
//! opened: sysfs links cross from one preopen into another, which WASI
//! will not follow.
//!
//! One module per command group: [`diskstats`] (guest-get-diskstats),
//! [`fsinfo`] (guest-get-fsinfo), [`disks`] (guest-get-disks), over the
//! reads of [`sysfs`]. The mount list comes from `qga_text`; freeze and
//! trim are host operations with no logic here.

mod disks;
mod diskstats;
mod fsinfo;
mod sysfs;

pub use disks::DiskInfo;
pub use diskstats::{DiskStat, parse_diskstats};
pub use fsinfo::FsInfo;
pub use qga_text::mountinfo::{Mount, decode_mntname, parse_mountinfo};
pub use sysfs::{Kind, Sys, strerror};

/// GuestDiskBusType cases qemu-ga's Linux code produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusType {
    Ide,
    Scsi,
    Virtio,
    Sata,
    Nvme,
    Unknown,
}

/// GuestDiskAddress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskAddress {
    /// domain, bus, slot, function; -1 each when unknown.
    pub pci: [i64; 4],
    pub bus_type: BusType,
    pub bus: i64,
    pub target: i64,
    pub unit: i64,
    pub serial: Option<String>,
    pub dev: Option<String>,
}
