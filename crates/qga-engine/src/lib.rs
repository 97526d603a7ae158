//! The wasmtime engine configuration of qga, in one place: the build
//! script precompiles the embedded handler families with it (Cranelift,
//! as a build-dependency) and the agent loads them with it (no compiler).
//! A precompiled artifact only loads into an engine configured identically,
//! so the two cannot drift.
//!
//! Also what the agent must know about a family without compiling it — the
//! commands it exports and the interfaces it imports — read from a
//! component's `.wasm` here, once at build time for precompiled artifacts.

pub mod artifact;
pub mod metadata;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// The target triple the embedded artifacts are compiled for (set by the
/// build script of the crate that embeds them) and the agent runs on.
/// Naming the target explicitly makes Cranelift compile for the target's
/// baseline ISA (x86-64: SSE2 only, as QEMU's `qemu64` CPU model has)
/// instead of detecting the build machine's CPU features.
pub fn config(target: &str) -> wasmtime::Result<Config> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(64)
        .total_core_instances(512)
        .total_memories(64)
        .total_tables(512)
        .max_memory_size(1 << 30)
        // A call's pages stay mapped and are zeroed in place (no page faults
        // on the next call): only those the call wrote, as PAGEMAP_SCAN
        // reports them (Linux 6.7+; older kernels zero the lowest 256 KiB),
        // which is what keeps a command at ~20 µs.
        .linear_memory_keep_resident(256 << 10)
        .pagemap_scan(wasmtime::Enabled::Auto)
        .table_keep_resident(1 << 20)
        // Calls are synchronous: no async fiber stacks are ever taken. The
        // default pool of 1000 costs ~1000 guard-page mprotects at start.
        .total_stacks(1)
        // Only a few idle slots keep their pages: a burst of concurrent calls
        // must not leave its memory resident afterwards.
        .max_unused_warm_slots(2);
    let mut config = Config::new();
    config
        .target(target)?
        .wasm_component_model(true)
        .epoch_interruption(true)
        // No native-to-wasm offset tables in the artifacts (8% of their
        // size): trap messages name the trap kind only, never a wasm
        // offset. Compile-time only; artifacts load either way.
        .generate_address_map(false)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Ok(config)
}

/// An engine with [`config`].
pub fn engine(target: &str) -> wasmtime::Result<Engine> {
    Engine::new(&config(target)?)
}

/// Compile a component's `.wasm` into the artifact `Component::deserialize`
/// takes, for `target`'s baseline ISA.
#[cfg(feature = "compiler")]
pub fn precompile(target: &str, wasm: &[u8]) -> wasmtime::Result<Vec<u8>> {
    engine(target)?.precompile_component(wasm)
}
