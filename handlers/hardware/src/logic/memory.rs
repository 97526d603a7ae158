//! guest-get-memory-blocks, guest-set-memory-blocks and
//! guest-get-memory-block-info (qemu-ga's transfer_memory_block).

use super::{ENOENT, MEMORY_DIR, Sys, enoent};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::fake::Fake;

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
}
