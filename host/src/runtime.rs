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

pub mod limits;
pub mod sources;
pub mod sys;
pub mod ticker;
pub mod wasi;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use qga_engine::artifact;
use qga_engine::metadata::{self, PACKAGE};
use thiserror::Error;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentExportIndex, InstancePre, Linker, ResourceTable, Val};
use wasmtime::{Engine, Store, Trap};

use crate::capabilities::freeze::FreezeState;
use crate::capabilities::{Blob, BlobData, CallCtx, Capability, Denied, Grant, HostState};
use crate::convert::Signature;
use crate::dispatch::{Backend, CommandSpec};
use crate::policy::{Policy, Ungranted};
use crate::protocol::{ErrorClass, QmpError};
use crate::qobject::{Dict, Value};
use crate::trust::{Signer, TrustError, Verdict};
use crate::write_gate::WriteGate;
use limits::{CallLimiter, MemoryLimitHit};
use sources::{Bytes, Kind, Source};
use ticker::{TICK, Ticker, TickerThread};

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

#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("component for family {family} refused: {reason}")]
    Refused { family: String, reason: String },
    #[error("component for family {family} is invalid: {reason}")]
    BadComponent { family: String, reason: String },
    #[error("command {command} is exported by both family {first} and family {second}")]
    DuplicateCommand {
        command: String,
        first: String,
        second: String,
    },
    #[error("cannot set up the wasm engine: {0}")]
    Engine(String),
    #[error("family {family}: {reason}")]
    Compile { family: String, reason: String },
    #[error(
        "{path} is precompiled native code that the policy does not trust: pin its sha256 in the policy ([component.{family}] sha256 = \"…\", as `qga compile` prints it) or sign it with a key in [handlers] trusted-keys to load it"
    )]
    Untrusted { family: String, path: PathBuf },
    #[error(
        "{path} is a .wasm component and this agent has no compiler: run `qga compile {path}` (a qga built with the compiler feature) and pin the artifact's sha256 in the policy"
    )]
    NeedsCompiler { family: String, path: PathBuf },
    #[error("component for family {family} has sha256 {digest}, but the policy pins {pinned}")]
    PinMismatch {
        family: String,
        digest: String,
        pinned: String,
    },
}

/// What a (re)load did to one family, for the log and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentEvent {
    /// A family loaded for the first time.
    Loaded { family: String, digest: String },
    /// A family replaced by a new build.
    Swapped { family: String, old: String, new: String },
    /// A candidate refused; `kept` is the digest still serving, if any.
    Rejected {
        family: String,
        digest: String,
        reason: String,
        kept: Option<String>,
    },
    /// A family no longer present.
    Removed { family: String, digest: String },
    /// A family loaded although its signature is invalid or untrusted
    /// (`require-signature = false`): the warning and the signing key.
    Unverified {
        family: String,
        digest: String,
        warning: String,
        key: Option<String>,
    },
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
    commands: HashMap<String, Result<Arc<Prepared>, String>>,
}

struct Prepared {
    command: Arc<str>,
    /// Runs on the event loop ([`Backend::is_prompt`]): decided at load.
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
    loaded: OnceLock<Result<Arc<Loaded>, String>>,
}

/// One generation of the runtime: the families and the config they were
/// loaded with. A reload builds a new one and swaps it in; calls in flight
/// keep their `Arc` to the old one and finish there.
struct Inner {
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
}

/// The engine, configured by `qga_engine::config` for the target this
/// agent was built for: the one configuration the build script precompiled
/// the embedded families with, so their artifacts load.
pub fn engine() -> Result<Engine, RuntimeError> {
    qga_engine::engine(env!("QGA_TARGET")).map_err(|e| RuntimeError::Engine(format!("{e:#}")))
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
        })
    }

    /// The live generation.
    fn current(&self) -> Arc<Inner> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Hot swap: read the components again with `config` (its policy and
    /// pins), verify each (export types, pinned digest), compile and
    /// pre-instantiate every command, then switch atomically. A candidate
    /// that fails is rejected and the family's previous build keeps serving
    /// (under the new grants). Calls in flight finish on the old generation.
    /// Errors only when the handlers directory cannot be read; then nothing
    /// changes.
    pub fn reload(&self, config: RuntimeConfig) -> Result<Vec<ComponentEvent>, RuntimeError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.current();
        let candidates = sources::read(&config)?;
        let mut next = Inner {
            engine: old.engine.clone(),
            families: Vec::new(),
            by_command: HashMap::new(),
            config,
            ticker: old.ticker.clone(),
            compiled: old.compiled.clone(),
            state: old.state.clone(),
            freeze: old.freeze.clone(),
        };
        let mut events = Vec::new();
        for source in candidates {
            let name = source.family.clone();
            let digest = source.digest.clone();
            let previous = old.families.iter().find(|f| f.source.family == name);
            let accepted = next.verify(source).map_err(|e| e.to_string()).and_then(|family| {
                next.preload(&family)?;
                Ok(family)
            });
            let family = match accepted {
                Ok(family) => {
                    if let Some(warning) = family.source.trust.warning() {
                        events.push(ComponentEvent::Unverified {
                            family: name.clone(),
                            digest: digest.clone(),
                            warning,
                            key: family.source.trust.signer.key_id().map(str::to_owned),
                        });
                    }
                    match previous {
                        None => events.push(ComponentEvent::Loaded {
                            family: name.clone(),
                            digest: digest.clone(),
                        }),
                        Some(p) if p.source.digest != digest => events.push(ComponentEvent::Swapped {
                            family: name.clone(),
                            old: p.source.digest.clone(),
                            new: digest.clone(),
                        }),
                        Some(_) => {}
                    }
                    Some(family)
                }
                Err(reason) => {
                    events.push(ComponentEvent::Rejected {
                        family: name.clone(),
                        digest: digest.clone(),
                        reason,
                        kept: previous.map(|p| p.source.digest.clone()),
                    });
                    // The old build keeps serving, linked with the new grants.
                    previous.map(|p| {
                        let family = Family {
                            source: p.source.clone(),
                            commands: p.commands.clone(),
                            imports: p.imports.clone(),
                            loaded: OnceLock::new(),
                        };
                        let _ = next.preload(&family);
                        family
                    })
                }
            };
            if let Some(family) = family
                && let Err(e) = next.add(family)
            {
                events.push(ComponentEvent::Rejected {
                    family: name.clone(),
                    digest,
                    reason: e.to_string(),
                    kept: None,
                });
            }
        }
        for f in &old.families {
            if !next.families.iter().any(|n| n.source.family == f.source.family) {
                events.push(ComponentEvent::Removed {
                    family: f.source.family.clone(),
                    digest: f.source.digest.clone(),
                });
            }
        }
        next.forget_unused_builds();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        Ok(events)
    }

    /// Every command of every family, families in load order (embedded
    /// first, then the handlers directory by file name), each in its
    /// interface's order.
    pub fn commands(&self) -> Vec<CommandSpec> {
        self.current()
            .families
            .iter()
            .flat_map(|f| f.commands.iter().cloned())
            .collect()
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
    pub fn grant(&self, command: &str) -> Result<Grant, String> {
        self.current().grant_for(command)
    }

    /// The sha256 of the component that runs `command`.
    pub fn digest_of(&self, command: &str) -> Option<String> {
        let inner = self.current();
        inner
            .by_command
            .get(command)
            .map(|&i| inner.families[i].source.digest.clone())
    }

    /// Load (or compile) every family now; the first error.
    pub fn load_all(&self) -> Result<(), RuntimeError> {
        let inner = self.current();
        for (i, f) in inner.families.iter().enumerate() {
            inner.load(i).map_err(|reason| RuntimeError::Compile {
                family: f.source.family.clone(),
                reason,
            })?;
        }
        Ok(())
    }

    /// Run one command in a fresh instance. Blocking.
    pub fn call(&self, command: &str, arguments: Option<&Dict>) -> Result<Option<Value>, QmpError> {
        let inner = self.current();
        // The generation's own policy decides as well: the dispatcher's
        // table and this generation switch at slightly different moments on
        // a reload, and a request routed by an older table must not run
        // under a newer policy that denies it.
        if !inner.config.policy.allows(command) {
            let decision = inner.config.policy.decide(command);
            return Err(QmpError::generic(format!(
                "Command {command} is denied by policy rule {}",
                decision.rule
            )));
        }
        let Some(&family) = inner.by_command.get(command) else {
            return Err(QmpError {
                class: ErrorClass::CommandNotFound,
                desc: format!("The command {command} has not been found"),
            });
        };
        let loaded = inner
            .load(family)
            .map_err(|reason| QmpError::generic(format!("{command}: handler unavailable: {reason}")))?;
        let prepared = match loaded.commands.get(command) {
            Some(Ok(prepared)) => prepared,
            Some(Err(reason)) => {
                return Err(QmpError::generic(format!("{command}: handler unavailable: {reason}")));
            }
            None => return Err(QmpError::generic(format!("{command}: handler unavailable"))),
        };
        let params = prepared.signature.params_from_json(arguments)?;
        let _active = inner.ticker.enter();
        inner.run(prepared, &params)
    }
}

impl Backend for Runtime {
    fn commands(&self) -> Vec<CommandSpec> {
        Runtime::commands(self)
    }

    fn call(&self, command: &str, arguments: Option<&Dict>) -> Result<Option<Value>, QmpError> {
        Runtime::call(self, command, arguments)
    }

    fn digest(&self, command: &str) -> Option<String> {
        self.digest_of(command)
    }

    fn is_prompt(&self, command: &str) -> bool {
        let inner = self.current();
        let Some(&family) = inner.by_command.get(command) else {
            return false;
        };
        // Only once compiled: a first call may compile, which is not prompt.
        match inner.families[family].loaded.get() {
            Some(Ok(loaded)) => matches!(loaded.commands.get(command), Some(Ok(p)) if p.prompt),
            _ => false,
        }
    }

    fn freeze_gate(&self) -> crate::dispatch::FreezeGate {
        self.current().freeze.gate()
    }
}

fn human_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn human_bytes(n: usize) -> String {
    if n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

impl Inner {
    /// Check a candidate: the policy's pin, whether this agent may run it
    /// (an artifact from the handlers directory is native code: only a pin
    /// makes it trusted; a `.wasm` needs the compiler), and its exports —
    /// read from the artifact's header, or from the `.wasm`.
    fn verify(&self, source: Source) -> Result<Family, RuntimeError> {
        let bad = |reason| RuntimeError::BadComponent {
            family: source.family.clone(),
            reason,
        };
        if let Some(reason) = &source.trust.refusal {
            return Err(RuntimeError::Refused {
                family: source.family.clone(),
                reason: reason.clone(),
            });
        }
        let pin = self.config.policy.pin(&source.family);
        if let Some(pinned) = pin
            && pinned != source.digest
        {
            return Err(RuntimeError::PinMismatch {
                family: source.family.clone(),
                digest: source.digest.clone(),
                pinned: pinned.to_owned(),
            });
        }
        let metadata = match &source.kind {
            Kind::Embedded { .. } => artifact::decode(&source.bytes).map_err(|e| bad(e.to_string()))?.0,
            Kind::Artifact(path) => {
                // Native code: trusted only through a pin of these bytes or
                // a signature over them by a trusted key.
                if pin.is_none() && !matches!(source.trust.signer, Signer::Trusted(_)) {
                    return Err(RuntimeError::Untrusted {
                        family: source.family.clone(),
                        path: path.clone(),
                    });
                }
                artifact::decode(&source.bytes).map_err(|e| bad(e.to_string()))?.0
            }
            Kind::Wasm(path) => {
                if !cfg!(feature = "compiler") {
                    return Err(RuntimeError::NeedsCompiler {
                        family: source.family.clone(),
                        path: path.clone(),
                    });
                }
                metadata::read(&source.family, &source.bytes).map_err(bad)?
            }
        };
        let commands = metadata
            .commands
            .into_iter()
            .map(|c| CommandSpec {
                name: c.name,
                success_response: c.success_response,
            })
            .collect();
        let imports = metadata.imports;
        Ok(Family {
            source,
            commands,
            imports,
            loaded: OnceLock::new(),
        })
    }

    /// Add a verified family to this (not yet shared) generation.
    fn add(&mut self, family: Family) -> Result<(), RuntimeError> {
        for c in &family.commands {
            if let Some(&other) = self.by_command.get(&c.name) {
                return Err(RuntimeError::DuplicateCommand {
                    command: c.name.clone(),
                    first: self.families[other].source.family.clone(),
                    second: family.source.family.clone(),
                });
            }
        }
        for c in &family.commands {
            self.by_command.insert(c.name.clone(), self.families.len());
        }
        self.families.push(family);
        Ok(())
    }

    /// Drop the compiled builds this generation does not use (swapped out or
    /// rejected), so that a long run of new builds does not pile up code
    /// and memory images. Calls
    /// still running on an older build keep it alive until they end.
    fn forget_unused_builds(&self) {
        let used = |digest: &str| self.families.iter().any(|f| f.source.digest == digest);
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|digest, _| used(digest));
    }

    /// Compile and pre-instantiate a family now (hot swap loads everything
    /// before switching).
    fn preload(&self, family: &Family) -> Result<(), String> {
        family
            .loaded
            .get_or_init(|| self.load_uncached(family).map(Arc::new))
            .clone()
            .map(|_| ())
    }

    fn load(&self, family: usize) -> Result<Arc<Loaded>, String> {
        self.families[family]
            .loaded
            .get_or_init(|| self.load_uncached(&self.families[family]).map(Arc::new))
            .clone()
    }

    fn component(&self, source: &Source) -> Result<Component, String> {
        let lock = || self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = lock().get(&source.digest) {
            return Ok(c.clone());
        }
        // Not under the lock: a call must not wait for another family's
        // compile. (The same family is serialized by its `loaded` cell.)
        let c = self.component_uncached(source)?;
        Ok(lock().entry(source.digest.clone()).or_insert(c).clone())
    }

    /// Whether a whole compiled artifact of `source` is on disk for this
    /// engine (a corrupt one is rebuilt at start, not at the first call).
    fn component_uncached(&self, source: &Source) -> Result<Component, String> {
        match &source.kind {
            Kind::Embedded { wasm } => self.load_artifact(source).or_else(|e| match wasm {
                Some(wasm) if cfg!(feature = "compiler") => {
                    tracing::warn!(
                        "the embedded {} artifact does not load ({e}): compiling its component",
                        source.family
                    );
                    self.compile(source, wasm)
                }
                _ => Err(e),
            }),
            Kind::Artifact(path) => self
                .load_artifact(source)
                .map_err(|e| format!("{e}; compile {} again with this agent's `qga compile`", path.display())),
            Kind::Wasm(_) => self.compile(source, &source.bytes),
        }
    }

    /// Map a verified artifact (embedded, or pinned by the policy).
    fn load_artifact(&self, source: &Source) -> Result<Component, String> {
        let (_, compiled) = artifact::decode(&source.bytes).map_err(|e| e.to_string())?;
        let component = sys::deserialize(&self.engine, compiled)
            .map_err(|e| format!("cannot load the precompiled artifact: {e:#}"));
        if let Bytes::Embedded(embedded) = source.bytes {
            // Copied by `deserialize`: the binary's pages are not needed.
            sys::release_embedded_pages(embedded);
        }
        component
    }

    /// Compile `wasm` (`source`'s component) in memory.
    #[cfg(feature = "compiler")]
    fn compile(&self, _source: &Source, wasm: &[u8]) -> Result<Component, String> {
        let payload = self
            .engine
            .precompile_component(wasm)
            .map_err(|e| format!("cannot compile: {e:#}"))?;
        let component =
            sys::deserialize(&self.engine, &payload).map_err(|e| format!("cannot load compiled code: {e:#}"));
        // Compiling leaves free heap behind: the idle agent should not keep it.
        sys::release_free_memory();
        component
    }

    /// Without the compiler, `verify` refuses every `.wasm`: never reached
    /// for one; an embedded artifact that does not load stays unavailable.
    #[cfg(not(feature = "compiler"))]
    fn compile(&self, source: &Source, _wasm: &[u8]) -> Result<Component, String> {
        Err(format!(
            "family {}: this agent has no compiler; run `qga compile` with a qga built with the compiler feature",
            source.family
        ))
    }

    fn grant_for(&self, command: &str) -> Result<Grant, String> {
        let base = match self.config.grants.get(command) {
            Some(g) => g.clone(),
            None => Grant::builtin(command, &|k| std::env::var(k).ok()),
        };
        self.config.policy.grant(command, base)
    }

    fn load_uncached(&self, family: &Family) -> Result<Loaded, String> {
        let component = self.component(&family.source)?;
        let interface = format!("{PACKAGE}/{}", family.source.family);
        let iface_index = component
            .get_export_index(None, &interface)
            .ok_or_else(|| format!("does not export {interface}"))?;
        let ty = component.component_type();
        let Some(ComponentItem::ComponentInstance(iface_ty)) = ty
            .exports(&self.engine)
            .find(|(n, _)| *n == interface)
            .map(|(_, item)| item.ty)
        else {
            return Err(format!("export {interface} is not an interface"));
        };
        let mut commands = HashMap::new();
        // A component that can wait through WASI (a timer, a socket) has no
        // prompt command, whatever the grants.
        let waits = family
            .imports
            .iter()
            .any(|i| WAITING_WASI.iter().any(|w| i.starts_with(w)));
        let type_names: Vec<(wasmtime::component::types::Type, String)> = iface_ty
            .exports(&self.engine)
            .filter_map(|(name, item)| match item.ty {
                ComponentItem::Type(ty) => Some((ty, name.to_owned())),
                // `use types.{blob}` re-exports the imported resource.
                ComponentItem::Resource(resource) => {
                    Some((wasmtime::component::types::Type::Own(resource), name.to_owned()))
                }
                _ => None,
            })
            .collect();
        for (name, item) in iface_ty.exports(&self.engine) {
            let ComponentItem::ComponentFunc(func) = item.ty else {
                continue;
            };
            let signature = Signature::from_func_named(
                name,
                func.params().map(|(n, t)| (n.to_owned(), t)),
                func.results(),
                &type_names,
            )
            .map_err(|e| e.to_string())?;
            let export = component
                .get_export_index(Some(&iface_index), name)
                .ok_or_else(|| format!("missing export {name}"))?;
            let prepared = self.grant_for(name).and_then(|grant| {
                let grant = Arc::new(grant);
                let linker = self
                    .linker(&component, name, &grant)
                    .map_err(|e| format!("cannot link: {e:#}"))?;
                let pre = linker
                    .instantiate_pre(&component)
                    .map_err(|e| format!("cannot link: {e:#}"))?;
                Ok(Arc::new(Prepared {
                    command: Arc::from(name),
                    prompt: grant.is_prompt() && !waits,
                    pre,
                    export,
                    signature,
                    grant,
                }))
            });
            commands.insert(name.to_owned(), prepared);
        }
        Ok(Loaded { commands })
    }

    /// The command's own linker: WASI, its granted capabilities, and
    /// permission-denied stubs for everything else the component imports.
    fn linker(&self, component: &Component, command: &str, grant: &Grant) -> wasmtime::Result<Linker<CallCtx>> {
        let mut linker: Linker<CallCtx> = Linker::new(&self.engine);
        // Every WASI interface but sockets (see wasi.rs).
        wasi::add_to_linker(&mut linker)?;
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

    fn store(&self, prepared: &Prepared) -> Store<CallCtx> {
        let grant = &prepared.grant;
        let ctx = CallCtx {
            command: prepared.command.clone(),
            grant: grant.clone(),
            wasi: None,
            table: resource_table(),
            limiter: CallLimiter::new(grant.memory_bytes),
            state: self.state.clone(),
            freeze: self.freeze.clone(),
        };
        let mut store = Store::new(&self.engine, ctx);
        store.limiter(|c| &mut c.limiter);
        let ticks = grant.deadline.as_millis().div_ceil(TICK.as_millis()) as u64 + 1;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        store
    }

    fn run(&self, prepared: &Prepared, params: &[Val]) -> Result<Option<Value>, QmpError> {
        let command = &*prepared.command;
        let mut store = self.store(prepared);
        let mut results = [Val::Bool(false)];
        let outcome = prepared.pre.instantiate(&mut store).and_then(|instance| {
            let func = instance
                .get_func(&mut store, prepared.export)
                .ok_or_else(|| wasmtime::format_err!("export vanished"))?;
            func.call(&mut store, params, &mut results)
        });
        if let Err(e) = outcome {
            return Err(QmpError::generic(self.describe_failure(prepared, store.data(), &e)));
        }
        let result = std::mem::replace(&mut results[0], Val::Bool(false));
        let reply = match &result {
            Val::Result(Ok(_)) => match result {
                Val::Result(Ok(ok)) => prepared.signature.ok_into_json(ok.map(|b| *b), &mut |blob| {
                    let blob = blob.try_into_resource::<Blob>(&mut store).ok()?;
                    BlobData::take(&mut store.data_mut().table, blob)
                }),
                _ => None,
            },
            Val::Result(Err(err)) => {
                return Err(QmpError::generic(crate::convert::error_desc(err.as_deref())));
            }
            _ => {
                return Err(QmpError::generic(format!("{command}: handler returned no result")));
            }
        };
        if let Some(v) = &reply {
            let len = v.json_len();
            if len > prepared.grant.reply_limit {
                return Err(QmpError::generic(format!(
                    "{command}: handler reply of {len} bytes exceeds its {} limit",
                    human_bytes(prepared.grant.reply_limit)
                )));
            }
        }
        Ok(reply)
    }

    fn describe_failure(&self, prepared: &Prepared, ctx: &CallCtx, e: &wasmtime::Error) -> String {
        let command = &*prepared.command;
        if let Some(hit) = ctx
            .limiter
            .hit()
            .or_else(|| e.downcast_ref::<MemoryLimitHit>().copied())
        {
            return format!(
                "{command}: handler exceeded its {} memory limit",
                human_bytes(hit.limit)
            );
        }
        if let Some(denied) = e.downcast_ref::<Denied>() {
            return format!("{command}: {denied}");
        }
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => format!(
                "{command}: handler exceeded its {} deadline",
                human_duration(prepared.grant.deadline)
            ),
            Some(Trap::UnreachableCodeReached) => {
                format!("{command}: handler crashed (panic or wasm unreachable)")
            }
            // A Rust handler's stack lives in its linear memory, below its
            // data: running off its end is an access below address 0.
            Some(Trap::MemoryOutOfBounds) => {
                format!("{command}: handler crashed: out of bounds memory access (stack overflow or bad pointer)")
            }
            Some(Trap::StackOverflow) => format!("{command}: handler crashed: call stack exhausted"),
            Some(trap) => format!(
                "{command}: handler crashed: {}",
                trap.to_string().trim_start_matches("wasm trap: ")
            ),
            None => format!("{command}: handler failed: {e:#}"),
        }
    }
}

/// A call's resource table, capped at [`limits::MAX_RESOURCES`] entries.
fn resource_table() -> ResourceTable {
    let mut table = ResourceTable::new();
    table.set_max_capacity(limits::MAX_RESOURCES);
    table
}

/// `qga compile`: the qga artifact (`.cwasm`) of family `family`'s
/// component `wasm`, for this agent's engine: its metadata (exports,
/// imports) and the compiled code.
#[cfg(feature = "compiler")]
pub fn compile_artifact(family: &str, wasm: &[u8]) -> Result<Vec<u8>, RuntimeError> {
    let failed = |reason: String| RuntimeError::Compile {
        family: family.to_owned(),
        reason,
    };
    let metadata = metadata::read(family, wasm).map_err(failed)?;
    let compiled = engine()?
        .precompile_component(wasm)
        .map_err(|e| failed(format!("{e:#}")))?;
    artifact::encode(&metadata, &compiled).map_err(|e| failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn human_units() {
        assert_eq!(human_duration(Duration::from_secs(10)), "10 s");
        assert_eq!(human_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }
}
