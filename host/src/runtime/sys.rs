//! The runtime's `unsafe`: loading compiled code, and the allocator
//! settings that hand memory freed by calls back to the kernel.

use wasmtime::Engine;
use wasmtime::component::Component;

/// Load a compiled component. `payload` must be the output of
/// `Engine::precompile_component`: held in memory since, or read back from
/// disk and checked by the caller against the sha256 stored beside it.
pub fn deserialize(engine: &Engine, payload: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` requires bytes produced by
    // `Engine::precompile_component` (wasmtime itself then checks version
    // and engine compatibility). The callers pass exactly that: cache::load
    // what `store` wrote from `precompile_component` in this program or in
    // `qga compile`, after matching the sha256 written alongside, so it is
    // neither truncated nor corrupted (the directory belongs to the agent's
    // operator: the state directory, or one they name); Inner::compile the
    // output of `precompile_component` it holds in memory, when it could
    // not be cached.
    unsafe { Component::deserialize(engine, payload) }
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

/// Make glibc serve allocations of 1 MiB and more with their own mappings
/// and unmap them on free (a fixed M_MMAP_THRESHOLD, which also turns off
/// glibc's dynamic threshold that would otherwise climb to 32 MiB after the
/// first large free and keep later transfer buffers in the heap). The
/// agent's RSS then falls back after a 48 MiB read or 64 MiB write.
pub fn return_large_allocations_to_os() {
    // SAFETY: mallopt only changes allocator tunables; it takes plain
    // integers and is safe to call at any time, from any thread.
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20) };
    if ok != 1 {
        tracing::warn!("mallopt(M_MMAP_THRESHOLD) failed");
    }
}
