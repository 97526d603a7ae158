//! guest-get-disks: qemu-ga's `qmp_guest_get_disks` over /sys/block.

use super::{DiskAddress, Kind, Sys, strerror};

/// GuestDiskInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskInfo {
    pub name: String,
    pub partition: bool,
    pub dependencies: Option<Vec<String>>,
    pub address: Option<DiskAddress>,
    pub alias: Option<String>,
}

impl Sys {
    /// guest-get-disks (qemu-ga's `qmp_guest_get_disks`).
    pub fn disks(&self) -> Result<Vec<DiskInfo>, String> {
        let entries = self
            .list("/sys/block")
            .map_err(|e| format!("Can't open directory \"/sys/block\": {}", strerror(&e)))?;
        let mut out: Vec<DiskInfo> = Vec::new();
        for (entry, kind) in entries {
            if kind != Kind::Link {
                continue;
            }
            let Ok(size) = self.read_string(&format!("/sys/block/{entry}/size")) else {
                continue;
            };
            if size == "0\n" {
                continue;
            }
            let disk_dir = format!("/sys/block/{entry}");
            let Some(dev_name) = self.device_for_syspath(&disk_dir) else {
                continue;
            };
            let real = self.realpath(&disk_dir).ok();
            let alias = real
                .as_deref()
                .and_then(|r| self.udev_property(r, "DM_NAME"))
                .filter(|a| !a.is_empty());
            let is_virtual = real.as_deref().is_none_or(|r| r.contains("/devices/virtual/"));
            let address = if is_virtual { None } else { self.disk_address(&disk_dir) };
            let dependencies = self.list(&format!("{disk_dir}/slaves")).ok().map(|deps| {
                let mut names = Vec::new();
                for (dep, _) in deps {
                    if let Some(d) = self.device_for_syspath(&format!("{disk_dir}/slaves/{dep}")) {
                        names.insert(0, d);
                    }
                }
                names
            });
            out.insert(
                0,
                DiskInfo {
                    name: dev_name.clone(),
                    partition: false,
                    dependencies,
                    address,
                    alias,
                },
            );
            // get_disk_partitions
            let Ok(children) = self.list(&disk_dir) else {
                continue;
            };
            for (child, kind) in children {
                if kind != Kind::Dir || !is_partition_name(&entry, &child) {
                    continue;
                }
                let Some(part) = self.device_for_syspath(&format!("{disk_dir}/{child}")) else {
                    continue;
                };
                out.insert(
                    0,
                    DiskInfo {
                        name: part,
                        partition: true,
                        dependencies: Some(vec![dev_name.clone()]),
                        address: None,
                        alias: None,
                    },
                );
            }
        }
        Ok(out)
    }
}

/// qemu-ga: `<disk>N...` or `<disk>pN...`.
fn is_partition_name(disk: &str, child: &str) -> bool {
    let Some(rest) = child.strip_prefix(disk) else {
        return false;
    };
    let b = rest.as_bytes();
    match b.first() {
        Some(b'p') => b.get(1).is_some_and(u8::is_ascii_digit),
        Some(c) => c.is_ascii_digit(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names() {
        assert!(is_partition_name("nvme0n1", "nvme0n1p1"));
        assert!(is_partition_name("sda", "sda1"));
        assert!(!is_partition_name("sda", "sdab"));
        assert!(!is_partition_name("sda", "queue"));
    }
}
