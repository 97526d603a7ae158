//! The sandbox runtime: one shared engine, handler families (precompiled
//! and embedded, or from `--handlers DIR`: pinned `.cwasm` artifacts, or
//! `.wasm` components in a build with the compiler), loaded on first use,
//! and one fresh, limited instance per call.
//!
//! Per command (not per family) the runtime builds its own linker: WASI with
//! only the command's environment and preopens, the capability interfaces
//! its grant names, and for every other interface the component imports a
//! stub that fails the call with a permission error. Capabilities check
//! their arguments against the grant again before any syscall.

mod call;
mod engine;
mod error;
mod loading;
mod prompt;
mod reload;
mod schedule;
pub mod sources;
pub mod sys;
pub mod ticker;
pub mod trimmer;
pub mod wasi;

pub use crate::limits;
pub use engine::engine;
pub use error::{LoadError, RuntimeError};
#[cfg(feature = "compiler")]
pub use loading::compile_artifact;
pub use prompt::install_panic_hook;
pub use reload::ComponentEvent;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use wasmtime::Engine;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker};

use crate::capabilities::freeze::FreezeState;
use crate::capabilities::{CallCtx, Capability, Denied, Grant, HostState};
use crate::convert::Signature;
use crate::dispatch::{Backend, BackendCall, CommandSpec, Generation};
use crate::policy::{Policy, Ungranted};
use crate::protocol::QmpError;
use crate::qobject::{Dict, Value};
use crate::trust::Verdict;
use crate::write_gate::WriteGate;
use sources::Source;
use ticker::{Ticker, TickerThread};

/// WASI interfaces through which a handler could wait (a timer to sleep
/// on, sockets): a component importing any of them never runs on the
/// event loop. (WASI files need a preopen, and a prompt grant has none.)
const WAITING_WASI: &[&str] = &["wasi:clocks/monotonic-clock", "wasi:sockets/", "wasi:http/"];

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The agent's state directory (the file-handle counter, the freeze
    /// state). No compiled code is kept there: what ships is precompiled
    /// and embedded, a custom family comes precompiled (`.cwasm`), and a
    /// build with the compiler compiles a `.wasm` in memory at load.
    pub state_dir: PathBuf,
    /// `--handlers DIR`: `<family>.cwasm` (or `.wasm`) files there replace
    /// the embedded family of that name, other files add families.
    pub handlers_dir: Option<PathBuf>,
    /// Load the families built into the binary.
    pub embedded: bool,
    /// Per-command grants replacing the built-in ones.
    pub grants: BTreeMap<String, Grant>,
    /// Host state (open files, children) to keep from a previous runtime,
    /// e.g. across a reload; None loads it from `state_dir`.
    pub host_state: Option<Arc<HostState>>,
    /// The operator's policy: narrows every grant, pins component digests,
    /// says what to do with ungranted imports.
    pub policy: Arc<Policy>,
    /// `-F`/`fsfreeze-hook`: the hook run with `freeze` and `thaw`.
    pub fsfreeze_hook: Option<PathBuf>,
    /// The agent's log writes pass this gate; a freeze closes it.
    pub write_gate: Arc<WriteGate>,
}

impl RuntimeConfig {
    pub fn new(state_dir: impl Into<PathBuf>) -> RuntimeConfig {
        RuntimeConfig {
            state_dir: state_dir.into(),
            handlers_dir: None,
            embedded: true,
            grants: BTreeMap::new(),
            host_state: None,
            policy: Arc::new(Policy::default()),
            fsfreeze_hook: None,
            write_gate: WriteGate::new(),
        }
    }
}

/// One loaded family as `qga policy audit` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyInfo {
    pub family: String,
    pub digest: String,
    pub commands: Vec<String>,
    /// Every interface the component imports (WASI and capabilities).
    pub imports: Vec<String>,
    /// Where it came from ("embedded" or its path) and who signed it.
    pub trust: Verdict,
}

/// A compiled family, with each command ready to instantiate.
struct Loaded {
    /// A command whose grant or linking failed (ungranted-imports =
    /// "refuse") holds its reason: only that command is unavailable.
    commands: HashMap<String, Result<Arc<Prepared>, LoadError>>,
}

struct Prepared {
    command: Arc<str>,
    /// Runs on the event loop ([`Generation::is_prompt`]): decided at load.
    prompt: bool,
    pre: InstancePre<CallCtx>,
    export: ComponentExportIndex,
    signature: Signature,
    grant: Arc<Grant>,
}

struct Family {
    source: Source,
    commands: Vec<CommandSpec>,
    imports: Vec<String>,
    loaded: OnceLock<Result<Arc<Loaded>, LoadError>>,
}

/// One generation of the runtime: the policy (in `config`), the families
/// and the grants they were linked with. A reload builds a new one and
/// swaps it in one step; the dispatcher routes (allow/deny) and runs each
/// request by one generation, and calls in flight keep their `Arc` to the
/// old one and finish there.
struct Inner {
    /// Which generation: 1 at start, one more with every reload.
    serial: u64,
    engine: Engine,
    families: Vec<Family>,
    by_command: HashMap<String, usize>,
    config: RuntimeConfig,
    ticker: Arc<Ticker>,
    state: Arc<HostState>,
    /// Compiled components by digest, shared by every generation, so a
    /// reload that changes only the policy re-links without recompiling.
    compiled: Arc<Mutex<HashMap<String, Component>>>,
    /// Survives every swap.
    freeze: Arc<FreezeState>,
}

/// The component runtime. `Send + Sync`; share it as `Arc<Runtime>`.
pub struct Runtime {
    current: RwLock<Arc<Inner>>,
    /// Serializes reloads.
    reloading: Mutex<()>,
    /// Stops the ticker when the runtime goes.
    _ticker_thread: TickerThread,
    /// Where and when calls run (event loop or call slot).
    scheduler: schedule::Scheduler,
}

impl Runtime {
    /// Read the components and their command lists; compilation happens on
    /// first use (or a reload), never here. A component that
    /// fails its checks (export types, pinned digest) fails the start.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let engine = engine()?;
        let (ticker, ticker_thread) = Ticker::start(engine.clone())
            .map_err(|e| RuntimeError::Engine(format!("cannot start epoch ticker: {e}")))?;
        sys::keep_transfer_buffers_until_trim();
        let state = match &config.host_state {
            Some(s) => s.clone(),
            None => Arc::new(HostState::new(&config.state_dir)),
        };
        let freeze = Arc::new(FreezeState::load(
            &config.state_dir,
            config.fsfreeze_hook.clone(),
            config.write_gate.clone(),
        ));
        let mut inner = Inner {
            serial: 1,
            state,
            engine: engine.clone(),
            families: Vec::new(),
            by_command: HashMap::new(),
            config,
            ticker: ticker.clone(),
            compiled: Arc::new(Mutex::new(HashMap::new())),
            freeze,
        };
        for source in sources::read(&inner.config)? {
            let family = inner.verify(source)?;
            inner.add(family)?;
        }
        let inner = Arc::new(inner);
        Ok(Runtime {
            current: RwLock::new(inner),
            reloading: Mutex::new(()),
            _ticker_thread: ticker_thread,
            scheduler: schedule::Scheduler::default(),
        })
    }

    /// The live generation.
    fn current(&self) -> Arc<Inner> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every command of every family, families in load order (embedded
    /// first, then the handlers directory by file name), each in its
    /// interface's order.
    pub fn commands(&self) -> Vec<CommandSpec> {
        Generation::commands(&*self.current())
    }

    /// The host state shared by every call (open files, children): hand it
    /// to a replacement runtime through [`RuntimeConfig::host_state`].
    pub fn host_state(&self) -> Arc<HostState> {
        self.current().state.clone()
    }

    /// The loaded families, their digests, commands and imports.
    pub fn families(&self) -> Vec<FamilyInfo> {
        self.current()
            .families
            .iter()
            .map(|f| FamilyInfo {
                family: f.source.family.clone(),
                digest: f.source.digest.clone(),
                commands: f.commands.iter().map(|c| c.name.clone()).collect(),
                imports: f.imports.clone(),
                trust: f.source.trust.clone(),
            })
            .collect()
    }

    /// The effective grant of a command (built-in or configured, narrowed by
    /// the policy), or why it has none.
    pub fn grant(&self, command: &str) -> Result<Grant, LoadError> {
        let inner = self.current();
        let family = inner
            .by_command
            .get(command)
            .map(|&i| inner.families[i].source.family.as_str());
        inner.grant_for(family, command)
    }

    /// The sha256 of the component that runs `command`.
    pub fn digest_of(&self, command: &str) -> Option<String> {
        Generation::digest(&*self.current(), command)
    }

    /// Load (or compile) every family now; the first error.
    pub fn load_all(&self) -> Result<(), RuntimeError> {
        let inner = self.current();
        for (i, f) in inner.families.iter().enumerate() {
            inner.load(i).map_err(|reason| RuntimeError::Load {
                family: f.source.family.clone(),
                reason,
            })?;
        }
        Ok(())
    }

    /// Run one command in a fresh instance, on the live generation. Blocking.
    pub fn call(&self, command: &str, arguments: Option<&Dict>) -> Result<Option<Value>, QmpError> {
        self.current().call(command, arguments)
    }

    /// Hand what start-up alone used back to the kernel once the agent has
    /// been quiet for a while. Needs a tokio runtime.
    pub fn trim_when_quiet(&self) {
        self.scheduler.trim_when_quiet();
    }

    /// The live generation's serial: 1 at start, one more per reload.
    pub fn serial(&self) -> u64 {
        self.current().serial
    }
}

impl Backend for Runtime {
    fn generation(&self) -> Arc<dyn Generation> {
        self.current()
    }

    fn freeze_gate(&self) -> crate::state::FreezeGate {
        self.current().freeze.gate()
    }

    fn call<'a>(
        &'a self,
        generation: Arc<dyn Generation>,
        command: &'a str,
        arguments: Option<&'a Dict>,
    ) -> BackendCall<'a> {
        Box::pin(self.scheduler.run(generation, command, arguments))
    }
}

impl Inner {
    /// The command's own linker: WASI, its granted capabilities, and
    /// permission-denied stubs for everything else the component imports.
    fn linker(&self, component: &Component, command: &str, grant: &Grant) -> wasmtime::Result<Linker<CallCtx>> {
        let mut linker: Linker<CallCtx> = Linker::new(&self.engine);
        // The WASI interfaces the grant names (see wasi.rs): the filesystem
        // only with preopens; never sockets.
        wasi::add_base_to_linker(&mut linker)?;
        if grant.preopens.is_empty() {
            wasi::stub_filesystem(&mut linker, &self.engine, component, command)?;
        } else {
            wasi::add_filesystem_to_linker(&mut linker)?;
        }
        crate::capabilities::add_types_to_linker(&mut linker)?;
        for cap in &grant.capabilities {
            cap.add_to_linker(&mut linker)?;
        }
        let ty = component.component_type();
        for (import, item) in ty.imports(&self.engine) {
            if import.starts_with("wasi:") || import.starts_with(crate::capabilities::TYPES_INTERFACE) {
                continue;
            }
            let granted = Capability::from_interface(import).is_some_and(|c| grant.allows(c));
            let ComponentItem::ComponentInstance(instance) = item.ty else {
                continue;
            };
            if granted {
                continue;
            }
            let has_functions = instance
                .exports(&self.engine)
                .any(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)));
            if has_functions && self.config.policy.ungranted == Ungranted::Refuse {
                wasmtime::bail!(
                    "the component imports {import}, which {command} is not granted (policy: ungranted-imports = \"refuse\")"
                );
            }
            let mut li = linker.instance(import)?;
            for (func, item) in instance.exports(&self.engine) {
                if let ComponentItem::ComponentFunc(_) = item.ty {
                    let denied = Denied::Capability {
                        command: command.to_owned(),
                        interface: import.to_owned(),
                    };
                    li.func_new(func, move |_, _, _, _| Err(denied.clone().into()))?;
                }
            }
        }
        // Not `define_unknown_imports_as_traps`: it matches names exactly and
        // would shadow WASI imports of a newer 0.2.x with traps. A WASI
        // interface wasmtime-wasi lacks makes the component fail to load.
        Ok(linker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qga_engine::artifact;

    #[test]
    fn embedded_system_info_lists_its_commands_without_compiling() {
        let sources = sources::read(&RuntimeConfig::new(std::env::temp_dir())).unwrap();
        let source = sources
            .iter()
            .find(|s| s.family == "system-info")
            .expect("system-info is embedded");
        let (metadata, _) = artifact::decode(&source.bytes).unwrap();
        let names: Vec<String> = metadata
            .commands
            .into_iter()
            .map(|c| {
                assert!(c.success_response);
                c.name
            })
            .collect();
        assert_eq!(
            names,
            [
                "guest-get-time",
                "guest-get-host-name",
                "guest-get-timezone",
                "guest-get-osinfo",
                "guest-get-users",
                "guest-get-load"
            ]
        );
    }
}
