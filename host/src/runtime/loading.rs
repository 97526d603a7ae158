//! Loading families: verifying a candidate (pin, trust, exports),
//! compiling or mapping its code (shared by digest across generations),
//! and pre-instantiating each command with its grant.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use qga_engine::artifact;
use qga_engine::metadata::{self, PACKAGE};
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::sources::{Bytes, Kind, Source};
use super::sys;
use super::{Family, Inner, LoadError, Loaded, Prepared, RuntimeError, WAITING_WASI};
use crate::capabilities::Grant;
use crate::convert::Signature;
use crate::dispatch::CommandSpec;
use crate::trust::Signer;

impl Inner {
    /// Check a candidate: the policy's pin, whether this agent may run it
    /// (an artifact from the handlers directory is native code: only a pin
    /// makes it trusted; a `.wasm` needs the compiler), and its exports —
    /// read from the artifact's header, or from the `.wasm`.
    pub(super) fn verify(&self, source: Source) -> Result<Family, RuntimeError> {
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
    pub(super) fn add(&mut self, family: Family) -> Result<(), RuntimeError> {
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
    pub(super) fn forget_unused_builds(&self) {
        let used = |digest: &str| self.families.iter().any(|f| f.source.digest == digest);
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|digest, _| used(digest));
    }

    /// Compile and pre-instantiate a family now (hot swap loads everything
    /// before switching).
    pub(super) fn preload(&self, family: &Family) -> Result<(), LoadError> {
        family
            .loaded
            .get_or_init(|| self.load_uncached(family).map(Arc::new))
            .clone()
            .map(|_| ())
    }

    pub(super) fn load(&self, family: usize) -> Result<Arc<Loaded>, LoadError> {
        self.families[family]
            .loaded
            .get_or_init(|| self.load_uncached(&self.families[family]).map(Arc::new))
            .clone()
    }

    pub(super) fn component(&self, source: &Source) -> Result<Component, LoadError> {
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
    pub(super) fn component_uncached(&self, source: &Source) -> Result<Component, LoadError> {
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
            Kind::Artifact(path) => self.load_artifact(source).map_err(|e| LoadError::Stale {
                reason: Box::new(e),
                path: path.clone(),
            }),
            Kind::Wasm(_) => self.compile(source, &source.bytes),
        }
    }

    /// Map a verified artifact (embedded, or pinned by the policy).
    pub(super) fn load_artifact(&self, source: &Source) -> Result<Component, LoadError> {
        let (_, compiled) = artifact::decode(&source.bytes).map_err(|e| LoadError::Artifact(e.to_string()))?;
        let component = sys::deserialize(&self.engine, compiled).map_err(|e| LoadError::Map(format!("{e:#}")));
        if let Bytes::Embedded(embedded) = source.bytes {
            // Copied by `deserialize`: the binary's pages are not needed.
            sys::release_embedded_pages(embedded);
        }
        component
    }

    /// Compile `wasm` (`source`'s component) in memory.
    #[cfg(feature = "compiler")]
    pub(super) fn compile(&self, _source: &Source, wasm: &[u8]) -> Result<Component, LoadError> {
        let payload = self
            .engine
            .precompile_component(wasm)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let component = sys::deserialize(&self.engine, &payload).map_err(|e| LoadError::LoadCompiled(format!("{e:#}")));
        // Compiling leaves free heap behind: the idle agent should not keep it.
        sys::release_free_memory();
        component
    }

    /// Without the compiler, `verify` refuses every `.wasm`: never reached
    /// for one; an embedded artifact that does not load stays unavailable.
    #[cfg(not(feature = "compiler"))]
    pub(super) fn compile(&self, source: &Source, _wasm: &[u8]) -> Result<Component, LoadError> {
        Err(LoadError::NoCompiler(source.family.clone()))
    }

    /// The grant of `command` run by `family` (None: not loaded): the
    /// runtime's override, or the embedded manifest's or the policy's
    /// grant ([`crate::policy::Policy::base_grant`]), narrowed by the policy.
    pub(super) fn grant_for(&self, family: Option<&str>, command: &str) -> Result<Grant, LoadError> {
        let base = match self.config.grants.get(command) {
            Some(g) => g.clone(),
            None => self
                .config
                .policy
                .base_grant(family, command, &|k| std::env::var(k).ok())
                .map_err(LoadError::Grant)?,
        };
        self.config.policy.grant(command, base).map_err(LoadError::Grant)
    }

    pub(super) fn load_uncached(&self, family: &Family) -> Result<Loaded, LoadError> {
        let component = self.component(&family.source)?;
        let interface = format!("{PACKAGE}/{}", family.source.family);
        let iface_index = component
            .get_export_index(None, &interface)
            .ok_or_else(|| LoadError::NoExport(interface.clone()))?;
        let ty = component.component_type();
        let Some(ComponentItem::ComponentInstance(iface_ty)) = ty
            .exports(&self.engine)
            .find(|(n, _)| *n == interface)
            .map(|(_, item)| item.ty)
        else {
            return Err(LoadError::NotInterface(interface));
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
            .map_err(|e| LoadError::Signature(e.to_string()))?;
            let export = component
                .get_export_index(Some(&iface_index), name)
                .ok_or_else(|| LoadError::MissingExport(name.to_owned()))?;
            let prepared = self.grant_for(Some(&family.source.family), name).and_then(|grant| {
                let grant = Arc::new(grant);
                let linker = self
                    .linker(&component, name, &grant)
                    .map_err(|e| LoadError::Link(format!("{e:#}")))?;
                let pre = linker
                    .instantiate_pre(&component)
                    .map_err(|e| LoadError::Link(format!("{e:#}")))?;
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
    let compiled = super::engine()?
        .precompile_component(wasm)
        .map_err(|e| failed(format!("{e:#}")))?;
    artifact::encode(&metadata, &compiled).map_err(|e| failed(e.to_string()))
}
