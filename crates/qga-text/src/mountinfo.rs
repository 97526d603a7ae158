//! `/proc/self/mountinfo` as qemu-ga 7.2 reads it (`build_fs_mount_list`).

/// A mounted filesystem as qemu-ga's `build_fs_mount_list` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub dirname: String,
    pub devtype: String,
    pub devmajor: u32,
    pub devminor: u32,
}

/// Undo mountinfo's octal escapes (`\040` for a space, `\\`), as qemu-ga's
/// `decode_mntname`.
pub fn decode_mntname(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if let (Some(&a), Some(&c), Some(&d)) = (b.get(i + 1), b.get(i + 2), b.get(i + 3))
            && (b'0'..=b'3').contains(&a)
            && (b'0'..=b'7').contains(&c)
            && (b'0'..=b'7').contains(&d)
        {
            out.push((a - b'0') * 64 + (c - b'0') * 8 + (d - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// qemu-ga's mount list from /proc/self/mountinfo: every line with a block
/// device (major != 0), plus btrfs whose source `block_dev` resolves to a
/// block device node's numbers; a device already listed (a bind mount, or
/// the same filesystem mounted twice) is skipped, as qemu-ga 10.0 skips it
/// (freezing it twice deadlocked; qemu issues #520, #592).
pub fn parse_mountinfo(text: &str, block_dev: &dyn Fn(&str) -> Option<(u32, u32)>) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut fields = line.split(' ');
        let (Some(_id), Some(_parent), Some(dev), Some(_root), Some(dir)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        let Some((major, minor)) = dev.split_once(':') else {
            continue;
        };
        let (Ok(mut devmajor), Ok(mut devminor)) = (major.parse::<u32>(), minor.parse::<u32>()) else {
            continue;
        };
        let Some((_, rest)) = line.split_once(" - ") else {
            continue;
        };
        let mut rest = rest.split(' ');
        let devtype = rest.next().unwrap_or("").to_owned();
        let source = decode_mntname(rest.next().unwrap_or(""));
        if devmajor == 0 {
            if devtype != "btrfs" {
                continue;
            }
            match block_dev(&source) {
                Some((ma, mi)) => (devmajor, devminor) = (ma, mi),
                None => continue,
            }
        }
        if out
            .iter()
            .any(|m: &Mount| (m.devmajor, m.devminor) == (devmajor, devminor))
        {
            continue;
        }
        out.push(Mount {
            dirname: decode_mntname(dir),
            devtype,
            devmajor,
            devminor,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_keeps_block_devices_and_decodes_names() {
        let text = "22 27 0:21 / /proc rw - proc proc rw\n\
                    27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                    90 27 7:0 / /mnt/a\\040b rw - ext4 /dev/loop0 rw\n\
                    91 27 0:50 / /data rw - btrfs /dev/sdz rw\n\
                    92 27 0:51 / /nob rw - btrfs /dev/none rw\n\
                    garbage\n";
        let dev = |p: &str| (p == "/dev/sdz").then_some((8, 16));
        let mounts = parse_mountinfo(text, &dev);
        let names: Vec<_> = mounts
            .iter()
            .map(|m| (m.dirname.as_str(), m.devmajor, m.devminor))
            .collect();
        assert_eq!(names, [("/", 254, 0), ("/mnt/a b", 7, 0), ("/data", 8, 16)]);
        assert_eq!(mounts[1].devtype, "ext4");
    }

    #[test]
    fn a_device_already_listed_is_a_bind_mount_and_skipped() {
        let text = "27 1 254:0 / / rw - ext4 /dev/vda rw\n\
                    90 27 7:0 / /mnt/a rw - ext4 /dev/loop0 rw\n\
                    91 27 7:0 / /mnt/bind rw - ext4 /dev/loop0 rw\n\
                    92 27 7:0 /sub /srv/sub rw - ext4 /dev/loop0 rw\n\
                    93 27 0:50 / /data rw - btrfs /dev/sdz rw\n\
                    94 27 0:51 / /data2 rw - btrfs /dev/sdz rw\n";
        let dev = |p: &str| (p == "/dev/sdz").then_some((8, 16));
        let dirs: Vec<_> = parse_mountinfo(text, &dev).into_iter().map(|m| m.dirname).collect();
        assert_eq!(dirs, ["/", "/mnt/a", "/data"]);
    }

    #[test]
    fn decode_handles_backslashes_and_bad_escapes() {
        assert_eq!(decode_mntname("a\\\\b"), "a\\b");
        assert_eq!(decode_mntname("a\\011b"), "a\tb");
        assert_eq!(decode_mntname("a\\9x"), "a\\9x");
        assert_eq!(decode_mntname("end\\"), "end\\");
    }
}
