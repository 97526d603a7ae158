//! The one place that routes a request: envelope checks, the command table
//! (enabled or disabled, host-native or component), the allow/deny decision
//! (compat flags, then policy), the audit event, and the reply.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::audit::{AuditLog, RequestEvent};
use crate::policy::{Decision, Policy};
use crate::protocol::{self, ErrorClass, Parsed, QmpError, Request};
use crate::qobject::{Dict, Value};
use crate::trimmer::Trimmer;

/// A command a backend (the component runtime) can run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub name: String,
    /// False for commands that answer nothing on success (guest-shutdown,
    /// guest-suspend-*), as qemu-ga's `success-response`.
    pub success_response: bool,
}

/// What runs the commands the host does not answer itself.
pub trait Backend: Send + Sync {
    fn commands(&self) -> Vec<CommandSpec>;
    /// Blocking; called on a blocking thread unless [`Backend::is_prompt`].
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
    /// Whether filesystems are frozen (guest-fsfreeze-*): then only
    /// [`FREEZE_ALLOWLIST`] runs.
    fn freeze_gate(&self) -> FreezeGate {
        FreezeGate::Thawed
    }
}

/// The freeze state as dispatch sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezeGate {
    Thawed,
    /// Frozen by a guest-fsfreeze-freeze(-list) of this agent: the frozen
    /// reason replaces "disabled" even for blocked commands (qemu-ga's
    /// ga_set_frozen disables them again, with its reason).
    Frozen,
    /// Started frozen (state file left by a killed agent): blocked
    /// commands say only "has been disabled" (qemu-ga applies its block
    /// list after the frozen state at start-up).
    FrozenAtStart,
}

/// qemu-ga's `ga_freeze_allowlist`: what still runs while frozen.
pub const FREEZE_ALLOWLIST: &[&str] = &[
    "guest-ping",
    "guest-info",
    "guest-sync",
    "guest-sync-delimited",
    "guest-fsfreeze-status",
    "guest-fsfreeze-thaw",
];

/// Commands the host answers itself, without any component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Native {
    Sync,
    SyncDelimited,
    Ping,
    Info,
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

/// The order in which qemu-ga lists its commands in `guest-info` (10.0's
/// two additions first, then 7.2's list); commands it does not know come
/// after these, by name.
const QEMU_GA_ORDER: &[&str] = &[
    "guest-network-get-route",
    "guest-get-load",
    "guest-get-cpustats",
    "guest-get-diskstats",
    "guest-ssh-remove-authorized-keys",
    "guest-ssh-add-authorized-keys",
    "guest-ssh-get-authorized-keys",
    "guest-get-devices",
    "guest-get-osinfo",
    "guest-get-timezone",
    "guest-get-users",
    "guest-get-host-name",
    "guest-exec",
    "guest-exec-status",
    "guest-get-memory-block-info",
    "guest-set-memory-blocks",
    "guest-get-memory-blocks",
    "guest-set-user-password",
    "guest-get-fsinfo",
    "guest-get-disks",
    "guest-set-vcpus",
    "guest-get-vcpus",
    "guest-network-get-interfaces",
    "guest-suspend-hybrid",
    "guest-suspend-ram",
    "guest-suspend-disk",
    "guest-fstrim",
    "guest-fsfreeze-thaw",
    "guest-fsfreeze-freeze-list",
    "guest-fsfreeze-freeze",
    "guest-fsfreeze-status",
    "guest-file-flush",
    "guest-file-seek",
    "guest-file-write",
    "guest-file-read",
    "guest-file-close",
    "guest-file-open",
    "guest-shutdown",
    "guest-info",
    "guest-set-time",
    "guest-get-time",
    "guest-ping",
    "guest-sync",
    "guest-sync-delimited",
];

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
}

/// The live command table and what answers each command.
pub struct Dispatcher {
    table: RwLock<Arc<Table>>,
    backend: Option<Arc<dyn Backend>>,
    filter: RpcFilter,
    audit: Option<Arc<AuditLog>>,
    /// Component calls running at once. Handlers are CPU-bound and the
    /// machine has few cores: more in parallel only costs threads and
    /// instance memory. Clients beyond it wait their turn.
    calls: Arc<tokio::sync::Semaphore>,
    /// Hands memory back to the kernel once the calls stop.
    trimmer: Arc<Trimmer>,
}

/// See [`Dispatcher::calls`].
const MAX_CONCURRENT_CALLS: usize = 8;

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
        let policy = Policy::default();
        let table = Table::build(backend.as_deref(), filter, &policy);
        Dispatcher {
            table: RwLock::new(Arc::new(table)),
            backend,
            filter: filter.clone(),
            audit: None,
            calls: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_CALLS)),
            trimmer: Arc::default(),
        }
    }

    /// Use `policy` for the allow/deny decision.
    pub fn with_policy(self, policy: &Policy) -> Self {
        self.reload(policy);
        self
    }

    /// Record every request in `audit`.
    pub fn with_audit(mut self, audit: Option<Arc<AuditLog>>) -> Self {
        self.audit = audit;
        self
    }

    /// Rebuild the command table from the backend's live commands and
    /// `policy` (after a hot swap or a policy reload). Requests already
    /// routed finish with the table they started with.
    pub fn reload(&self, policy: &Policy) {
        let table = Arc::new(Table::build(self.backend.as_deref(), &self.filter, policy));
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

    fn table(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner()).clone()
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
    fn build(backend: Option<&dyn Backend>, filter: &RpcFilter, policy: &Policy) -> Table {
        let mut entries: Vec<Entry> = Vec::new();
        let native = [
            ("guest-sync-delimited", Native::SyncDelimited),
            ("guest-sync", Native::Sync),
            ("guest-ping", Native::Ping),
            ("guest-info", Native::Info),
        ];
        for (name, command) in native {
            entries.push(Entry {
                name: name.into(),
                route: Route::Native(command),
                enabled: true,
                disabled_by: None,
                decision: policy.decide(name),
                success_response: true,
            });
        }
        if let Some(backend) = backend {
            for spec in backend.commands() {
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
        if !entries.iter().any(|e| e.name == "guest-get-devices") {
            entries.push(Entry {
                name: "guest-get-devices".into(),
                route: Route::Unsupported,
                enabled: false,
                disabled_by: None,
                decision: policy.decide("guest-get-devices"),
                success_response: true,
            });
        }
        for entry in &mut entries {
            entry.disabled_by = filter.disabled_by(&entry.name);
            entry.enabled &= filter.permits(&entry.name);
        }
        let rank = |name: &str| {
            QEMU_GA_ORDER
                .iter()
                .position(|n| *n == name)
                .unwrap_or(QEMU_GA_ORDER.len())
        };
        entries.sort_by(|a, b| rank(&a.name).cmp(&rank(&b.name)).then_with(|| a.name.cmp(&b.name)));
        Table { entries }
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
            Route::Native(Native::Info) => plain(no_arguments(args).map(|()| Some(self.info()))),
            Route::Native(Native::Sync) => plain(sync_id(args).map(|id| Some(Value::Int(id)))),
            Route::Native(Native::SyncDelimited) => match sync_id(args) {
                Ok(id) => Answer {
                    result: Ok(Some(Value::Int(id))),
                    delimited: true,
                },
                Err(err) => plain(Err(err)),
            },
            Route::Backend => {
                trace.component = self.backend.as_ref().and_then(|b| b.digest(&entry.name));
                plain(self.call_backend(&entry.name, args).await)
            }
            Route::Unsupported => plain(Err(QmpError::not_found(format!(
                "Command {} has been disabled",
                entry.name
            )))),
        }
    }

    async fn call_backend(&self, name: &str, args: Option<&Dict>) -> Result<Option<Value>, QmpError> {
        let Some(backend) = self.backend.clone() else {
            return Err(QmpError::not_found(format!("The command {name} has not been found")));
        };
        if backend.is_prompt(name)
            && let Some(result) = crate::prompt::run(|| backend.call(name, args))
        {
            return result;
        }
        let slot = self.calls.acquire().await.expect("semaphore never closed");
        let owned = name.to_owned();
        let args = args.cloned();
        let result = tokio::task::spawn_blocking(move || backend.call(&owned, args.as_ref()))
            .await
            .unwrap_or_else(|e| Err(QmpError::generic(format!("{name}: handler thread failed: {e}"))));
        drop(slot);
        self.after_call();
        result
    }

    /// Trim once the agent has been quiet for a while (at start-up: what
    /// start-up alone used). Needs a tokio runtime.
    pub fn trim_when_quiet(&self) {
        self.trimmer.request();
    }

    /// Once no call is running, hand the memory the calls freed (large
    /// transfers, bursts of concurrent calls) back to the kernel.
    fn after_call(&self) {
        if self.calls.available_permits() == MAX_CONCURRENT_CALLS {
            self.trimmer.request();
        }
    }

    fn freeze_gate(&self) -> FreezeGate {
        self.backend.as_ref().map_or(FreezeGate::Thawed, |b| b.freeze_gate())
    }

    /// `guest-info`: built from the live table. A command the policy denies
    /// is listed as not enabled.
    fn info(&self) -> Value {
        let gate = self.freeze_gate();
        let commands = self
            .table()
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
