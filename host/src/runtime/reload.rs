//! Generations: a reload builds a whole new generation (policy, decisions,
//! components, grants) and switches to it in one step; a generation is
//! what the dispatcher routes and runs a request by.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use super::{Family, Inner, Runtime, RuntimeConfig, RuntimeError, sources};
use crate::dispatch::{CommandSpec, Generation};
use crate::policy::Policy;
use crate::protocol::{ErrorClass, QmpError};
use crate::qobject::{Dict, Value};

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

impl Runtime {
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
            serial: old.serial + 1,
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
                next.preload(&family).map_err(|e| e.to_string())?;
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
}

impl Generation for Inner {
    fn serial(&self) -> u64 {
        self.serial
    }

    fn policy(&self) -> Option<&Policy> {
        Some(&self.config.policy)
    }

    fn commands(&self) -> Vec<CommandSpec> {
        self.families.iter().flat_map(|f| f.commands.iter().cloned()).collect()
    }

    /// Run one command in a fresh instance. Blocking.
    fn call(&self, command: &str, arguments: Option<&Dict>) -> Result<Option<Value>, QmpError> {
        // The dispatcher decided by this same generation's policy; a direct
        // caller (tests, tools) gets the same decision here.
        if !self.config.policy.allows(command) {
            let decision = self.config.policy.decide(command);
            return Err(QmpError::generic(format!(
                "Command {command} is denied by policy rule {}",
                decision.rule
            )));
        }
        let Some(&family) = self.by_command.get(command) else {
            return Err(QmpError {
                class: ErrorClass::CommandNotFound,
                desc: format!("The command {command} has not been found"),
            });
        };
        let loaded = self
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
        let _active = self.ticker.enter();
        self.run(prepared, &params)
    }

    fn digest(&self, command: &str) -> Option<String> {
        self.by_command
            .get(command)
            .map(|&i| self.families[i].source.digest.clone())
    }

    fn is_prompt(&self, command: &str) -> bool {
        let Some(&family) = self.by_command.get(command) else {
            return false;
        };
        // Only once compiled: a first call may compile, which is not prompt.
        match self.families[family].loaded.get() {
            Some(Ok(loaded)) => matches!(loaded.commands.get(command), Some(Ok(p)) if p.prompt),
            _ => false,
        }
    }
}
