//! The runtime's `unsafe`: loading compiled code, and the allocator
//! settings that decide when memory freed by calls goes back to the kernel.

#![allow(unsafe_code)] // the syscalls this module wraps

use wasmtime::Engine;
use wasmtime::component::Component;

/// Load a compiled component. `payload` must be the output of
/// `Engine::precompile_component`, from a source the agent trusts.
pub fn deserialize(engine: &Engine, payload: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` requires bytes produced by
    // `Engine::precompile_component` (wasmtime itself then checks version
    // and engine compatibility) and trusted: they become native code. The
    // callers pass exactly that: an artifact embedded in this binary by its
    // build script; a handlers-directory artifact whose sha256 the
    // operator's policy pins (`Inner::verify` refuses any other); the
    // artifact cache of a build with the compiler, written by this program
    // from `precompile_component` and checked against the sha256 stored
    // beside it (the state directory belongs to the agent); or the output
    // of `precompile_component` held in memory.
    unsafe { Component::deserialize(engine, payload) }
}

/// Unmap the whole pages of an embedded artifact from this process once
/// `deserialize` has copied it (they stay in the page cache): loading every
/// family would otherwise keep ~2 MB of the binary resident for nothing.
/// A later load of the same family faults them back in from the file.
pub fn release_embedded_pages(bytes: &'static [u8]) {
    let page = 4096usize;
    let start = (bytes.as_ptr() as usize).div_ceil(page) * page;
    let end = (bytes.as_ptr() as usize + bytes.len()) / page * page;
    if end <= start {
        return;
    }
    // SAFETY: [start, end) holds only whole pages inside `bytes`, a
    // `&'static [u8]` that `include_bytes!` placed in the binary's
    // read-only segment: a clean private file mapping that nothing ever
    // writes. MADV_DONTNEED drops those pages' entries from this process's
    // page tables; the next read maps the same file bytes again, so
    // `bytes` keeps its contents and every reference to it stays valid.
    let rc = unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    if rc != 0 {
        tracing::debug!(
            "madvise(MADV_DONTNEED) on an embedded artifact: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Return the allocator's free pages to the kernel (glibc `malloc_trim`),
/// so a burst of calls or a large transfer does not stay resident.
pub fn release_free_memory() {
    // SAFETY: malloc_trim takes no pointers and only walks the allocator's
    // own free lists under its locks; it is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Keep transfer buffers (a 4 MiB read is ~6 MiB of base64, copied a few
/// times) in the allocator's heap, where the next call reuses them without
/// page faults, instead of a fresh mapping per buffer: mmap only from
/// 32 MiB (glibc's largest threshold), and no automatic trim on free. The
/// dispatcher's trimmer hands the free pages back once the calls stop.
/// One arena for every thread: `malloc_trim` can shrink only the main
/// arena's top (a thread arena would keep its freed top resident), and
/// one arena also holds less idle slack than one per handler thread.
/// Fixed values also turn off glibc's dynamic thresholds.
pub fn keep_transfer_buffers_until_trim() {
    // SAFETY: mallopt only changes allocator tunables; it takes plain
    // integers and is safe to call at any time, from any thread.
    let ok = unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1) == 1
            && libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20) == 1
    };
    if !ok {
        tracing::warn!("mallopt(M_ARENA_MAX, M_MMAP_THRESHOLD, M_TRIM_THRESHOLD) failed");
    }
}

/// One mapping of this program's own file that nothing ever wrote: its
/// pages are exactly the file's (see [`clean_binary_mappings`]).
#[derive(Debug, PartialEq, Eq)]
struct CleanMapping {
    start: usize,
    end: usize,
}

/// The read-only (or read-execute) private mappings of the file with inode
/// `inode` that hold no anonymous page, from `/proc/self/smaps` text. A
/// mapping that was ever written (the relocated `.data.rel.ro`, `.data`)
/// has anonymous pages, or is writable, and is left out.
fn clean_binary_mappings(smaps: &str, inode: u64) -> Vec<CleanMapping> {
    let mut clean = Vec::new();
    let mut current: Option<CleanMapping> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16))
        {
            let perms = fields.next().unwrap_or("");
            let ino = fields.nth(2).and_then(|i| i.parse::<u64>().ok());
            let read_only_private = perms.len() == 4 && !perms.contains('w') && perms.ends_with('p');
            current = (ino == Some(inode) && read_only_private).then_some(CleanMapping { start, end });
            continue;
        }
        if first == "Anonymous:" {
            let anonymous_kib = fields.next().and_then(|n| n.parse::<u64>().ok());
            if let (Some(0), Some(mapping)) = (anonymous_kib, current.take()) {
                clean.push(mapping);
            }
            current = None;
        }
    }
    clean
}

/// Unmap from this process the pages of its own program file that are
/// mapped now (code run at start-up or by the last calls, read-only data):
/// they stay in the page cache, and what runs next faults its pages back
/// in from there. An idle agent then holds only the pages it uses, not
/// everything start-up touched. Called once the agent is quiet.
pub fn release_binary_pages() {
    use std::os::unix::fs::MetadataExt;
    let Ok(exe) = std::fs::metadata("/proc/self/exe") else {
        return;
    };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    for mapping in clean_binary_mappings(&smaps, exe.ino()) {
        // SAFETY: [start, end) is a whole mapping of this program's file,
        // private and without write permission, holding no anonymous page:
        // every page in it is the file's own content, unmodified (a page
        // that was ever written would be anonymous, and the mapping cannot
        // be written now). MADV_DONTNEED drops those pages from this
        // process's page tables; the next access maps the same file bytes
        // again from the page cache, so code and constants read the same
        // and every pointer into the mapping stays valid.
        let rc = unsafe {
            libc::madvise(
                mapping.start as *mut libc::c_void,
                mapping.end - mapping.start,
                libc::MADV_DONTNEED,
            )
        };
        if rc != 0 {
            tracing::debug!(
                "madvise(MADV_DONTNEED) on the program's pages: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unwritten_read_only_mappings_of_the_program_are_clean() {
        let smaps = "\
5600-5700 r--p 00000000 fe:00 42                         /usr/sbin/qga
Rss:                 100 kB
Anonymous:             0 kB
5700-5800 r-xp 00100000 fe:00 42                         /usr/sbin/qga
Anonymous:             0 kB
5800-5900 r--p 00200000 fe:00 42                         /usr/sbin/qga
Anonymous:             8 kB
5900-5a00 rw-p 00300000 fe:00 42                         /usr/sbin/qga
Anonymous:             0 kB
7000-7100 r-xp 00000000 fe:00 7                          /usr/lib/libc.so.6
Anonymous:             0 kB
7100-7200 rw-p 00000000 00:00 0 
Anonymous:             4 kB
7200-7300 r--s 00000000 fe:00 42                         /usr/sbin/qga
Anonymous:             0 kB
";
        assert_eq!(
            clean_binary_mappings(smaps, 42),
            [
                CleanMapping {
                    start: 0x5600,
                    end: 0x5700
                },
                CleanMapping {
                    start: 0x5700,
                    end: 0x5800
                }
            ]
        );
    }

    #[test]
    fn releasing_the_program_pages_keeps_it_running() {
        let before = rss_of_program();
        release_binary_pages();
        // Code and constants still work: the pages come back from the file.
        let text: String = (0..1000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        assert_eq!(text.len(), 1000);
        let after = rss_of_program();
        assert!(after < before, "{after} KiB of the program mapped, {before} before");
    }

    fn rss_of_program() -> u64 {
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata("/proc/self/exe").unwrap().ino();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut total = 0;
        let mut ours = false;
        for line in smaps.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.first().is_some_and(|f| f.contains('-') && !f.ends_with(':')) {
                ours = fields.get(4).and_then(|i| i.parse::<u64>().ok()) == Some(inode);
            } else if ours && fields.first() == Some(&"Rss:") {
                total += fields[1].parse::<u64>().unwrap();
            }
        }
        total
    }
}
