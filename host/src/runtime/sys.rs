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
