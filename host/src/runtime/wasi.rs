//! The WASI interfaces a command's instance is linked with, as its grant
//! names them: every command gets clocks, random, the CLI streams and
//! environment (the grant's `env`) and I/O streams, which reach nothing on
//! the system; only a command whose grant holds WASI preopens gets the
//! real `wasi:filesystem`. Never `wasi:sockets`: no command is granted the
//! network, so a component importing a socket interface fails to link
//! ("handler unavailable") instead of creating sockets in the agent.
//!
//! Components built for wasm32-wasip2 import the filesystem through std's
//! adapter even when they never use it, so a command without preopens gets
//! stubs ([`stub_filesystem`]): no preopened directory, no error code for
//! a stream error, and every other function fails the call with a
//! permission error; their resource types exist (those the filesystem
//! `use`s from `wasi:io` are the real ones) so the component links.

use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasData, Linker, ResourceTable, ResourceType, Val};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::sync as wasi_sync;
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, IoError};
use wasmtime_wasi::random::WasiRandom;

use crate::capabilities::Denied;

/// The prefix of the filesystem interfaces.
pub const FILESYSTEM: &str = "wasi:filesystem/";

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// The host type of a filesystem resource a command without the filesystem
/// can never hold (a descriptor, a directory stream).
struct UngrantedFilesystem;

/// Add the WASI interfaces every command gets (synchronous bindings): I/O,
/// clocks, random and the CLI world.
pub fn add_base_to_linker<T: WasiView>(l: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::bindings::io::error::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    wasi_sync::io::poll::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    wasi_sync::io::streams::add_to_linker::<T, HasIo>(l, |t| t.ctx().table)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    random::random::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    Ok(())
}

/// Add the real filesystem: for a command whose grant holds preopens (it
/// reaches those directories only).
pub fn add_filesystem_to_linker<T: WasiView>(l: &mut Linker<T>) -> wasmtime::Result<()> {
    filesystem::preopens::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    wasi_sync::filesystem::types::add_to_linker::<T, WasiFilesystem>(l, T::filesystem)?;
    Ok(())
}

/// The host type of a resource a filesystem interface exports: the real
/// one for the `wasi:io` types it uses, a type no call ever creates for
/// its own.
fn resource_type(name: &str) -> ResourceType {
    match name {
        "input-stream" => ResourceType::host::<DynInputStream>(),
        "output-stream" => ResourceType::host::<DynOutputStream>(),
        "error" => ResourceType::host::<IoError>(),
        "pollable" => ResourceType::host::<DynPollable>(),
        _ => ResourceType::host::<UngrantedFilesystem>(),
    }
}

/// Stub every filesystem interface `component` imports, for `command`
/// which is granted no preopen: `get-directories` returns none (std then
/// reports that no preopen covers a path, as with an empty preopen list),
/// `filesystem-error-code` knows no code, and any other function fails the
/// call with `permission denied: COMMAND is not granted wasi:filesystem/…`
/// (unreachable without a descriptor, which only a preopen gives).
pub fn stub_filesystem<T: 'static>(
    linker: &mut Linker<T>,
    engine: &Engine,
    component: &Component,
    command: &str,
) -> wasmtime::Result<()> {
    let ty = component.component_type();
    for (import, item) in ty.imports(engine) {
        if !import.starts_with(FILESYSTEM) {
            continue;
        }
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        let mut li = linker.instance(import)?;
        for (name, item) in instance.exports(engine) {
            match item.ty {
                ComponentItem::Resource(_) => li.resource(name, resource_type(name), |_, _| Ok(()))?,
                ComponentItem::ComponentFunc(_) if name == "get-directories" => {
                    li.func_new(name, |_, _, _, results| {
                        results[0] = Val::List(Vec::new());
                        Ok(())
                    })?
                }
                ComponentItem::ComponentFunc(_) if name == "filesystem-error-code" => {
                    li.func_new(name, |_, _, _, results| {
                        results[0] = Val::Option(None);
                        Ok(())
                    })?
                }
                ComponentItem::ComponentFunc(_) => {
                    let denied = Denied::Capability {
                        command: command.to_owned(),
                        interface: import.to_owned(),
                    };
                    li.func_new(name, move |_, _, _, _| Err(denied.clone().into()))?
                }
                ComponentItem::CoreFunc(_)
                | ComponentItem::Module(_)
                | ComponentItem::Component(_)
                | ComponentItem::ComponentInstance(_)
                | ComponentItem::Type(_) => {}
            }
        }
    }
    Ok(())
}
