//! The one engine configuration.

use wasmtime::Engine;

use super::RuntimeError;

/// The engine, configured by `qga_engine::config` for the target this
/// agent was built for: the one configuration the build script precompiled
/// the embedded families with, so their artifacts load.
pub fn engine() -> Result<Engine, RuntimeError> {
    qga_engine::engine(env!("QGA_TARGET")).map_err(|e| RuntimeError::Engine(format!("{e:#}")))
}
