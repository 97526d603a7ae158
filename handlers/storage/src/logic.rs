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

use std::io;
use std::path::PathBuf;

pub use qga_text::mountinfo::{Mount, decode_mntname, parse_mountinfo};

/// One /proc/diskstats line, with qemu-ga's field availability.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskStat {
    pub name: String,
    pub major: u64,
    pub minor: u64,
    pub read_sectors: Option<u64>,
    pub read_ios: Option<u64>,
    pub read_merges: Option<u64>,
    pub write_sectors: Option<u64>,
    pub write_ios: Option<u64>,
    pub write_merges: Option<u64>,
    pub discard_sectors: Option<u64>,
    pub discard_ios: Option<u64>,
    pub discard_merges: Option<u64>,
    pub flush_ios: Option<u64>,
    pub read_ticks: Option<u64>,
    pub write_ticks: Option<u64>,
    pub discard_ticks: Option<u64>,
    pub flush_ticks: Option<u64>,
    pub ios_pgr: Option<u64>,
    pub total_ticks: Option<u64>,
    pub weight_ticks: Option<u64>,
}

/// scanf's `%lu`: optional sign, decimal digits, saturating; negative
/// values negated modulo 2^64.
fn scan_ulong(s: &str) -> Option<u64> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v = digits.parse::<u64>().unwrap_or(u64::MAX);
    Some(if neg { v.wrapping_neg() } else { v })
}

/// scanf's `%u` into an unsigned int (truncated to 32 bits).
fn scan_uint(s: &str) -> Option<u64> {
    scan_ulong(s).map(|v| u64::from(v as u32))
}

/// qemu-ga's `guest_get_diskstats`: every line with at least 7 fields
/// scanned; 7 (old partition format), 14, 18 and 20 decide which members
/// are present.
pub fn parse_diskstats(text: &str) -> Vec<DiskStat> {
    let mut out = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let mut values: Vec<u64> = Vec::new();
        let mut name = String::new();
        let mut count = 0;
        for (i, w) in words.iter().enumerate().take(20) {
            // "%u %u %s %lu %lu %lu %lu %lu %lu %lu %u %u %u %u %lu %lu %lu %u %lu %u"
            let v = match i {
                2 => {
                    name = (*w).to_owned();
                    Some(0)
                }
                0 | 1 | 10 | 11 | 12 | 13 | 17 | 19 => scan_uint(w),
                _ => scan_ulong(w),
            };
            match v {
                Some(v) => values.push(v),
                None => break,
            }
            count = i + 1;
        }
        if count < 7 {
            continue;
        }
        let f = |i: usize| values.get(i).copied();
        let mut d = DiskStat {
            name,
            major: f(0).unwrap_or(0),
            minor: f(1).unwrap_or(0),
            ..DiskStat::default()
        };
        if count == 7 {
            d.read_ios = f(3);
            d.read_sectors = f(4);
            d.write_ios = f(5);
            d.write_sectors = f(6);
        }
        if count >= 14 {
            d.read_ios = f(3);
            d.read_merges = f(4);
            d.read_sectors = f(5);
            d.read_ticks = f(6);
            d.write_ios = f(7);
            d.write_merges = f(8);
            d.write_sectors = f(9);
            d.write_ticks = f(10);
            d.ios_pgr = f(11);
            d.total_ticks = f(12);
            d.weight_ticks = f(13);
        }
        if count >= 18 {
            d.discard_ios = f(14);
            d.discard_merges = f(15);
            d.discard_sectors = f(16);
            d.discard_ticks = f(17);
        }
        if count >= 20 {
            d.flush_ios = f(18);
            d.flush_ticks = f(19);
        }
        out.push(d);
    }
    out
}

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

/// GuestFilesystemInfo without the statvfs sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsInfo {
    pub name: String,
    pub mountpoint: String,
    pub fstype: String,
    pub disk: Vec<DiskAddress>,
}

/// GuestDiskInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskInfo {
    pub name: String,
    pub partition: bool,
    pub dependencies: Option<Vec<String>>,
    pub address: Option<DiskAddress>,
    pub alias: Option<String>,
}

/// What a directory entry is (readdir's d_type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dir,
    Link,
    Other,
}

/// strerror text of an I/O error (as WASI reports it, or the OS).
pub fn strerror(e: &io::Error) -> String {
    let text = match e.kind() {
        io::ErrorKind::NotFound => "No such file or directory",
        io::ErrorKind::PermissionDenied => "Permission denied",
        io::ErrorKind::NotADirectory => "Not a directory",
        _ => return e.to_string(),
    };
    text.to_owned()
}

/// Directories above the preopens, never symlinks, that the component
/// cannot stat (no preopen holds them): realpath takes them as they are.
const PLAIN_DIRS: &[&str] = &["/sys", "/sys/dev", "/run", "/run/udev"];

/// Reads below a root, with sysfs's relative symlinks resolved inside it.
pub struct Sys {
    root: PathBuf,
    /// realpath of the directories met so far in this call (sysfs does not
    /// move under one call).
    dirs: std::cell::RefCell<std::collections::HashMap<String, String>>,
}

fn basename(path: &str) -> String {
    path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("").to_owned()
}

impl Sys {
    pub fn new(root: impl Into<PathBuf>) -> Sys {
        Sys {
            root: root.into(),
            dirs: Default::default(),
        }
    }

    fn host(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// realpath of a directory, remembered for the rest of the call.
    fn real_dir(&self, dir: &str) -> io::Result<String> {
        if let Some(real) = self.dirs.borrow().get(dir) {
            return Ok(real.clone());
        }
        let real = self.realpath(dir)?;
        self.dirs.borrow_mut().insert(dir.to_owned(), real.clone());
        Ok(real)
    }

    /// `path` with its directories resolved (the last component as is).
    fn in_real_dir(&self, path: &str) -> io::Result<String> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let dir = self.real_dir(if dir.is_empty() { "/" } else { dir })?;
        Ok(format!("{}/{name}", dir.trim_end_matches('/')))
    }

    pub fn read_string(&self, path: &str) -> io::Result<String> {
        match std::fs::read_to_string(self.host(&self.in_real_dir(path)?)) {
            // The file itself may be a symlink into another preopen: resolve it too.
            Err(e) if !matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => {
                std::fs::read_to_string(self.host(&self.realpath(path)?))
            }
            read => read,
        }
    }

    /// The target of the symlink `path` (its directories resolved first).
    pub fn read_link(&self, path: &str) -> io::Result<String> {
        self.read_link_raw(&self.in_real_dir(path)?)
    }

    fn read_link_raw(&self, resolved: &str) -> io::Result<String> {
        Ok(std::fs::read_link(self.host(resolved))?.to_string_lossy().into_owned())
    }

    /// Entry names and kinds, in the order the directory gives them.
    pub fn list(&self, path: &str) -> io::Result<Vec<(String, Kind)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(self.host(&self.real_dir(path)?))? {
            let entry = entry?;
            let kind = match entry.file_type() {
                Ok(t) if t.is_symlink() => Kind::Link,
                Ok(t) if t.is_dir() => Kind::Dir,
                _ => Kind::Other,
            };
            out.push((entry.file_name().to_string_lossy().into_owned(), kind));
        }
        Ok(out)
    }

    /// realpath(3) of an absolute path: every symlink on the way followed.
    pub fn realpath(&self, path: &str) -> io::Result<String> {
        let mut pending: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .rev()
            .map(str::to_owned)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut links = 0;
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            done.push(part);
            let current = format!("/{}", done.join("/"));
            if PLAIN_DIRS.contains(&current.as_str()) {
                continue;
            }
            let meta = std::fs::symlink_metadata(self.host(&current))?;
            if meta.file_type().is_symlink() {
                links += 1;
                if links > 40 {
                    return Err(io::Error::other("Too many levels of symbolic links"));
                }
                let target = self.read_link_raw(&current)?;
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                pending.extend(target.split('/').filter(|s| !s.is_empty()).rev().map(str::to_owned));
            }
        }
        Ok(format!("/{}", done.join("/")))
    }

    /// A udev property of the device at `syspath`: its uevent file, then
    /// udev's database entry (`/run/udev/data/b<major>:<minor>`).
    fn udev_property(&self, syspath: &str, key: &str) -> Option<String> {
        let uevent = self.read_string(&format!("{syspath}/uevent")).ok()?;
        let get = |text: &str, prefix: &str| text.lines().find_map(|l| l.strip_prefix(prefix).map(str::to_owned));
        if let Some(v) = get(&uevent, &format!("{key}=")) {
            return Some(v);
        }
        let major = get(&uevent, "MAJOR=")?;
        let minor = get(&uevent, "MINOR=")?;
        let db = self.read_string(&format!("/run/udev/data/b{major}:{minor}")).ok()?;
        get(&db, &format!("E:{key}="))
    }

    /// udev_device_get_devnode: `/dev/` + DEVNAME of the device.
    fn devnode(&self, syspath: &str) -> Option<String> {
        let uevent = self.read_string(&format!("{syspath}/uevent")).ok()?;
        uevent
            .lines()
            .find_map(|l| l.strip_prefix("DEVNAME="))
            .map(|name| format!("/dev/{name}"))
    }

    /// qemu-ga's `get_device_for_syspath`.
    fn device_for_syspath(&self, syspath: &str) -> Option<String> {
        let real = self.realpath(syspath).ok()?;
        self.devnode(&real)
    }

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

    fn disk_address(&self, syspath: &str) -> Option<DiskAddress> {
        let mut name = None;
        let mut disks = Vec::new();
        match self.fsinfo_for_device(syspath, &mut name, &mut disks) {
            Ok(()) => disks.into_iter().next(),
            Err(_) => None,
        }
    }

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

    #[test]
    fn diskstats_formats() {
        let text = "   8       0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17\n\
                    8 1 sda1 10 20 30 40\n\
                    8 2 short 1 2\n\
                    254 0 vda 1 2 3 4 5 6 7 8 9 10 11\n";
        let d = parse_diskstats(text);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].name, "sda");
        assert_eq!(d[0].read_ios, Some(1));
        assert_eq!(d[0].read_merges, Some(2));
        assert_eq!(d[0].read_sectors, Some(3));
        assert_eq!(d[0].discard_ticks, Some(15));
        assert_eq!(d[0].flush_ios, Some(16));
        assert_eq!(d[0].flush_ticks, Some(17));
        assert_eq!(d[1].read_ios, Some(10));
        assert_eq!(d[1].read_sectors, Some(20));
        assert_eq!(d[1].write_ios, Some(30));
        assert_eq!(d[1].write_sectors, Some(40));
        assert_eq!(d[1].read_merges, None);
        assert_eq!(d[2].weight_ticks, Some(11));
        assert_eq!(d[2].discard_ios, None);
    }

    #[test]
    fn diskstats_uint_fields_truncate_like_scanf() {
        let text = "8 0 sda 1 2 3 4 5 6 7 4294967297 9 10 11\n";
        assert_eq!(parse_diskstats(text)[0].write_ticks, Some(1));
    }

    #[test]
    fn pci_and_target_scans() {
        assert_eq!(scan_pci("/0000:00:1f.2/ata1"), Some(([0, 0, 0x1f, 2], 13)));
        assert_eq!(scan_target("0:0:0/0:0:1:2/block"), Some([0, 1, 2]));
        assert!(is_partition_name("nvme0n1", "nvme0n1p1"));
        assert!(is_partition_name("sda", "sda1"));
        assert!(!is_partition_name("sda", "sdab"));
        assert!(!is_partition_name("sda", "queue"));
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
