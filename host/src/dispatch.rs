//! The one place that routes a request: envelope checks, the command table
//! (enabled or disabled, host-native or component), and the reply.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::protocol::{self, Parsed, QmpError, Request};
use crate::qobject::{Dict, Value};

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
    /// Blocking; called on a blocking thread. `Ok(None)` means no reply.
    fn call(&self, command: &str, arguments: Option<&Dict>) -> Result<Option<Value>, QmpError>;
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
    enabled: bool,
    success_response: bool,
}

/// The order in which qemu-ga 7.2 lists its commands in `guest-info`;
/// commands it does not know come after these, by name.
const QEMU_GA_ORDER: &[&str] = &[
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
        !self.blocked.contains(name) && self.allowed.as_ref().is_none_or(|allowed| allowed.contains(name))
    }
}

/// The live command table and what answers each command.
pub struct Dispatcher {
    entries: Vec<Entry>,
    backend: Option<Arc<dyn Backend>>,
    /// Component calls running at once. Handlers are CPU-bound and the
    /// machine has few cores: more in parallel only costs threads and
    /// instance memory. Clients beyond it wait their turn.
    calls: Arc<tokio::sync::Semaphore>,
    /// When free memory was last handed back (see [`Dispatcher::after_call`]).
    last_trim: std::sync::Mutex<std::time::Instant>,
}

/// At most this often, free memory goes back to the kernel after calls.
const TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// See [`Dispatcher::calls`].
const MAX_CONCURRENT_CALLS: usize = 8;

/// Outcome of one command before it is encoded.
struct Answer {
    result: Result<Option<Value>, QmpError>,
    delimited: bool,
}

impl Dispatcher {
    pub fn new(backend: Option<Arc<dyn Backend>>, filter: &RpcFilter) -> Self {
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
                success_response: true,
            });
        }
        if let Some(backend) = &backend {
            for spec in backend.commands() {
                if entries.iter().any(|e| e.name == spec.name) {
                    continue;
                }
                entries.push(Entry {
                    name: spec.name,
                    route: Route::Backend,
                    enabled: true,
                    success_response: spec.success_response,
                });
            }
        }
        if !entries.iter().any(|e| e.name == "guest-get-devices") {
            entries.push(Entry {
                name: "guest-get-devices".into(),
                route: Route::Unsupported,
                enabled: false,
                success_response: true,
            });
        }
        for entry in &mut entries {
            entry.enabled &= filter.permits(&entry.name);
        }
        let rank = |name: &str| {
            QEMU_GA_ORDER
                .iter()
                .position(|n| *n == name)
                .unwrap_or(QEMU_GA_ORDER.len())
        };
        entries.sort_by(|a, b| rank(&a.name).cmp(&rank(&b.name)).then_with(|| a.name.cmp(&b.name)));
        Dispatcher {
            entries,
            backend,
            calls: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_CALLS)),
            last_trim: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }

    /// Names of every command in the table, in `guest-info` order.
    pub fn command_names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    /// Answer one parsed message: the reply bytes, or None when the command
    /// answers nothing.
    pub async fn handle(&self, parsed: Parsed) -> Option<Vec<u8>> {
        let value = match parsed {
            Ok(value) => value,
            Err(desc) => {
                return Some(protocol::encode_reply(&Err(QmpError::generic(desc)), None, false));
            }
        };
        let request = match protocol::check_request(value) {
            Ok(request) => request,
            Err((err, id)) => return Some(protocol::encode_reply(&Err(err), id.as_ref(), false)),
        };
        let answer = self.execute(&request).await;
        let result = match answer.result {
            Ok(None) => return None,
            Ok(Some(value)) => Ok(value),
            Err(err) => Err(err),
        };
        Some(protocol::encode_reply(&result, request.id.as_ref(), answer.delimited))
    }

    async fn execute(&self, request: &Request) -> Answer {
        let plain = |result| Answer {
            result,
            delimited: false,
        };
        let Some(entry) = self.entries.iter().find(|e| e.name == request.command) else {
            return plain(Err(QmpError::not_found(format!(
                "The command {} has not been found",
                request.command
            ))));
        };
        let gate = self.freeze_gate();
        // A freeze of this agent re-disables blocked commands with its reason.
        let frozen_reason = gate == FreezeGate::Frozen && frozen_out(gate, &entry.name);
        if !entry.enabled && !frozen_reason {
            return plain(Err(QmpError::not_found(format!(
                "Command {} has been disabled",
                entry.name
            ))));
        }
        if frozen_out(gate, &entry.name) {
            return plain(Err(QmpError::not_found(format!(
                "Command {} has been disabled: the agent is in frozen state",
                entry.name
            ))));
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
            Route::Backend => plain(self.call_backend(&entry.name, args).await),
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

    /// Once no call is running, hand the memory calls freed (large transfers,
    /// bursts of concurrent calls) back to the kernel, at most once per
    /// [`TRIM_INTERVAL`], off the event loop.
    fn after_call(&self) {
        if self.calls.available_permits() != MAX_CONCURRENT_CALLS {
            return;
        }
        let mut last = self.last_trim.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < TRIM_INTERVAL {
            return;
        }
        *last = std::time::Instant::now();
        drop(tokio::task::spawn_blocking(crate::runtime::sys::release_free_memory));
    }

    fn freeze_gate(&self) -> FreezeGate {
        self.backend.as_ref().map_or(FreezeGate::Thawed, |b| b.freeze_gate())
    }

    /// `guest-info`: built from the live table.
    fn info(&self) -> Value {
        let gate = self.freeze_gate();
        let commands = self
            .entries
            .iter()
            .map(|e| {
                Value::Dict(
                    Dict::new()
                        .with("name", e.name.as_str())
                        .with("enabled", e.enabled && !frozen_out(gate, &e.name))
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

/// The freeze gate: frozen, and not on qemu-ga's allowlist.
fn frozen_out(gate: FreezeGate, name: &str) -> bool {
    match gate {
        FreezeGate::Thawed => false,
        FreezeGate::Frozen | FreezeGate::FrozenAtStart => !FREEZE_ALLOWLIST.contains(&name),
    }
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
