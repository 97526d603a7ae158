//! guest-get-vcpus and guest-set-vcpus (qemu-ga's transfer_vcpu).

use super::{CPU_DIR, ENOENT, Sys, SysError, enoent};

#[derive(Debug, Clone, PartialEq)]
pub struct Vcpu {
    pub logical_id: i64,
    pub online: bool,
    pub can_offline: Option<bool>,
}

/// sscanf(name, "cpu%ld", &id): the id when it converts.
fn cpu_id(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("cpu")?;
    let rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let (neg, digits) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let v: i64 = digits[..n].parse().unwrap_or(i64::MAX);
    Some(if neg { v.wrapping_neg() } else { v })
}

fn vcpu_dir(id: i64) -> String {
    format!("/sys/devices/system/cpu/cpu{id}/")
}

/// A vCPU directory: negative ids cannot exist (and are outside the grant's
/// pattern), so they fail as open(2) would.
fn open_vcpu_dir(sys: &mut dyn Sys, id: i64) -> Result<(), SysError> {
    if id < 0 {
        return Err(enoent());
    }
    sys.open_dir(&vcpu_dir(id))
}

/// transfer_vcpu(sys2vcpu = true).
fn read_vcpu(sys: &mut dyn Sys, vcpu: &mut Vcpu) -> Result<(), String> {
    let dir = vcpu_dir(vcpu.logical_id);
    open_vcpu_dir(sys, vcpu.logical_id).map_err(|e| format!("open(\"{dir}\"): {}", e.message))?;
    match sys.read(&format!("{dir}online"), 1) {
        Err(e) if e.errno == ENOENT => {
            vcpu.online = true;
            vcpu.can_offline = Some(false);
            Ok(())
        }
        Err(e) => Err(format!("open(\"{dir}/online\"): {}", e.message)),
        Ok(b) if b.is_empty() => Err(format!("pread(\"{dir}/online\"): unexpected EOF")),
        Ok(b) => {
            vcpu.online = b[0] != b'0';
            vcpu.can_offline = Some(true);
            Ok(())
        }
    }
}

/// transfer_vcpu(sys2vcpu = false).
fn write_vcpu(sys: &mut dyn Sys, vcpu: &Vcpu) -> Result<(), String> {
    let dir = vcpu_dir(vcpu.logical_id);
    open_vcpu_dir(sys, vcpu.logical_id).map_err(|e| format!("open(\"{dir}\"): {}", e.message))?;
    let file = format!("{dir}online");
    match sys.read(&file, 1) {
        Err(e) if e.errno == ENOENT => {
            if vcpu.online {
                Ok(()) // pretend successful re-onlining
            } else {
                Err(format!("logical processor #{} can't be offlined", vcpu.logical_id))
            }
        }
        Err(e) => Err(format!("open(\"{dir}/online\"): {}", e.message)),
        Ok(b) if b.is_empty() => Err(format!("pread(\"{dir}/online\"): unexpected EOF")),
        Ok(b) => {
            if vcpu.online != (b[0] != b'0') {
                let status = if vcpu.online { b"1" } else { b"0" };
                sys.write(&file, status)
                    .map_err(|e| format!("pwrite(\"{dir}/online\"): {}", e.message))?;
            }
            Ok(())
        }
    }
}

/// guest-get-vcpus: the cpuN entries of /sys/devices/system/cpu in readdir
/// order.
pub fn get_vcpus(sys: &mut dyn Sys) -> Result<Vec<Vcpu>, String> {
    let entries = sys
        .list_dir(CPU_DIR)
        .map_err(|e| format!("failed to list entries: {CPU_DIR}: {}", e.message))?;
    let mut out = Vec::new();
    for (name, _) in entries {
        let Some(id) = cpu_id(&name) else {
            continue;
        };
        let mut vcpu = Vcpu {
            logical_id: id,
            online: false,
            can_offline: Some(false),
        };
        read_vcpu(sys, &mut vcpu)?;
        out.push(vcpu);
    }
    if out.is_empty() {
        // qemu-ga asserts here (and dies); a clear error instead.
        return Err("guest reported zero vCPUs".into());
    }
    Ok(out)
}

/// guest-set-vcpus: how many were processed before the first failure; the
/// failure itself only when it is the first one.
pub fn set_vcpus(sys: &mut dyn Sys, vcpus: &[Vcpu]) -> Result<i64, String> {
    let mut processed = 0;
    for vcpu in vcpus {
        if let Err(e) = write_vcpu(sys, vcpu) {
            if processed == 0 {
                return Err(e);
            }
            break;
        }
        processed += 1;
    }
    Ok(processed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::fake::Fake;

    fn two_cpus() -> Fake {
        let mut f = Fake::default();
        f.dirs.insert(
            CPU_DIR.into(),
            vec![
                ("cpuidle".into(), true),
                ("cpu1".into(), true),
                ("online".into(), false),
                ("cpu0".into(), true),
            ],
        );
        f.dirs.insert("/sys/devices/system/cpu/cpu0".into(), vec![]);
        f.dirs.insert("/sys/devices/system/cpu/cpu1".into(), vec![]);
        f.files
            .insert("/sys/devices/system/cpu/cpu1/online".into(), b"1\n".to_vec());
        f
    }

    #[test]
    fn vcpus_in_readdir_order_cpu0_without_online_file() {
        let mut f = two_cpus();
        let v = get_vcpus(&mut f).unwrap();
        assert_eq!(
            v,
            [
                Vcpu {
                    logical_id: 1,
                    online: true,
                    can_offline: Some(true)
                },
                Vcpu {
                    logical_id: 0,
                    online: true,
                    can_offline: Some(false)
                },
            ]
        );
    }

    #[test]
    fn set_vcpus_writes_only_changes_and_counts() {
        let mut f = two_cpus();
        let off = |id| Vcpu {
            logical_id: id,
            online: false,
            can_offline: None,
        };
        let on = |id| Vcpu {
            logical_id: id,
            online: true,
            can_offline: None,
        };
        assert_eq!(set_vcpus(&mut f, &[on(1), on(0)]), Ok(2));
        assert!(f.writes.is_empty());
        assert_eq!(set_vcpus(&mut f, &[off(1), off(0)]), Ok(1));
        assert_eq!(
            f.writes,
            [("/sys/devices/system/cpu/cpu1/online".to_owned(), b"0".to_vec())]
        );
        assert_eq!(
            set_vcpus(&mut f, &[off(0)]),
            Err("logical processor #0 can't be offlined".to_owned())
        );
        assert_eq!(
            set_vcpus(&mut f, &[on(7)]),
            Err("open(\"/sys/devices/system/cpu/cpu7/\"): No such file or directory".to_owned())
        );
        assert_eq!(
            set_vcpus(&mut f, &[on(-1)]),
            Err("open(\"/sys/devices/system/cpu/cpu-1/\"): No such file or directory".to_owned())
        );
        assert_eq!(set_vcpus(&mut f, &[]), Ok(0));
    }
}
