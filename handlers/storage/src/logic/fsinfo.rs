//! guest-get-fsinfo: qemu-ga's walk from a mount's device through sysfs
//! to the PCI controller and bus address of each disk under it.

use std::io;

use super::sysfs::basename;
use super::{BusType, DiskAddress, Kind, Mount, Sys, strerror};

/// GuestFilesystemInfo without the statvfs sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsInfo {
    pub name: String,
    pub mountpoint: String,
    pub fstype: String,
    pub disk: Vec<DiskAddress>,
}

impl Sys {
    /// qemu-ga's `build_guest_fsinfo_for_device`: appends to `disks` and
    /// sets `name` if unset.
    pub fn fsinfo_for_device(
        &self,
        devpath: &str,
        name: &mut Option<String>,
        disks: &mut Vec<DiskAddress>,
    ) -> Result<(), String> {
        let syspath = match self.realpath(devpath) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                name.get_or_insert_with(|| basename(devpath));
                return Ok(());
            }
            Err(e) => return Err(format!("realpath(\"{devpath}\"): {}", strerror(&e))),
        };
        name.get_or_insert_with(|| basename(&syspath));
        if syspath.contains("/devices/virtual/block/") {
            self.fsinfo_for_virtual_device(&syspath, name, disks)
        } else {
            self.fsinfo_for_real_device(&syspath, disks)
        }
    }

    fn fsinfo_for_virtual_device(
        &self,
        syspath: &str,
        name: &mut Option<String>,
        disks: &mut Vec<DiskAddress>,
    ) -> Result<(), String> {
        let dirpath = format!("{syspath}/slaves");
        let entries = match self.list(&dirpath) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("opendir(\"{dirpath}\"): {}", strerror(&e))),
        };
        for (entry, kind) in entries {
            if kind == Kind::Link {
                self.fsinfo_for_device(&format!("{syspath}/slaves/{entry}"), name, disks)?;
            }
        }
        Ok(())
    }

    fn fsinfo_for_real_device(&self, syspath: &str, disks: &mut Vec<DiskAddress>) -> Result<(), String> {
        let mut disk = DiskAddress {
            pci: [-1; 4],
            bus_type: BusType::Unknown,
            bus: 0,
            target: 0,
            unit: 0,
            serial: None,
            dev: None,
        };
        disk.dev = self.devnode(syspath);
        disk.serial = self.udev_property(syspath, "ID_SERIAL").filter(|s| !s.is_empty());
        let has_hwinf = if syspath.contains("/devices/pci") {
            self.fsinfo_for_pci_dev(syspath, &mut disk)?
        } else {
            false
        };
        if has_hwinf || disk.dev.is_some() || disk.serial.is_some() {
            disks.insert(0, disk);
        }
        Ok(())
    }

    fn pci_driver(&self, prefix: &str) -> Option<String> {
        self.read_link(&format!("{prefix}/driver")).ok().map(|l| basename(&l))
    }

    /// qemu-ga's `build_guest_fsinfo_for_pci_dev`.
    fn fsinfo_for_pci_dev(&self, syspath: &str, disk: &mut DiskAddress) -> Result<bool, String> {
        const DRIVERS: [&str; 5] = ["ata_piix", "sym53c8xx", "virtio-pci", "ahci", "nvme"];
        let Some(start) = syspath.find("/devices/pci") else {
            return Ok(false);
        };
        // "%*x:%*x/%x:%x:%x.%x"
        let after = &syspath[start + 12..];
        let Some(slash) = after.find('/') else {
            return Ok(false);
        };
        let (root_bus, rest) = after.split_at(slash);
        if scan_hex_pair(root_bus).is_none() {
            return Ok(false);
        }
        let Some((mut pci, len)) = scan_pci(rest) else {
            return Ok(false);
        };
        let mut pos = start + 12 + slash + len;
        let driver = loop {
            if let Some(d) = self.pci_driver(&syspath[..pos])
                && DRIVERS.contains(&d.as_str())
            {
                break d;
            }
            match scan_pci(&syspath[pos..]) {
                Some((next, len)) => {
                    pci = next;
                    pos += len;
                }
                None => return Ok(false),
            }
        };
        // "/target%*u:%*u:%*u/%*u:%u:%u:%u"
        let tgt = syspath.find("/target").and_then(|p| scan_target(&syspath[p + 7..]));
        let (host_at, ata) = match syspath.find("/ata") {
            Some(p) => (Some((p, p + 4)), true),
            None => (syspath.find("/host").map(|p| (p, p + 5)), false),
        };
        let mut host = None;
        let mut hosts = Vec::new();
        if let Some((p, q)) = host_at
            && let Some(h) = scan_leading_uint(&syspath[q..])
        {
            host = Some(h);
            hosts = self.build_hosts(&syspath[..p], ata)?;
        }
        disk.pci = pci.map(i64::from);
        match driver.as_str() {
            "ata_piix" => {
                let (Some(host), Some(tgt)) = (host, tgt) else {
                    return Ok(false);
                };
                let Some(i) = hosts.iter().position(|h| *h == host) else {
                    return Ok(false);
                };
                disk.bus_type = BusType::Ide;
                disk.bus = i as i64;
                disk.unit = i64::from(tgt[1]);
            }
            "sym53c8xx" => {
                let Some(tgt) = tgt else {
                    return Ok(false);
                };
                disk.bus_type = BusType::Scsi;
                disk.unit = i64::from(tgt[1]);
            }
            "virtio-pci" => match tgt {
                Some(tgt) => {
                    disk.bus_type = BusType::Scsi;
                    disk.unit = i64::from(tgt[2]);
                }
                None => disk.bus_type = BusType::Virtio,
            },
            "ahci" => {
                let (Some(host), Some(_)) = (host, tgt) else {
                    return Ok(false);
                };
                let Some(i) = hosts.iter().position(|h| *h == host) else {
                    return Ok(false);
                };
                disk.unit = i as i64;
                disk.bus_type = BusType::Sata;
            }
            "nvme" => disk.bus_type = BusType::Nvme,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// qemu-ga's `build_hosts`: the sorted numbers of the `ataN` or `hostN`
    /// siblings (at most 8, in directory order before sorting).
    fn build_hosts(&self, dir: &str, ata: bool) -> Result<Vec<u32>, String> {
        let entries = self
            .list(dir)
            .map_err(|e| format!("opendir(\"{dir}\"): {}", strerror(&e)))?;
        let prefix = if ata { "ata" } else { "host" };
        let mut hosts: Vec<u32> = entries
            .iter()
            .filter_map(|(name, _)| name.strip_prefix(prefix).and_then(scan_leading_int))
            .take(8)
            .collect();
        hosts.sort_unstable();
        Ok(hosts)
    }

    /// guest-get-fsinfo for these mounts, most recent mount first.
    pub fn fsinfo(&self, mounts: &[Mount]) -> Result<Vec<FsInfo>, String> {
        let mut out = Vec::new();
        for m in mounts {
            let devpath = format!("/sys/dev/block/{}:{}", m.devmajor, m.devminor);
            let mut name = None;
            let mut disk = Vec::new();
            self.fsinfo_for_device(&devpath, &mut name, &mut disk)?;
            out.insert(
                0,
                FsInfo {
                    name: name.unwrap_or_default(),
                    mountpoint: m.dirname.clone(),
                    fstype: m.devtype.clone(),
                    disk,
                },
            );
        }
        Ok(out)
    }

    pub(super) fn disk_address(&self, syspath: &str) -> Option<DiskAddress> {
        let mut name = None;
        let mut disks = Vec::new();
        match self.fsinfo_for_device(syspath, &mut name, &mut disks) {
            Ok(()) => disks.into_iter().next(),
            Err(_) => None,
        }
    }
}

fn scan_hex(s: &str) -> Option<(u32, usize)> {
    let len = s.bytes().take_while(u8::is_ascii_hexdigit).count();
    if len == 0 {
        return None;
    }
    Some((u32::from_str_radix(&s[..len.min(8)], 16).ok()?, len))
}

fn scan_hex_pair(s: &str) -> Option<()> {
    let (_, a) = scan_hex(s)?;
    let s = s[a..].strip_prefix(':')?;
    scan_hex(s).map(|_| ())
}

/// "/%x:%x:%x.%x": the four numbers and the length consumed.
fn scan_pci(s: &str) -> Option<([u32; 4], usize)> {
    let mut pos = 1;
    if !s.starts_with('/') {
        return None;
    }
    let mut out = [0u32; 4];
    for (i, sep) in [Some(':'), Some(':'), Some('.'), None].into_iter().enumerate() {
        let (v, len) = scan_hex(&s[pos..])?;
        out[i] = v;
        pos += len;
        if let Some(sep) = sep {
            if !s[pos..].starts_with(sep) {
                return None;
            }
            pos += 1;
        }
    }
    Some((out, pos))
}

fn scan_leading_uint(s: &str) -> Option<u32> {
    let len = s.bytes().take_while(u8::is_ascii_digit).count();
    if len == 0 {
        return None;
    }
    Some(s[..len].parse::<u64>().map_or(u32::MAX, |v| v as u32))
}

fn scan_leading_int(s: &str) -> Option<u32> {
    scan_leading_uint(s)
}

/// "%*u:%*u:%*u/%*u:%u:%u:%u" after "/target".
fn scan_target(s: &str) -> Option<[u32; 3]> {
    let (first, second) = s.split_once('/')?;
    let nums: Vec<&str> = first.split(':').collect();
    if nums.len() != 3 || nums.iter().any(|n| scan_leading_uint(n).is_none()) {
        return None;
    }
    let mut it = second.splitn(4, ':');
    let _ = scan_leading_uint(it.next()?)?;
    let a = scan_leading_uint(it.next()?)?;
    let b = scan_leading_uint(it.next()?)?;
    let c = scan_leading_uint(it.next()?)?;
    Some([a, b, c])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn pci_and_target_scans() {
        assert_eq!(scan_pci("/0000:00:1f.2/ata1"), Some(([0, 0, 0x1f, 2], 13)));
        assert_eq!(scan_target("0:0:0/0:0:1:2/block"), Some([0, 1, 2]));
    }

    /// A sysfs-shaped tree with real directories and relative symlinks.
    struct Tree(PathBuf);

    impl Tree {
        fn new(tag: &str) -> Tree {
            let dir = std::env::temp_dir().join(format!("qga-storage-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Tree(dir)
        }
        fn file(&self, path: &str, text: &str) {
            let p = self.0.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        fn dir(&self, path: &str) {
            std::fs::create_dir_all(self.0.join(path.trim_start_matches('/'))).unwrap();
        }
        fn link(&self, path: &str, target: &str) {
            let p = self.0.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, p).unwrap();
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn one_disk(t: &Tree, major_minor: &str) -> (Option<String>, Vec<DiskAddress>) {
        let sys = Sys::new(&t.0);
        let mut name = None;
        let mut disks = Vec::new();
        sys.fsinfo_for_device(&format!("/sys/dev/block/{major_minor}"), &mut name, &mut disks)
            .unwrap();
        (name, disks)
    }

    #[test]
    fn sata_disk_on_ahci() {
        let t = Tree::new("sata");
        let pci = "/sys/devices/pci0000:00/0000:00:1f.2";
        t.link(&format!("{pci}/driver"), "../../../bus/pci/drivers/ahci");
        t.dir(&format!("{pci}/ata1"));
        t.dir(&format!("{pci}/ata3"));
        let dev = format!("{pci}/ata3/host2/target2:0:0/2:0:0:0/block/sda");
        t.file(
            &format!("{dev}/uevent"),
            "MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\n",
        );
        t.file("/run/udev/data/b8:0", "E:ID_SERIAL=QEMU_HARDDISK_QM00005\n");
        t.link(
            "/sys/dev/block/8:0",
            &format!("../..{}", dev.trim_start_matches("/sys")),
        );
        let (name, disks) = one_disk(&t, "8:0");
        assert_eq!(name.as_deref(), Some("sda"));
        assert_eq!(disks.len(), 1);
        let d = &disks[0];
        assert_eq!(d.bus_type, BusType::Sata);
        assert_eq!(d.pci, [0, 0, 0x1f, 2]);
        assert_eq!(d.unit, 1, "ata3 is the second ata host");
        assert_eq!(d.dev.as_deref(), Some("/dev/sda"));
        assert_eq!(d.serial.as_deref(), Some("QEMU_HARDDISK_QM00005"));
    }

    #[test]
    fn ide_virtio_scsi_nvme_and_virtio_blk() {
        let t = Tree::new("buses");
        // IDE: ata_piix, second ata host, unit 1.
        let ide = "/sys/devices/pci0000:00/0000:00:01.1";
        t.link(&format!("{ide}/driver"), "../../../bus/pci/drivers/ata_piix");
        t.dir(&format!("{ide}/ata1"));
        t.dir(&format!("{ide}/ata2"));
        let hda = format!("{ide}/ata2/host1/target1:0:1/1:0:1:0/block/sdb");
        t.file(&format!("{hda}/uevent"), "MAJOR=8\nMINOR=16\nDEVNAME=sdb\n");
        t.link(
            "/sys/dev/block/8:16",
            &format!("../..{}", hda.trim_start_matches("/sys")),
        );
        // virtio-scsi behind virtio-pci, LUN 3.
        let vs = "/sys/devices/pci0000:00/0000:00:05.0";
        t.link(&format!("{vs}/driver"), "../../../bus/pci/drivers/virtio-pci");
        let sdc = format!("{vs}/virtio2/host3/target3:0:2/3:0:2:3/block/sdc");
        t.file(&format!("{sdc}/uevent"), "MAJOR=8\nMINOR=32\nDEVNAME=sdc\n");
        t.link(
            "/sys/dev/block/8:32",
            &format!("../..{}", sdc.trim_start_matches("/sys")),
        );
        // NVMe behind a PCI bridge: the driver is found on the second level.
        let br = "/sys/devices/pci0000:00/0000:00:1c.0";
        t.link(&format!("{br}/driver"), "../../../bus/pci/drivers/pcieport");
        let nv = format!("{br}/0000:01:00.0");
        t.link(&format!("{nv}/driver"), "../../../../bus/pci/drivers/nvme");
        let n = format!("{nv}/nvme/nvme0/nvme0n1");
        t.file(&format!("{n}/uevent"), "MAJOR=259\nMINOR=0\nDEVNAME=nvme0n1\n");
        t.link(
            "/sys/dev/block/259:0",
            &format!("../..{}", n.trim_start_matches("/sys")),
        );
        // virtio-blk partition.
        let vb = "/sys/devices/pci0000:00/0000:00:02.0";
        t.link(&format!("{vb}/driver"), "../../../bus/pci/drivers/virtio-pci");
        let vda1 = format!("{vb}/virtio0/block/vda/vda1");
        t.file(&format!("{vda1}/uevent"), "MAJOR=254\nMINOR=1\nDEVNAME=vda1\n");
        t.link(
            "/sys/dev/block/254:1",
            &format!("../..{}", vda1.trim_start_matches("/sys")),
        );

        let (_, d) = one_disk(&t, "8:16");
        assert_eq!(
            (d[0].bus_type, d[0].bus, d[0].unit, d[0].pci),
            (BusType::Ide, 1, 1, [0, 0, 1, 1])
        );
        let (_, d) = one_disk(&t, "8:32");
        assert_eq!((d[0].bus_type, d[0].unit, d[0].pci), (BusType::Scsi, 3, [0, 0, 5, 0]));
        let (_, d) = one_disk(&t, "259:0");
        assert_eq!((d[0].bus_type, d[0].pci), (BusType::Nvme, [0, 1, 0, 0]));
        assert_eq!(d[0].dev.as_deref(), Some("/dev/nvme0n1"));
        let (name, d) = one_disk(&t, "254:1");
        assert_eq!(name.as_deref(), Some("vda1"));
        assert_eq!((d[0].bus_type, d[0].pci), (BusType::Virtio, [0, 0, 2, 0]));
        // A device sysfs does not know: the name from the devpath, no disk.
        let (name, d) = one_disk(&t, "9:9");
        assert_eq!(name.as_deref(), Some("9:9"));
        assert!(d.is_empty());
    }

    #[test]
    fn virtual_device_reports_its_slaves() {
        let t = Tree::new("dm");
        let vb = "/sys/devices/pci0000:00/0000:00:02.0";
        t.link(&format!("{vb}/driver"), "../../../bus/pci/drivers/virtio-pci");
        let vda1 = format!("{vb}/virtio0/block/vda/vda1");
        t.file(&format!("{vda1}/uevent"), "MAJOR=254\nMINOR=1\nDEVNAME=vda1\n");
        let dm = "/sys/devices/virtual/block/dm-0";
        t.file(&format!("{dm}/uevent"), "MAJOR=253\nMINOR=0\nDEVNAME=dm-0\n");
        t.link(
            &format!("{dm}/slaves/vda1"),
            "../../../../pci0000:00/0000:00:02.0/virtio0/block/vda/vda1",
        );
        t.link("/sys/dev/block/253:0", "../../devices/virtual/block/dm-0");
        let (name, d) = one_disk(&t, "253:0");
        assert_eq!(name.as_deref(), Some("dm-0"));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].dev.as_deref(), Some("/dev/vda1"));
    }
}
