//! The `storage` family: guest-fsfreeze-status/-freeze/-freeze-list/-thaw,
//! guest-fstrim, guest-get-fsinfo, guest-get-disks, guest-get-diskstats.
//!
//! Freeze and thaw are whole host operations (the host keeps the frozen
//! state and runs the hook); trim and statvfs are per mount point. The
//! mount list, sysfs walk and /proc/diskstats parsing live in [`logic`].

pub mod logic;

// The bindings wit-bindgen generates are `unsafe` glue (exports, the
// canonical ABI); the code written here is safe Rust.
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        world: "storage-family",
        path: "../../wit",
    });

    use super::logic::{self, BusType, Sys};
    use exports::qga::agent::storage::{
        FsfreezeStatus, Guest, GuestDiskAddress, GuestDiskBusType, GuestDiskInfo, GuestDiskStats, GuestDiskStatsInfo,
        GuestFilesystemInfo, GuestFilesystemTrimResponse, GuestFilesystemTrimResult, GuestPciAddress,
    };
    use qga::agent::trim::TrimError;
    use qga::agent::types::QgaError;
    use qga::agent::{freeze, fs_stat, read_file, trim};

    const MOUNTINFO: &str = "/proc/self/mountinfo";

    struct Storage;

    fn err(desc: String) -> QgaError {
        QgaError { desc }
    }

    fn read_text(path: &str) -> Result<String, QgaError> {
        match read_file::read(path) {
            Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
            Err(read_file::ReadError::NotFound) => Err(err(format!("open(\"{path}\"): No such file or directory"))),
            Err(read_file::ReadError::Other(e)) => Err(err(format!("open(\"{path}\"): {e}"))),
        }
    }

    /// btrfs sources are resolved by the host's mount list for freeze; here
    /// the device node is not visible, so btrfs on major 0 is skipped.
    fn mounts() -> Result<Vec<logic::Mount>, QgaError> {
        let text = read_text(MOUNTINFO)?;
        Ok(logic::parse_mountinfo(&text, &|_| None))
    }

    fn address(d: logic::DiskAddress) -> GuestDiskAddress {
        GuestDiskAddress {
            pci_controller: GuestPciAddress {
                domain: d.pci[0],
                bus: d.pci[1],
                slot: d.pci[2],
                function: d.pci[3],
            },
            bus_type: match d.bus_type {
                BusType::Ide => GuestDiskBusType::Ide,
                BusType::Scsi => GuestDiskBusType::Scsi,
                BusType::Virtio => GuestDiskBusType::Virtio,
                BusType::Sata => GuestDiskBusType::Sata,
                BusType::Nvme => GuestDiskBusType::Nvme,
                BusType::Unknown => GuestDiskBusType::Unknown,
            },
            bus: d.bus,
            target: d.target,
            unit: d.unit,
            serial: d.serial,
            dev: d.dev,
            ccw_address: None,
        }
    }

    impl Guest for Storage {
        fn guest_fsfreeze_status() -> Result<FsfreezeStatus, QgaError> {
            Ok(if freeze::is_frozen() {
                FsfreezeStatus::Frozen
            } else {
                FsfreezeStatus::Thawed
            })
        }

        fn guest_fsfreeze_freeze() -> Result<i64, QgaError> {
            freeze::freeze(None)
        }

        fn guest_fsfreeze_freeze_list(mountpoints: Option<Vec<String>>) -> Result<i64, QgaError> {
            freeze::freeze(mountpoints.as_deref())
        }

        fn guest_fsfreeze_thaw() -> Result<i64, QgaError> {
            freeze::thaw()
        }

        fn guest_fstrim(minimum: Option<i64>) -> Result<GuestFilesystemTrimResponse, QgaError> {
            let minimum = minimum.unwrap_or(0) as u64;
            let mut paths = Vec::new();
            for m in mounts()? {
                let mut r = GuestFilesystemTrimResult {
                    path: m.dirname.clone(),
                    trimmed: None,
                    minimum: None,
                    error: None,
                };
                match trim::trim(&m.dirname, minimum) {
                    Ok(t) => {
                        r.trimmed = Some(t.trimmed as i64);
                        r.minimum = Some(t.minimum as i64);
                    }
                    Err(TrimError::Denied(text)) => r.error = Some(text),
                    Err(TrimError::Open(e)) => r.error = Some(format!("failed to open: {e}")),
                    Err(TrimError::NotSupported) => r.error = Some("trim not supported".into()),
                    Err(TrimError::Failed(e)) => r.error = Some(format!("failed to trim: {e}")),
                }
                paths.insert(0, r);
            }
            Ok(GuestFilesystemTrimResponse { paths })
        }

        fn guest_get_fsinfo() -> Result<Vec<GuestFilesystemInfo>, QgaError> {
            let sys = Sys::new("/");
            let infos = sys.fsinfo(&mounts()?).map_err(err)?;
            Ok(infos
                .into_iter()
                .map(|fs| {
                    // qemu-ga 10.0: used and total as 7.2 (total what a
                    // non-root user may fill), and the whole size root may
                    // fill as total-bytes-privileged.
                    let (used, total, privileged) = match fs_stat::statvfs(&fs.mountpoint) {
                        Ok(u) => {
                            let used = u.blocks.wrapping_sub(u.blocks_free);
                            let nonroot_total = used.wrapping_add(u.blocks_available);
                            (
                                Some(used.wrapping_mul(u.fragment_size)),
                                Some(nonroot_total.wrapping_mul(u.fragment_size)),
                                Some(u.blocks.wrapping_mul(u.fragment_size)),
                            )
                        }
                        Err(_) => (None, None, None),
                    };
                    GuestFilesystemInfo {
                        name: fs.name,
                        mountpoint: fs.mountpoint,
                        type_: fs.fstype,
                        used_bytes: used,
                        total_bytes: total,
                        total_bytes_privileged: privileged,
                        disk: fs.disk.into_iter().map(address).collect(),
                    }
                })
                .collect())
        }

        fn guest_get_disks() -> Result<Vec<GuestDiskInfo>, QgaError> {
            let sys = Sys::new("/");
            Ok(sys
                .disks()
                .map_err(err)?
                .into_iter()
                .map(|d| GuestDiskInfo {
                    name: d.name,
                    partition: d.partition,
                    dependencies: d.dependencies,
                    address: d.address.map(address),
                    alias: d.alias,
                })
                .collect())
        }

        fn guest_get_diskstats() -> Result<Vec<GuestDiskStatsInfo>, QgaError> {
            let text = read_text("/proc/diskstats")?;
            Ok(logic::parse_diskstats(&text)
                .into_iter()
                .map(|d| GuestDiskStatsInfo {
                    name: d.name,
                    major: d.major,
                    minor: d.minor,
                    stats: GuestDiskStats {
                        read_sectors: d.read_sectors,
                        read_ios: d.read_ios,
                        read_merges: d.read_merges,
                        write_sectors: d.write_sectors,
                        write_ios: d.write_ios,
                        write_merges: d.write_merges,
                        discard_sectors: d.discard_sectors,
                        discard_ios: d.discard_ios,
                        discard_merges: d.discard_merges,
                        flush_ios: d.flush_ios,
                        read_ticks: d.read_ticks,
                        write_ticks: d.write_ticks,
                        discard_ticks: d.discard_ticks,
                        flush_ticks: d.flush_ticks,
                        ios_pgr: d.ios_pgr,
                        total_ticks: d.total_ticks,
                        weight_ticks: d.weight_ticks,
                    },
                })
                .collect())
        }
    }

    export!(Storage);
}
