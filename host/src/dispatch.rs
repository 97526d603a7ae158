//! The one place that routes a request: envelope checks, the command table
//! (enabled or disabled, host-native or component), the allow/deny decision
//! (compat flags, then policy), the audit event, and the reply.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::audit::{AuditLog, RequestEvent};
use crate::policy::{Decision, Policy};
use crate::protocol::{self, ErrorClass, Parsed, QmpError, Request};
use crate::qemu_ga_facts::{self, DISABLED_ON_LINUX, FREEZE_ALLOWLIST, NativeCommand as Native};
use crate::qobject::{Dict, Value};
use crate::state::FreezeGate;

/// A command a backend (the component runtime) can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub name: String,
    /// False for commands that answer nothing on success (guest-shutdown,
    /// guest-suspend-*), as qemu-ga's `success-response`.
    pub success_response: bool,
}

/// What runs the commands the host does not answer itself: a switch
/// between generations. A reload builds a whole new [`Generation`] and
/// swaps it in one step; every request is routed and run by the one
/// generation it took at its start.
pub trait Backend: Send + Sync {
    /// The live generation.
    fn generation(&self) -> Arc<dyn Generation>;
    /// Whether filesystems are frozen (guest-fsfreeze-*): then only
    /// [`FREEZE_ALLOWLIST`] runs. The freeze outlives every generation.
    fn freeze_gate(&self) -> FreezeGate {
        FreezeGate::Thawed
    }
    /// Run `command` on `generation` (one this backend handed out): the
    /// backend decides where and when (event loop or blocking thread,
    /// how many at once).
    fn call<'a>(
        &'a self,
        generation: Arc<dyn Generation>,
        command: &'a str,
        arguments: Option<&'a Dict>,
    ) -> BackendCall<'a>;
}

/// A call in flight on a [`Backend`].
pub type BackendCall<'a> = Pin<Box<dyn Future<Output = Result<Option<Value>, QmpError>> + Send + 'a>>;

/// One generation of a backend: its policy (hence the allow/deny
/// decisions), its commands, the components and grants that run them.
pub trait Generation: Send + Sync {
    /// Grows by one with every reload; equal serials are the same generation.
    fn serial(&self) -> u64;
    /// The policy this generation was built with; None: the dispatcher's own.
    fn policy(&self) -> Option<&Policy> {
        None
    }
    fn commands(&self) -> Vec<CommandSpec>;
    /// Blocking; called on a blocking thread unless [`Generation::is_prompt`].
    /// `Ok(None)` means no reply.
    fn call(&self, command: &str, arguments: Option<&Dict>) -> Result<Option<Value>, QmpError>;
    /// Whether `command` is ready and quick enough to run on the event
    /// loop (no compiling first, nothing that waits on devices or children).
    fn is_prompt(&self, _command: &str) -> bool {
        false
    }
    /// The sha256 of the component that runs `command` (for the audit log).
    fn digest(&self, _command: &str) -> Option<String> {
        None
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Native(Native),
    Backend,
    /// Registered by qemu-ga but disabled on Linux (guest-get-devices).
    Unsupported,
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    route: Route,
    /// Not disabled by qemu-ga's compat flags (-b/-a, block-rpcs/allow-rpcs).
    enabled: bool,
    /// Which compat flag disabled it.
    disabled_by: Option<&'static str>,
    /// The policy's verdict.
    decision: Decision,
    success_response: bool,
}

/// Which commands the operator turned off, in qemu-ga's terms.
#[derive(Debug, Clone, Default)]
pub struct RpcFilter {
    /// `--block-rpcs`: always disabled.
    pub blocked: BTreeSet<String>,
    /// `--allow-rpcs`: when set, everything else is disabled.
    pub allowed: Option<BTreeSet<String>>,
}

impl RpcFilter {
    fn permits(&self, name: &str) -> bool {
        self.disabled_by(name).is_none()
    }

    /// The qemu-ga option that disables `name`, if any (block beats allow).
    fn disabled_by(&self, name: &str) -> Option<&'static str> {
        if self.blocked.contains(name) {
            Some("block-rpcs")
        } else if self.allowed.as_ref().is_some_and(|allowed| !allowed.contains(name)) {
            Some("allow-rpcs")
        } else {
            None
        }
    }
}

/// One command of the live table, as `qga policy audit` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandState {
    pub name: String,
    /// Answered by the host itself (guest-sync, guest-ping, guest-info, …).
    pub native: bool,
    /// The compat flag that disables it (`block-rpcs`, `allow-rpcs`).
    pub disabled_by: Option<&'static str>,
    pub decision: Decision,
}

/// One version of the command table, rebuilt when the policy or the
/// backend's commands change.
struct Table {
    entries: Vec<Entry>,
    /// The backend generation the entries were built from (its policy,
    /// its commands); requests routed by this table run on it.
    generation: Option<Arc<dyn Generation>>,
}

impl Table {
    fn serial(&self) -> Option<u64> {
        self.generation.as_ref().map(|g| g.serial())
    }
}

/// The live command table and what answers each command.
pub struct Dispatcher {
    table: RwLock<Arc<Table>>,
    backend: Option<Arc<dyn Backend>>,
    /// The policy for a generation that brings none (and without backend).
    policy: RwLock<Arc<Policy>>,
    filter: RpcFilter,
    audit: Option<Arc<AuditLog>>,
}

/// What the audit log records about one request, filled in while routing.
struct Trace {
    decision: &'static str,
    rule: Option<String>,
    component: Option<String>,
}

/// Outcome of one command before it is encoded.
struct Answer {
    result: Result<Option<Value>, QmpError>,
    delimited: bool,
}

impl Dispatcher {
    /// A dispatcher with the built-in (compat) policy and no audit log.
    pub fn new(backend: Option<Arc<dyn Backend>>, filter: &RpcFilter) -> Self {
        let policy = Arc::new(Policy::default());
        let generation = backend.as_ref().map(|b| b.generation());
        let table = Table::build(generation, filter, &policy);
        Dispatcher {
            table: RwLock::new(Arc::new(table)),
            backend,
            policy: RwLock::new(policy),
            filter: filter.clone(),
            audit: None,
        }
    }

    /// Use `policy` for the allow/deny decision of a generation that
    /// brings no policy of its own.
    pub fn with_policy(self, policy: &Policy) -> Self {
        self.reload(policy);
        self
    }

    /// Record every request in `audit`.
    pub fn with_audit(mut self, audit: Option<Arc<AuditLog>>) -> Self {
        self.audit = audit;
        self
    }

    /// Use `policy` where the generation brings none (a runtime's
    /// generation brings its own: reloading it switches policy, decisions
    /// and components at once, see [`Backend`]).
    pub fn reload(&self, policy: &Policy) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(policy.clone());
        let generation = self.backend.as_ref().map(|b| b.generation());
        let table = Arc::new(Table::build(generation, &self.filter, policy));
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = table;
    }

    /// The live table as the operator sees it (for `qga policy audit`).
    pub fn describe(&self) -> Vec<CommandState> {
        self.table()
            .entries
            .iter()
            .map(|e| CommandState {
                name: e.name.clone(),
                native: matches!(e.route, Route::Native(_)),
                disabled_by: if e.enabled {
                    None
                } else {
                    Some(e.disabled_by.unwrap_or("unsupported on this platform"))
                },
                decision: e.decision.clone(),
            })
            .collect()
    }

    /// The table of the live generation: built once per generation, from
    /// that generation alone (its policy and commands), so a request sees
    /// all of one generation and none of another.
    fn table(&self) -> Arc<Table> {
        let cached = self.table.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(backend) = &self.backend else {
            return cached;
        };
        let generation = backend.generation();
        if cached.serial() == Some(generation.serial()) {
            return cached;
        }
        let serial = generation.serial();
        let fallback = self.policy.read().unwrap_or_else(|p| p.into_inner()).clone();
        let table = Arc::new(Table::build(Some(generation), &self.filter, &fallback));
        let mut slot = self.table.write().unwrap_or_else(|p| p.into_inner());
        if slot.serial().is_none_or(|s| s < serial) {
            *slot = table.clone();
        }
        table
    }

    /// Names of every command in the table, in `guest-info` order.
    pub fn command_names(&self) -> Vec<String> {
        self.table().entries.iter().map(|e| e.name.clone()).collect()
    }

    /// Answer one parsed message: the reply bytes, or None when the command
    /// answers nothing.
    pub async fn handle(&self, parsed: Parsed) -> Option<Vec<u8>> {
        self.handle_on(parsed, "-").await
    }

    /// [`Dispatcher::handle`] for a message that came from `channel` (for
    /// the audit log, e.g. `unix:3`).
    pub async fn handle_on(&self, parsed: Parsed, channel: &str) -> Option<Vec<u8>> {
        let start = Instant::now();
        let mut trace = Trace {
            decision: "invalid",
            rule: None,
            component: None,
        };
        let (reply, command, outcome) = self.handle_traced(parsed, &mut trace).await;
        // Never the arguments: only what the audit log holds too.
        tracing::debug!(
            channel,
            command = command.as_deref().unwrap_or("-"),
            decision = trace.decision,
            outcome,
            "request"
        );
        if let Some(audit) = &self.audit {
            audit.request(&RequestEvent {
                channel,
                command: command.as_deref(),
                decision: trace.decision,
                rule: trace.rule.as_deref(),
                component: trace.component.as_deref(),
                duration: start.elapsed(),
                outcome,
            });
        }
        reply
    }

    async fn handle_traced(
        &self,
        parsed: Parsed,
        trace: &mut Trace,
    ) -> (Option<Vec<u8>>, Option<String>, &'static str) {
        let value = match parsed {
            Ok(value) => value,
            Err(desc) => {
                let err = QmpError::generic(desc);
                let outcome = outcome_class(&err);
                return (Some(protocol::encode_reply(Err(err), None, false)), None, outcome);
            }
        };
        let request = match protocol::check_request(value) {
            Ok(request) => request,
            Err((err, id)) => {
                let outcome = outcome_class(&err);
                return (
                    Some(protocol::encode_reply(Err(err), id.as_ref(), false)),
                    None,
                    outcome,
                );
            }
        };
        let table = self.table();
        let answer = self.execute(&table, &request, trace).await;
        let command = Some(request.command.clone());
        let result = match answer.result {
            Ok(None) => return (None, command, "no-reply"),
            Ok(Some(value)) => Ok(value),
            Err(err) => Err(err),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(err) => outcome_class(err),
        };
        (
            Some(protocol::encode_reply(result, request.id.as_ref(), answer.delimited)),
            command,
            outcome,
        )
    }
}

fn outcome_class(err: &QmpError) -> &'static str {
    match err.class {
        ErrorClass::GenericError => "GenericError",
        ErrorClass::CommandNotFound => "CommandNotFound",
    }
}

impl Table {
    /// `fallback` decides only when the generation brings no policy.
    fn build(generation: Option<Arc<dyn Generation>>, filter: &RpcFilter, fallback: &Policy) -> Table {
        let policy = generation.as_deref().and_then(|g| g.policy()).unwrap_or(fallback);
        let mut entries: Vec<Entry> = Vec::new();
        for command in Native::ALL {
            let name = command.name();
            entries.push(Entry {
                name: name.into(),
                route: Route::Native(command),
                enabled: true,
                disabled_by: None,
                decision: policy.decide(name),
                success_response: true,
            });
        }
        if let Some(generation) = &generation {
            for spec in generation.commands() {
                if entries.iter().any(|e| e.name == spec.name) {
                    continue;
                }
                entries.push(Entry {
                    decision: policy.decide(&spec.name),
                    name: spec.name,
                    route: Route::Backend,
                    enabled: true,
                    disabled_by: None,
                    success_response: spec.success_response,
                });
            }
        }
        for name in DISABLED_ON_LINUX {
            if !entries.iter().any(|e| e.name == *name) {
                entries.push(Entry {
                    name: (*name).into(),
                    route: Route::Unsupported,
                    enabled: false,
                    disabled_by: None,
                    decision: policy.decide(name),
                    success_response: true,
                });
            }
        }
        for entry in &mut entries {
            entry.disabled_by = filter.disabled_by(&entry.name);
            entry.enabled &= filter.permits(&entry.name);
        }
        let rank = qemu_ga_facts::guest_info_rank;
        entries.sort_by(|a, b| rank(&a.name).cmp(&rank(&b.name)).then_with(|| a.name.cmp(&b.name)));
        Table { entries, generation }
    }
}

impl Dispatcher {
    /// Route one request. The gates run in order, each its own step:
    /// lookup, compat flags, (fsfreeze), policy, then the command itself.
    async fn execute(&self, table: &Table, request: &Request, trace: &mut Trace) -> Answer {
        let plain = |result| Answer {
            result,
            delimited: false,
        };
        let Some(entry) = table.entries.iter().find(|e| e.name == request.command) else {
            trace.decision = "not-found";
            return plain(Err(QmpError::not_found(format!(
                "The command {} has not been found",
                request.command
            ))));
        };
        let gate = self.freeze_gate();
        // A freeze of this agent re-disables blocked commands with its reason.
        let frozen_reason = gate == FreezeGate::Frozen && frozen_out(gate, &entry.name);
        if !frozen_reason && let Err(err) = compat_gate(entry, trace) {
            return plain(Err(err));
        }
        if let Err(err) = freeze_step(gate, entry, trace) {
            return plain(Err(err));
        }
        if let Err(err) = policy_gate(entry, trace) {
            return plain(Err(err));
        }
        let args = request.arguments.as_ref();
        match entry.route {
            Route::Native(Native::Ping) => plain(no_arguments(args).map(|()| Some(Value::Dict(Dict::new())))),
            Route::Native(Native::Info) => plain(no_arguments(args).map(|()| Some(self.info(table)))),
            Route::Native(Native::Sync) => plain(sync_id(args).map(|id| Some(Value::Int(id)))),
            Route::Native(Native::SyncDelimited) => match sync_id(args) {
                Ok(id) => Answer {
                    result: Ok(Some(Value::Int(id))),
                    delimited: true,
                },
                Err(err) => plain(Err(err)),
            },
            Route::Backend => {
                trace.component = table.generation.as_ref().and_then(|g| g.digest(&entry.name));
                plain(self.call_backend(table, &entry.name, args).await)
            }
            Route::Unsupported => plain(Err(QmpError::not_found(format!(
                "Command {} has been disabled",
                entry.name
            )))),
        }
    }

    /// Run `name` on the generation `table` was built from.
    async fn call_backend(&self, table: &Table, name: &str, args: Option<&Dict>) -> Result<Option<Value>, QmpError> {
        let (Some(generation), Some(backend)) = (table.generation.clone(), self.backend.as_ref()) else {
            return Err(QmpError::not_found(format!("The command {name} has not been found")));
        };
        backend.call(generation, name, args).await
    }

    fn freeze_gate(&self) -> FreezeGate {
        self.backend.as_ref().map_or(FreezeGate::Thawed, |b| b.freeze_gate())
    }

    /// `guest-info`: built from the live table. A command the policy denies
    /// is listed as not enabled.
    fn info(&self, table: &Table) -> Value {
        let gate = self.freeze_gate();
        let commands = table
            .entries
            .iter()
            .map(|e| {
                Value::Dict(
                    Dict::new()
                        .with("name", e.name.as_str())
                        .with("enabled", e.enabled && !frozen_out(gate, &e.name) && e.decision.allowed)
                        .with("success-response", e.success_response),
                )
            })
            .collect();
        Value::Dict(
            Dict::new()
                .with("version", env!("CARGO_PKG_VERSION"))
                .with("supported_commands", Value::List(commands)),
        )
    }
}

/// Step: qemu-ga's compat flags (-b/-a, block-rpcs/allow-rpcs). A command
/// they disable answers exactly as qemu-ga 7.2 does.
fn compat_gate(entry: &Entry, trace: &mut Trace) -> Result<(), QmpError> {
    if entry.enabled {
        return Ok(());
    }
    trace.decision = "disabled";
    trace.rule = Some(entry.disabled_by.unwrap_or("unsupported on this platform").to_owned());
    Err(QmpError::not_found(format!("Command {} has been disabled", entry.name)))
}

/// Step: the freeze gate (frozen state beats the policy): while frozen only
/// qemu-ga's allowlist runs.
fn freeze_step(gate: FreezeGate, entry: &Entry, trace: &mut Trace) -> Result<(), QmpError> {
    if !frozen_out(gate, &entry.name) {
        return Ok(());
    }
    trace.decision = "frozen";
    trace.rule = Some("fsfreeze allowlist".to_owned());
    Err(QmpError::not_found(format!(
        "Command {} has been disabled: the agent is in frozen state",
        entry.name
    )))
}

/// The freeze gate: frozen, and not on qemu-ga's allowlist.
fn frozen_out(gate: FreezeGate, name: &str) -> bool {
    match gate {
        FreezeGate::Thawed => false,
        FreezeGate::Frozen | FreezeGate::FrozenAtStart => !FREEZE_ALLOWLIST.contains(&name),
    }
}

/// Step: the operator's policy. A denial names the rule that made it.
fn policy_gate(entry: &Entry, trace: &mut Trace) -> Result<(), QmpError> {
    trace.rule = Some(entry.decision.rule.clone());
    if entry.decision.allowed {
        trace.decision = "allow";
        return Ok(());
    }
    trace.decision = "deny";
    Err(QmpError::generic(format!(
        "Command {} is denied by policy rule {}",
        entry.name, entry.decision.rule
    )))
}

/// The input visitor's check for a command without arguments.
fn no_arguments(args: Option<&Dict>) -> Result<(), QmpError> {
    unexpected(args, &[])
}

/// "Parameter 'x' is unexpected", picking the key qemu-ga would name.
fn unexpected(args: Option<&Dict>, known: &[&str]) -> Result<(), QmpError> {
    match args {
        Some(args) => crate::convert::check_unexpected(args, None, |k| known.contains(&k), known),
        None => Ok(()),
    }
}

/// The `id: int` argument of guest-sync and guest-sync-delimited.
fn sync_id(args: Option<&Dict>) -> Result<i64, QmpError> {
    let id = match args.and_then(|a| a.get("id")) {
        None => return Err(QmpError::generic("Parameter 'id' is missing")),
        Some(value) => value
            .as_i64()
            .ok_or_else(|| QmpError::generic("Invalid parameter type for 'id', expected: integer"))?,
    };
    unexpected(args, &["id"])?;
    Ok(id)
}
