use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod tools;

use clap::Parser;
use qga::audit::AuditLog;
use qga::cli::{self, Cli};
use qga::config::{self, Config};
use qga::dispatch::{Dispatcher, RpcFilter};
use qga::logfile::LogFile;
use qga::pidfile::Pidfile;
use qga::policy::Policy;
use qga::runtime::{ComponentEvent, Runtime, RuntimeConfig};
use qga::write_gate::WriteGate;
use serde_json::{Map, Value as Json, json};
use tokio::signal::unix::{SignalKind, signal};
use tools::{inspection_runtime, run_subcommand};

fn main() -> ExitCode {
    let cli = Cli::parse_from(cli::normalize_args(std::env::args()));
    if let Some(command) = &cli.command {
        return run_subcommand(command);
    }
    if cli.version {
        println!("qga {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(&cli, &config::config_file(&cli, std::env::var_os("QGA_CONF"))) {
        Ok(config) => config,
        Err(e @ config::ConfigError::Required { .. }) => {
            // qemu-ga 10.0's g_critical line, then exit status 1
            let (now_ns, offset) = qga::capabilities::clock::local_now();
            eprintln!(
                "{}",
                config::glib_critical(std::process::id(), now_ns, offset, &e.to_string())
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("qga: {e}");
            return ExitCode::FAILURE;
        }
    };
    if config.block_rpcs.iter().any(|c| c == "help") || config.allow_rpcs.iter().flatten().any(|c| c == "help") {
        // Every command, from the families' exports (nothing is compiled),
        // in qemu-ga's registration order: guest-info's, reversed.
        let runtime = match inspection_runtime(config.handlers_dir.clone(), Arc::new(Policy::default())) {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("qga: {e}");
                return ExitCode::FAILURE;
            }
        };
        let backend: Arc<dyn qga::dispatch::Backend> = runtime;
        for name in Dispatcher::new(Some(backend), &RpcFilter::default())
            .command_names()
            .iter()
            .rev()
        {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    if cli.dump_conf {
        print!("{}", config.dump());
        return ExitCode::SUCCESS;
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("qga: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum AgentError {
    #[error("failed to open log file {path}: {source}")]
    Logfile {
        path: PathBuf,
        source: qga::logfile::LogFileError,
    },
    #[error("failed to become a daemon: {0}")]
    Daemon(nix::Error),
    #[error(transparent)]
    Pidfile(#[from] qga::pidfile::PidfileError),
    #[error("failed to create state directory {path}: {source}")]
    Statedir { path: PathBuf, source: std::io::Error },
    #[error("failed to start the event loop: {0}")]
    EventLoop(std::io::Error),
    #[error(transparent)]
    Transport(#[from] qga::transport::TransportError),
    #[error(transparent)]
    Runtime(#[from] qga::runtime::RuntimeError),
    #[error(transparent)]
    Policy(#[from] qga::policy::PolicyError),
    #[error(transparent)]
    Audit(#[from] qga::audit::AuditError),
}

fn init_logging(config: &Config, gate: &Arc<WriteGate>) -> Result<(), AgentError> {
    let level = if config.verbose {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    let builder = tracing_subscriber::fmt().with_max_level(level).with_target(false);
    match &config.logfile {
        Some(path) => {
            // No symlink followed, no FIFO waited on; lines wait in memory
            // while a freeze runs.
            let file =
                LogFile::open(path, false, gate.clone(), Duration::ZERO, log_lines_dropped).map_err(|source| {
                    AgentError::Logfile {
                        path: path.clone(),
                        source,
                    }
                })?;
            builder.with_ansi(false).with_writer(file).init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

fn log_lines_dropped(count: u64) -> String {
    format!("{count} log lines dropped while filesystems were frozen")
}

/// What hardening of the agent process costs nothing: no core dumps (its
/// memory can hold passwords and file contents), no ptrace by non-root, and
/// no descriptor inherited by the agent passed on to its children.
fn harden_process() {
    if let Err(e) = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0) {
        tracing::warn!("cannot disable core dumps: {e}");
    }
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!("cannot mark the process non-dumpable: {e}");
    }
    if let Err(e) = qga::capabilities::process::close_inherited_on_exec() {
        tracing::warn!("cannot mark inherited descriptors close-on-exec: {e}");
    }
}

fn run(config: Config) -> Result<(), AgentError> {
    // Log writes pass this gate: a freeze closes it (see write_gate.rs).
    let write_gate = WriteGate::new();
    init_logging(&config, &write_gate)?;
    harden_process();
    qga::runtime::install_panic_hook();
    if config.daemonize {
        nix::unistd::daemon(false, false).map_err(AgentError::Daemon)?;
    }
    let _pidfile = if config.daemonize || std::env::args().any(|a| a == "-f" || a.starts_with("--pidfile")) {
        Some(Pidfile::create(&config.pidfile)?)
    } else {
        None
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.statedir)
        .map_err(|source| AgentError::Statedir {
            path: config.statedir.clone(),
            source,
        })?;
    let filter = RpcFilter {
        blocked: config.block_rpcs.iter().cloned().collect(),
        allowed: config.allow_rpcs.as_ref().map(|list| list.iter().cloned().collect()),
    };
    let policy = match &config.policy {
        Some(path) => Policy::load(path)?,
        None => Policy::default(),
    };
    let audit = match &config.audit_log {
        Some(path) => Some(Arc::new(AuditLog::open(path, write_gate.clone())?)),
        None => None,
    };
    let mut runtime_config = RuntimeConfig::new(&config.statedir);
    runtime_config.handlers_dir = config.handlers_dir.clone();
    runtime_config.fsfreeze_hook = config.fsfreeze_hook.clone();
    runtime_config.write_gate = write_gate;
    runtime_config.policy = Arc::new(policy.clone());
    let runtime = match Runtime::new(runtime_config.clone()) {
        Ok(runtime) => Arc::new(runtime),
        Err(e) => {
            if let Some(audit) = &audit {
                audit.event("component-reject", fields(json!({"reason": e.to_string()})));
            }
            return Err(e.into());
        }
    };
    // Helpers (chpasswd, systemctl, …) are found in PATH once, now.
    let grants: Vec<_> = runtime
        .commands()
        .iter()
        .filter_map(|c| runtime.grant(&c.name).ok())
        .collect();
    qga::capabilities::helper::resolve_at_start(&grants);
    tracing::info!("policy: {} (preset {})", policy.source_name(), policy.preset.name());
    if let Some(audit) = &audit {
        audit.event("policy-load", policy_fields(&policy));
        for f in runtime.families() {
            audit.event(
                "component-load",
                fields(json!({"family": f.family, "sha256": f.digest})),
            );
        }
    }
    for f in runtime.families() {
        if let Some(warning) = f.trust.warning() {
            tracing::warn!("component {} (sha256 {}): {warning}", f.family, f.digest);
            if let Some(audit) = &audit {
                audit.event(
                    "component-unverified",
                    fields(json!({"family": f.family, "sha256": f.digest, "reason": warning,
                        "key": f.trust.signer.key_id()})),
                );
            }
        }
    }
    let start_runtime = runtime.clone();
    let handlers: Arc<dyn qga::dispatch::Backend> = runtime.clone();
    let dispatcher = Arc::new(
        Dispatcher::new(Some(handlers), &filter)
            .with_policy(&policy)
            .with_audit(audit.clone()),
    );
    let reloader = Reloader {
        config: config.clone(),
        base: runtime_config,
        runtime,
        audit,
        one_at_a_time: std::sync::Mutex::new(()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(64)
        // Idle handler threads go away soon, and their stacks with them.
        .thread_keep_alive(std::time::Duration::from_secs(1))
        .build()
        .map_err(AgentError::EventLoop)?;
    runtime.block_on(async {
        let mut terminate = signal(SignalKind::terminate()).map_err(AgentError::EventLoop)?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(AgentError::EventLoop)?;
        let mut hangup = signal(SignalKind::hangup()).map_err(AgentError::EventLoop)?;
        let reloader = Arc::new(reloader);
        start_runtime.trim_when_quiet();
        let reloads = async {
            while hangup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading policy and components");
                let r = reloader.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || r.reload("sighup")).await {
                    tracing::error!("reload failed: {e}");
                }
            }
            std::future::pending::<()>().await;
        };
        let watch = async {
            match config.handlers_dir.clone().filter(|_| config.watch_handlers) {
                Some(dir) => watch_handlers(dir, reloader.clone()).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = reloads => Ok(()),
            () = watch => Ok(()),
            result = qga::transport::run(&config, dispatcher) => result.map_err(AgentError::from),
            _ = terminate.recv() => { tracing::info!("terminating on SIGTERM"); Ok(()) }
            _ = interrupt.recv() => { tracing::info!("terminating on SIGINT"); Ok(()) }
        }
    })
}

fn fields(value: Json) -> Map<String, Json> {
    match value {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

fn policy_fields(policy: &Policy) -> Map<String, Json> {
    fields(json!({
        "source": policy.source_name(),
        "preset": policy.preset.name(),
        "command-rules": policy.commands.len(),
    }))
}

/// The `*.wasm` files of a handlers directory: name, size, mtime.
fn fingerprint(dir: &std::path::Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.path()
                .extension()
                .is_some_and(|x| x == "wasm" || x == "cwasm" || x == "sig")
        })
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            Some((e.path(), meta.len(), meta.modified().ok()))
        })
        .collect();
    out.sort();
    out
}

/// `--watch-handlers`: poll the handlers directory every second; reload
/// once a change has been stable for one poll (a copy in progress is not
/// loaded half-written: it would be rejected anyway, and retried).
async fn watch_handlers(dir: PathBuf, reloader: Arc<Reloader>) {
    let mut seen = fingerprint(&dir);
    let mut pending: Option<Vec<_>> = None;
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let now = fingerprint(&dir);
        if now == seen {
            pending = None;
            continue;
        }
        if pending.as_ref() != Some(&now) {
            pending = Some(now);
            continue;
        }
        tracing::info!("handlers directory {} changed: reloading", dir.display());
        seen = now;
        pending = None;
        let r = reloader.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || r.reload("watcher")).await {
            tracing::error!("reload failed: {e}");
        }
    }
}

/// What SIGHUP and the handlers watcher reload: the policy file, then the
/// components under it, switched in as one runtime generation.
struct Reloader {
    config: Config,
    base: RuntimeConfig,
    runtime: Arc<Runtime>,
    audit: Option<Arc<AuditLog>>,
    /// The one reload lock: SIGHUP, the handlers watcher and any other
    /// trigger reload one at a time, from reading the policy to the audit
    /// line, so each reload reads the files after the previous one ended
    /// and is audited once, in order.
    one_at_a_time: std::sync::Mutex<()>,
}

impl Reloader {
    /// Blocking (components are compiled before the switch). An invalid
    /// policy changes nothing: the last good policy and components stay.
    /// `trigger` (`sighup`, `watcher`) goes into the audit line.
    fn reload(&self, trigger: &str) {
        let _serialized = self.one_at_a_time.lock().unwrap_or_else(|p| p.into_inner());
        let audit = |event: &str, f: Map<String, Json>| {
            if let Some(a) = &self.audit {
                a.event(event, f);
            }
        };
        let policy = match &self.config.policy {
            Some(path) => match Policy::load(path) {
                Ok(policy) => policy,
                Err(e) => {
                    tracing::error!("policy reload rejected, keeping the last good policy: {e}");
                    audit("policy-reject", fields(json!({"reason": e.to_string()})));
                    return;
                }
            },
            None => Policy::default(),
        };
        let mut config = self.base.clone();
        config.policy = Arc::new(policy.clone());
        let events = match self.runtime.reload(config) {
            Ok(events) => events,
            Err(e) => {
                tracing::error!("reload failed, nothing changed: {e}");
                audit("reload-failed", fields(json!({"reason": e.to_string()})));
                return;
            }
        };
        for event in events {
            match event {
                ComponentEvent::Loaded { family, digest } => {
                    tracing::info!("component {family} loaded (sha256 {digest})");
                    audit("component-load", fields(json!({"family": family, "sha256": digest})));
                }
                ComponentEvent::Swapped { family, old, new } => {
                    tracing::info!("component {family} swapped: sha256 {old} -> {new}");
                    audit(
                        "component-swap",
                        fields(json!({"family": family, "old-sha256": old, "sha256": new})),
                    );
                }
                ComponentEvent::Rejected {
                    family,
                    digest,
                    reason,
                    kept,
                } => {
                    tracing::error!(
                        "component {family} (sha256 {digest}) rejected: {reason}; {}",
                        kept.as_deref()
                            .map_or("the family is not loaded".to_owned(), |k| format!(
                                "sha256 {k} keeps serving"
                            ))
                    );
                    audit(
                        "component-reject",
                        fields(json!({"family": family, "sha256": digest, "reason": reason, "kept-sha256": kept})),
                    );
                }
                ComponentEvent::Unverified {
                    family,
                    digest,
                    warning,
                    key,
                } => {
                    tracing::warn!("component {family} (sha256 {digest}): {warning}");
                    audit(
                        "component-unverified",
                        fields(json!({"family": family, "sha256": digest, "reason": warning, "key": key})),
                    );
                }
                ComponentEvent::Removed { family, digest } => {
                    tracing::info!("component {family} removed (sha256 {digest})");
                    audit("component-remove", fields(json!({"family": family, "sha256": digest})));
                }
            }
        }
        // The runtime's switch above was the one switch: the dispatcher
        // takes its decisions from the generation it routes each request by.
        let generation = self.runtime.serial();
        tracing::info!(
            "policy reloaded: {} (preset {}), generation {generation}",
            policy.source_name(),
            policy.preset.name()
        );
        let mut fields = policy_fields(&policy);
        fields.insert("generation".into(), json!(generation));
        fields.insert("trigger".into(), json!(trigger));
        audit("policy-reload", fields);
    }
}
