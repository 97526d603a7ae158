//! The runtime's `unsafe`: loading compiled code, and handing freed memory
//! back to the kernel.

use wasmtime::Engine;
use wasmtime::component::Component;

/// Load a compiled component. `payload` must be the output of
/// `Engine::precompile_component`, checked by the caller against the sha256
/// stored beside it.
pub fn deserialize(engine: &Engine, payload: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `Component::deserialize` requires bytes produced by
    // `Engine::precompile_component` (wasmtime itself then checks version
    // and engine compatibility). The caller (cache::load) passes exactly
    // what `store` wrote from `precompile_component` in this program or in
    // `qga compile`, after matching the sha256 written alongside, so it is
    // neither truncated nor corrupted; the directory belongs to the agent's
    // operator (the state directory, or one they name).
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
