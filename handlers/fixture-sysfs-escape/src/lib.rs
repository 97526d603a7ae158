//! TEST FIXTURE: a hostile build of the `storage` family that tries to
//! leave the sysfs preopens of guest-get-disks (`/sys/block`,
//! `/sys/dev/block`, `/sys/devices`, read-only) for debugfs, efivars,
//! securityfs and `/etc/shadow` (tests/boundary_sysfs.rs). Installed as
//! `storage` (`--handlers DIR`) it gets the real commands' grants, and
//! guest-get-disks answers an error whose text is one line per probe:
//! `attack PATH: reached|refused (...)` and `control PATH: reached|refused
//! (...)`, the controls being the same probes on paths inside a preopen.
//! Everything else fails with "not in this build". Never embedded.

wit_bindgen::generate!({
    world: "storage-family",
    path: "../../wit",
});

use exports::qga::agent::storage::{
    FsfreezeStatus, Guest, GuestDiskInfo, GuestDiskStatsInfo, GuestFilesystemInfo, GuestFilesystemTrimResponse,
};
use qga::agent::types::QgaError;

struct Escape;

fn not_here<T>() -> Result<T, QgaError> {
    Err(QgaError {
        desc: "not in this build".to_owned(),
    })
}

/// Read `path` as a directory, else as a file: what came back.
fn probe(path: &str) -> String {
    match std::fs::read_dir(path) {
        Ok(entries) => format!("reached (listed {} entries)", entries.count()),
        Err(dir_err) => match std::fs::read(path) {
            Ok(bytes) => format!("reached (read {} bytes)", bytes.len()),
            Err(e) => format!("refused ({dir_err}; {e})"),
        },
    }
}

const PREOPENS: &[&str] = &["/sys/block", "/sys/dev/block", "/sys/devices"];
const TARGETS: &[&str] = &[
    "/sys/kernel/debug",
    "/sys/firmware/efi/efivars",
    "/sys/kernel/security",
    "/etc/shadow",
];

fn attacks() -> Vec<String> {
    let mut out: Vec<String> = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    out.extend(["/sys", "/", "/etc"].map(str::to_owned));
    for preopen in PREOPENS {
        // `..` out of the preopen, up to / and down to each target.
        let depth = preopen.matches('/').count();
        let up = "/..".repeat(depth);
        for target in TARGETS {
            out.push(format!("{preopen}{up}{target}"));
        }
        out.push(format!("{preopen}/.."));
    }
    // Through the symlinks of /sys/block and /sys/dev/block (each points
    // into /sys/devices, four levels below /sys).
    for dir in ["/sys/block", "/sys/dev/block"] {
        if let Some(Ok(entry)) = std::fs::read_dir(dir).ok().and_then(|mut d| d.next()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            out.push(format!("{dir}/{name}/../../../../kernel/debug"));
            out.push(format!("{dir}/{name}/../../../../kernel/security"));
            out.push(format!("{dir}/{name}/../../../../../etc/shadow"));
        }
    }
    out
}

/// The same probes on paths inside a preopen: absolute, through `..`
/// (and a symlink, see `guest_get_disks`).
const CONTROLS: &[&str] = &[
    "/sys/block",
    "/sys/devices/system/cpu/online",
    "/sys/devices/system/cpu/../cpu/online",
    "/sys/devices/virtual/../system",
];

impl Guest for Escape {
    fn guest_get_disks() -> Result<Vec<GuestDiskInfo>, QgaError> {
        let mut report = String::new();
        for path in attacks() {
            report.push_str(&format!("attack {path}: {}\n", probe(&path)));
        }
        let mut controls: Vec<String> = CONTROLS.iter().map(|c| (*c).to_owned()).collect();
        // A symlink inside a preopen is followed: a loop device's `bdi`
        // points to ../../bdi/MAJ:MIN, within /sys/devices.
        let looped = std::fs::read_dir("/sys/block").ok().and_then(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| n.starts_with("loop"))
        });
        if let Some(name) = looped {
            controls.push(format!("/sys/devices/virtual/block/{name}/bdi"));
        }
        for path in &controls {
            report.push_str(&format!("control {path}: {}\n", probe(path)));
        }
        Err(QgaError { desc: report })
    }

    fn guest_fsfreeze_status() -> Result<FsfreezeStatus, QgaError> {
        not_here()
    }

    fn guest_fsfreeze_freeze() -> Result<i64, QgaError> {
        not_here()
    }

    fn guest_fsfreeze_freeze_list(_mountpoints: Option<Vec<String>>) -> Result<i64, QgaError> {
        not_here()
    }

    fn guest_fsfreeze_thaw() -> Result<i64, QgaError> {
        not_here()
    }

    fn guest_fstrim(_minimum: Option<i64>) -> Result<GuestFilesystemTrimResponse, QgaError> {
        not_here()
    }

    fn guest_get_fsinfo() -> Result<Vec<GuestFilesystemInfo>, QgaError> {
        not_here()
    }

    fn guest_get_diskstats() -> Result<Vec<GuestDiskStatsInfo>, QgaError> {
        not_here()
    }
}

export!(Escape);
