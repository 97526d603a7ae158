use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use qga::cli::{self, Cli, Subcommand};
use qga::config::{self, Config};
use qga::dispatch::{Dispatcher, RpcFilter};
use qga::pidfile::Pidfile;
use qga::runtime::{Runtime, RuntimeConfig};
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    let cli = Cli::parse_from(cli::normalize_args(std::env::args()));
    if let Some(command) = &cli.command {
        return run_subcommand(command);
    }
    if cli.version {
        println!("qga {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let config_file =
        std::env::var_os("QGA_CONF").map_or_else(|| PathBuf::from(config::DEFAULT_CONFIG_FILE), PathBuf::from);
    let config = match Config::load(&cli, &config_file) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("qga: {e}");
            return ExitCode::FAILURE;
        }
    };
    if config.block_rpcs.iter().any(|c| c == "help") || config.allow_rpcs.iter().flatten().any(|c| c == "help") {
        let dispatcher = Dispatcher::new(None, &RpcFilter::default());
        for name in dispatcher.command_names() {
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

fn run_subcommand(command: &Subcommand) -> ExitCode {
    match command {
        Subcommand::Compile { out_dir, handlers } => compile(out_dir, handlers.clone()),
        Subcommand::Manpage => {
            let page = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).section("8");
            match page.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("qga manpage: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Subcommand::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "qga", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}

#[cfg(feature = "cranelift")]
fn compile(out_dir: &std::path::Path, handlers: Option<PathBuf>) -> ExitCode {
    let mut config = RuntimeConfig::new(out_dir);
    config.handlers_dir = handlers;
    match qga::runtime::compile_families(&config, out_dir) {
        Ok(paths) => {
            for path in paths {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qga compile: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(feature = "cranelift"))]
fn compile(_: &std::path::Path, _: Option<PathBuf>) -> ExitCode {
    eprintln!("qga compile: this agent was built without the compiler (feature cranelift)");
    ExitCode::FAILURE
}

#[derive(Debug, thiserror::Error)]
enum AgentError {
    #[error("failed to open log file {path}: {source}")]
    Logfile { path: PathBuf, source: std::io::Error },
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
}

fn init_logging(config: &Config) -> Result<(), AgentError> {
    let level = if config.verbose {
        tracing::Level::DEBUG
    } else {
        tracing::Level::INFO
    };
    let builder = tracing_subscriber::fmt().with_max_level(level).with_target(false);
    match &config.logfile {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| AgentError::Logfile {
                    path: path.clone(),
                    source,
                })?;
            builder.with_ansi(false).with_writer(Arc::new(file)).init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

/// What hardening of the agent process costs nothing: no core dumps (its
/// memory can hold passwords and file contents) and no ptrace by non-root.
fn harden_process() {
    if let Err(e) = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0) {
        tracing::warn!("cannot disable core dumps: {e}");
    }
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!("cannot mark the process non-dumpable: {e}");
    }
}

fn run(config: Config) -> Result<(), AgentError> {
    init_logging(&config)?;
    harden_process();
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
    let mut runtime_config = RuntimeConfig::new(&config.statedir);
    runtime_config.handlers_dir = config.handlers_dir.clone();
    runtime_config.fsfreeze_hook = config.fsfreeze_hook.clone();
    let handlers: Arc<dyn qga::dispatch::Backend> = Arc::new(Runtime::new(runtime_config)?);
    let dispatcher = Arc::new(Dispatcher::new(Some(handlers), &filter));
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
        tokio::select! {
            result = qga::transport::run(&config, dispatcher) => result.map_err(AgentError::from),
            _ = terminate.recv() => { tracing::info!("terminating on SIGTERM"); Ok(()) }
            _ = interrupt.recv() => { tracing::info!("terminating on SIGINT"); Ok(()) }
        }
    })
}
