//! A call's WASI context, built from its grant on the first WASI call the
//! handler makes: most commands make none (a clock read, a freeze status),
//! and building one — random generators, clocks, environment, preopened
//! directories — costs a good part of such a call.

use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use super::Grant;

/// The WASI context `grant` allows `command`: its environment and its
/// preopened directories, nothing else (no sockets are ever linked).
pub fn for_grant(command: &str, grant: &Grant) -> WasiCtx {
    let mut wasi = WasiCtxBuilder::new();
    // A call with WASI files (sysfs walks) runs on a handler thread: each
    // file operation is done right there, not handed to tokio's blocking
    // pool and waited for (two thread hops per operation).
    wasi.allow_blocking_current_thread(true);
    for (k, v) in &grant.env {
        wasi.env(k, v);
    }
    for p in &grant.preopens {
        let perms = if p.writable {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        };
        if let Err(e) = wasi.preopened_dir(&p.host, &p.guest, perms) {
            tracing::warn!("{command}: cannot preopen {}: {e}", p.host.display());
        }
    }
    wasi.build()
}
