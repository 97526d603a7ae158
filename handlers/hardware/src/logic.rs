//! qemu-ga 7.2's vCPU, memory-block and cpustats logic over an abstract
//! sysfs ([`Sys`]), so it is tested natively with a fake tree.

pub const CPU_DIR: &str = "/sys/devices/system/cpu";
pub const MEMORY_DIR: &str = "/sys/devices/system/memory/";
pub const PROC_STAT: &str = "/proc/stat";
/// sysconf(_SC_CLK_TCK): USER_HZ, 100 on every Linux ABI qemu-ga runs on.
pub const CLK_TCK: u64 = 100;

const ENOENT: i32 = 2;

/// An errno and its strerror text.
#[derive(Debug, Clone, PartialEq)]
pub struct SysError {
    pub errno: i32,
    pub message: String,
}

/// What the handler may do with sysfs.
pub trait Sys {
    fn open_dir(&mut self, path: &str) -> Result<(), SysError>;
    fn list_dir(&mut self, path: &str) -> Result<Vec<(String, bool)>, SysError>;
    fn read(&mut self, path: &str, max: u32) -> Result<Vec<u8>, SysError>;
    fn write(&mut self, path: &str, data: &[u8]) -> Result<(), SysError>;
}

fn enoent() -> SysError {
    SysError {
        errno: ENOENT,
        message: "No such file or directory".into(),
    }
}

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

#[derive(Debug, Clone, PartialEq)]
pub struct MemBlock {
    pub phys_index: u64,
    pub online: bool,
    pub can_offline: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Response {
    Success,
    NotFound,
    NotSupported,
    Failed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemResponse {
    pub phys_index: u64,
    pub response: Response,
    pub error_code: Option<i64>,
}

fn block_dir(index: u64) -> String {
    format!("/sys/devices/system/memory/memory{}/", index as i64)
}

/// strtoul(s, NULL, 10) of what follows "memory".
fn strtoul(s: &str) -> u64 {
    let s = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    let v = s[..n].parse::<u64>().unwrap_or(if n == 0 { 0 } else { u64::MAX });
    if neg { v.wrapping_neg() } else { v }
}

/// ga_read_sysfs_file: the bytes, or (errno, message). An empty read is an
/// error with errno 0.
fn read_sysfs(sys: &mut dyn Sys, dir: &str, name: &str, max: u32) -> Result<Vec<u8>, (i32, String)> {
    match sys.read(&format!("{dir}{name}"), max) {
        Err(e) => Err((e.errno, format!("open sysfs file \"{name}\": {}", e.message))),
        Ok(b) if b.is_empty() => Err((0, format!("pread sysfs file \"{name}\": unexpected EOF"))),
        Ok(b) => Ok(b),
    }
}

/// guest-get-memory-blocks: the memoryN directories in readdir order.
pub fn get_memory_blocks(sys: &mut dyn Sys) -> Result<Vec<MemBlock>, String> {
    let entries = match sys.list_dir(MEMORY_DIR) {
        Ok(e) => e,
        Err(e) if e.errno == ENOENT => return Ok(Vec::new()),
        Err(e) => {
            return Err(format!("Can't open directory\"{MEMORY_DIR}\": {}", e.message));
        }
    };
    let mut out = Vec::new();
    for (name, is_dir) in entries {
        if !name.starts_with("memory") || !is_dir {
            continue;
        }
        let index = strtoul(&name[6..]);
        let dir = block_dir(index);
        sys.open_dir(&dir)
            .map_err(|e| format!("open(\"{dir}\"): {}", e.message))?;
        let mut block = MemBlock {
            phys_index: index,
            online: false,
            can_offline: Some(false),
        };
        match read_sysfs(sys, &dir, "state", 10) {
            Err((ENOENT, _)) => {
                block.online = true;
                block.can_offline = Some(false);
            }
            Err((_, msg)) => return Err(msg),
            Ok(state) => {
                block.online = state.starts_with(b"online");
                match read_sysfs(sys, &dir, "removable", 1) {
                    Err((ENOENT, _)) => block.can_offline = Some(false),
                    Err((_, msg)) => return Err(msg),
                    Ok(r) => block.can_offline = Some(r[0] != b'0'),
                }
            }
        }
        out.push(block);
    }
    if out.is_empty() {
        return Err("guest reported zero memory blocks!".into());
    }
    Ok(out)
}

/// transfer_memory_block(sys2memblk = false) for one block.
fn set_memory_block(sys: &mut dyn Sys, block: &MemBlock) -> MemResponse {
    let mut result = MemResponse {
        phys_index: block.phys_index,
        response: Response::Success,
        error_code: None,
    };
    let mut fail = |response: Option<Response>, errno: i32| {
        if let Some(r) = response {
            result.response = r;
        }
        result.error_code = Some(i64::from(errno));
        result.clone()
    };
    if let Err(e) = sys.open_dir(MEMORY_DIR) {
        let r = (e.errno == ENOENT).then_some(Response::NotSupported);
        return fail(r, e.errno);
    }
    let dir = block_dir(block.phys_index);
    // an index that prints negative names no directory (and is outside the
    // grant's pattern): fail as open(2) would
    let opened = if (block.phys_index as i64) < 0 {
        Err(enoent())
    } else {
        sys.open_dir(&dir)
    };
    if let Err(e) = opened {
        let r = if e.errno == ENOENT {
            Response::NotFound
        } else {
            Response::Failed
        };
        return fail(Some(r), e.errno);
    }
    match read_sysfs(sys, &dir, "state", 10) {
        Err((ENOENT, _)) => {
            let r = (!block.online).then_some(Response::NotSupported);
            fail(r, ENOENT)
        }
        Err((errno, _)) => fail(Some(Response::Failed), errno),
        Ok(state) => {
            if block.online != state.starts_with(b"online") {
                let new_state: &[u8] = if block.online { b"online" } else { b"offline" };
                if let Err(e) = sys.write(&format!("{dir}state"), new_state) {
                    return fail(Some(Response::Failed), e.errno);
                }
            }
            result
        }
    }
}

/// guest-set-memory-blocks: one response per block, in order.
pub fn set_memory_blocks(sys: &mut dyn Sys, blocks: &[MemBlock]) -> Vec<MemResponse> {
    blocks.iter().map(|b| set_memory_block(sys, b)).collect()
}

/// guest-get-memory-block-info: block_size_bytes, hexadecimal.
pub fn memory_block_size(sys: &mut dyn Sys) -> Result<u64, String> {
    sys.open_dir(MEMORY_DIR)
        .map_err(|e| format!("open(\"{MEMORY_DIR}\"): {}", e.message))?;
    let buf = read_sysfs(sys, MEMORY_DIR, "block_size_bytes", 20).map_err(|(_, msg)| msg)?;
    Ok(strtol16(&buf) as u64)
}

/// strtol(buf, NULL, 16).
fn strtol16(buf: &[u8]) -> i64 {
    let s = String::from_utf8_lossy(buf);
    let s = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .filter(|r| r.starts_with(|c: char| c.is_ascii_hexdigit()))
        .unwrap_or(s);
    let n = s.bytes().take_while(u8::is_ascii_hexdigit).count();
    let v = i64::from_str_radix(&s[..n], 16).unwrap_or(if n == 0 { 0 } else { i64::MAX });
    if neg { v.wrapping_neg() } else { v }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CpuStat {
    pub cpu: i64,
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: Option<u64>,
    pub irq: Option<u64>,
    pub softirq: Option<u64>,
    pub steal: Option<u64>,
    pub guest: Option<u64>,
    pub guestnice: Option<u64>,
}

/// strtoul as %lu converts one word (None when it does not start with a
/// number).
fn lu(word: &str) -> Option<u64> {
    let (neg, w) = match word.as_bytes().first() {
        Some(b'-') => (true, &word[1..]),
        Some(b'+') => (false, &word[1..]),
        _ => (false, word),
    };
    let n = w.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let v = w[..n].parse::<u64>().unwrap_or(u64::MAX);
    Some(if neg { v.wrapping_neg() } else { v })
}

/// atoi.
fn atoi(s: &str) -> i64 {
    let s = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let (neg, w) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = w.bytes().take_while(u8::is_ascii_digit).count();
    let v = w[..n].parse::<i64>().unwrap_or(0) as i32;
    i64::from(if neg { v.wrapping_neg() } else { v })
}

/// guest-get-cpustats from /proc/stat: the "cpuN" lines, times in ms.
pub fn cpustats(stat: &[u8], clk_tck: u64) -> Vec<CpuStat> {
    let text = String::from_utf8_lossy(stat);
    let mut out = Vec::new();
    for line in text.split_inclusive('\n') {
        let mut words = line.split_ascii_whitespace();
        let Some(name) = words.next() else {
            continue; // sscanf returns EOF
        };
        if !name.starts_with("cpu") || name.len() == 3 {
            continue;
        }
        let mut nums = Vec::new();
        for w in words.take(10) {
            match lu(w) {
                Some(v) => nums.push(v),
                None => break,
            }
            // %lu stops a word at its first non-digit; the next conversion
            // then fails on the rest of it.
            if w.trim_start_matches(['-', '+']).bytes().any(|b| !b.is_ascii_digit()) {
                break;
            }
        }
        let converted = 1 + nums.len();
        if converted < 5 {
            break; // qemu-ga: "Parsing cpu stat from /proc/stat failed"
        }
        let ms = |v: u64| v.wrapping_mul(1000) / clk_tck;
        let at = |i: usize| nums.get(i).map(|v| ms(*v));
        out.push(CpuStat {
            cpu: atoi(&name[3..]),
            user: ms(nums[0]),
            nice: ms(nums[1]),
            system: ms(nums[2]),
            idle: ms(nums[3]),
            iowait: at(4),
            irq: at(5),
            softirq: at(6),
            steal: at(7),
            guest: at(8),
            guestnice: at(9),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A fake sysfs: files with contents, directories with entries.
    #[derive(Default)]
    struct Fake {
        files: BTreeMap<String, Vec<u8>>,
        dirs: BTreeMap<String, Vec<(String, bool)>>,
        writes: Vec<(String, Vec<u8>)>,
    }

    impl Sys for Fake {
        fn open_dir(&mut self, path: &str) -> Result<(), SysError> {
            let p = path.trim_end_matches('/');
            if self.dirs.contains_key(p) {
                Ok(())
            } else {
                Err(enoent())
            }
        }
        fn list_dir(&mut self, path: &str) -> Result<Vec<(String, bool)>, SysError> {
            self.dirs.get(path.trim_end_matches('/')).cloned().ok_or_else(enoent)
        }
        fn read(&mut self, path: &str, max: u32) -> Result<Vec<u8>, SysError> {
            let mut b = self.files.get(path).cloned().ok_or_else(enoent)?;
            b.truncate(max as usize);
            Ok(b)
        }
        fn write(&mut self, path: &str, data: &[u8]) -> Result<(), SysError> {
            self.writes.push((path.to_owned(), data.to_vec()));
            self.files.insert(path.to_owned(), data.to_vec());
            Ok(())
        }
    }

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

    #[test]
    fn memory_blocks_and_responses() {
        let mut f = Fake::default();
        f.dirs.insert(
            "/sys/devices/system/memory".into(),
            vec![
                ("memory9".into(), true),
                ("block_size_bytes".into(), false),
                ("memory0".into(), true),
            ],
        );
        f.dirs.insert("/sys/devices/system/memory/memory9".into(), vec![]);
        f.dirs.insert("/sys/devices/system/memory/memory0".into(), vec![]);
        f.files
            .insert("/sys/devices/system/memory/memory9/state".into(), b"online\n".to_vec());
        f.files
            .insert("/sys/devices/system/memory/memory9/removable".into(), b"1\n".to_vec());
        f.files
            .insert("/sys/devices/system/memory/memory0/state".into(), b"offline\n".to_vec());
        f.files.insert(
            "/sys/devices/system/memory/block_size_bytes".into(),
            b"8000000\n".to_vec(),
        );
        let b = get_memory_blocks(&mut f).unwrap();
        assert_eq!(
            b[0],
            MemBlock {
                phys_index: 9,
                online: true,
                can_offline: Some(true)
            }
        );
        assert_eq!(
            b[1],
            MemBlock {
                phys_index: 0,
                online: false,
                can_offline: Some(false)
            }
        );
        assert_eq!(memory_block_size(&mut f), Ok(134217728));
        let r = set_memory_blocks(
            &mut f,
            &[
                MemBlock {
                    phys_index: 9,
                    online: true,
                    can_offline: None,
                },
                MemBlock {
                    phys_index: 0,
                    online: true,
                    can_offline: None,
                },
                MemBlock {
                    phys_index: 5,
                    online: true,
                    can_offline: None,
                },
            ],
        );
        assert_eq!(
            r[0],
            MemResponse {
                phys_index: 9,
                response: Response::Success,
                error_code: None
            }
        );
        assert_eq!(
            r[1],
            MemResponse {
                phys_index: 0,
                response: Response::Success,
                error_code: None
            }
        );
        assert_eq!(
            r[2],
            MemResponse {
                phys_index: 5,
                response: Response::NotFound,
                error_code: Some(2)
            }
        );
        assert_eq!(
            f.writes,
            [(
                "/sys/devices/system/memory/memory0/state".to_owned(),
                b"online".to_vec()
            )]
        );
        let r = set_memory_blocks(
            &mut f,
            &[MemBlock {
                phys_index: u64::MAX,
                online: true,
                can_offline: None,
            }],
        );
        assert_eq!(
            r[0],
            MemResponse {
                phys_index: u64::MAX,
                response: Response::NotFound,
                error_code: Some(2)
            }
        );
    }

    #[test]
    fn cpustats_skip_total_and_scale_to_ms() {
        let stat = b"cpu  10 20 30 40 50 60 70 80 90 100\ncpu0 100 200 300 400 500 600 700 800 0 0\ncpu1 1 2 3 4\nintr 1 2 3\n";
        let s = cpustats(stat, 100);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].cpu, 0);
        assert_eq!(s[0].user, 1000);
        assert_eq!(s[0].iowait, Some(5000));
        assert_eq!(s[0].guestnice, Some(0));
        assert_eq!(
            s[1],
            CpuStat {
                cpu: 1,
                user: 10,
                nice: 20,
                system: 30,
                idle: 40,
                ..Default::default()
            }
        );
        // a short line stops the parse
        let s = cpustats(b"cpu0 1 2 3\ncpu1 1 2 3 4\n", 100);
        assert!(s.is_empty());
    }
}
