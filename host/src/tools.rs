//! The offline subcommands of the `qga` binary: `qga policy …`, `qga sign`,
//! `qga verify` and `qga compile`. None of them starts the agent.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use qga::cli::{Cli, PolicyCommand, PolicySource, Subcommand};
use qga::config::{self, Config};
use qga::dispatch::{Dispatcher, RpcFilter};
use qga::policy::Policy;
use qga::runtime::{Runtime, RuntimeConfig};

pub(crate) fn run_subcommand(command: &Subcommand) -> ExitCode {
    match command {
        Subcommand::Compile { input, output } => compile(input, output.as_deref()),
        Subcommand::Policy { command } => policy_command(command),
        Subcommand::Sign { key, detached, file } => report("sign", qga::trust::tool::sign(key, file, *detached)),
        Subcommand::Verify { key, file } => report("verify", qga::trust::tool::verify(key, file)),
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

/// A tool's outcome on stdout (exit 0) or stderr (exit 1).
fn report(tool: &str, outcome: Result<String, qga::trust::tool::ToolError>) -> ExitCode {
    match outcome {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qga {tool}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A runtime that only lists the families and their commands: nothing is
/// compiled and nothing on disk is touched.
pub(crate) fn inspection_runtime(handlers_dir: Option<PathBuf>, policy: Arc<Policy>) -> Result<Arc<Runtime>, String> {
    let mut rc = RuntimeConfig::new(std::env::temp_dir());
    rc.handlers_dir = handlers_dir;
    rc.policy = policy;
    Runtime::new(rc).map(Arc::new).map_err(|e| e.to_string())
}

/// The agent's view for `qga policy …`: the config file's compat flags,
/// handlers and policy keys, overridden by the subcommand's options.
fn policy_view(source: &PolicySource) -> Result<(Policy, Dispatcher, Arc<Runtime>), String> {
    let cli = Cli::parse_from(["qga"]);
    let config =
        Config::load(&cli, &config::config_file(&cli, std::env::var_os("QGA_CONF"))).map_err(|e| e.to_string())?;
    let policy_path = source.policy.clone().or(config.policy.clone());
    let policy = match &policy_path {
        Some(path) => Policy::load(path).map_err(|e| e.to_string())?,
        None => Policy::default(),
    };
    let handlers = source.handlers.clone().or(config.handlers_dir.clone());
    let runtime = inspection_runtime(handlers, Arc::new(policy.clone()))?;
    let filter = RpcFilter {
        blocked: config.block_rpcs.iter().cloned().collect(),
        allowed: config.allow_rpcs.as_ref().map(|l| l.iter().cloned().collect()),
    };
    let backend: Arc<dyn qga::dispatch::Backend> = runtime.clone();
    let dispatcher = Dispatcher::new(Some(backend), &filter).with_policy(&policy);
    Ok((policy, dispatcher, runtime))
}

fn policy_command(command: &PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Audit { json, source } => match policy_view(source) {
            Ok((policy, dispatcher, runtime)) => {
                let report = qga::policy_report::audit_json(&policy, &dispatcher, &runtime);
                if *json {
                    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
                } else {
                    print!("{}", qga::policy_report::audit_table(&report));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("qga policy audit: {e}");
                ExitCode::FAILURE
            }
        },
        PolicyCommand::Explain { command, json, source } => match policy_view(source) {
            Ok((policy, dispatcher, runtime)) => {
                let families = runtime.families();
                let Some(state) = dispatcher.describe().into_iter().find(|s| &s.name == command) else {
                    eprintln!("qga policy explain: no command {command} (see `qga policy audit`)");
                    return ExitCode::FAILURE;
                };
                let report = qga::policy_report::command_report(&state, &runtime, &families, &policy);
                if *json {
                    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
                } else {
                    print!("{}", qga::policy_report::explain_text(&report));
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("qga policy explain: {e}");
                ExitCode::FAILURE
            }
        },
        PolicyCommand::Check { file, handlers } => {
            let policy = match Policy::load(file) {
                Ok(policy) => policy,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Some(dir) = handlers {
                let source = PolicySource {
                    policy: Some(file.clone()),
                    handlers: Some(dir.clone()),
                };
                match policy_view(&source) {
                    Ok((_, _, runtime)) => {
                        for f in runtime.families() {
                            for c in &f.commands {
                                if let Err(e) = runtime.grant(c) {
                                    eprintln!("{}: {c}: {e}", file.display());
                                    return ExitCode::FAILURE;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        eprintln!("{}: {e}", file.display());
                        return ExitCode::FAILURE;
                    }
                }
            }
            println!(
                "{}: ok (preset {}, {} command rules, {} pinned components)",
                file.display(),
                policy.preset.name(),
                policy.commands.len(),
                policy.components.values().filter(|c| c.sha256.is_some()).count()
            );
            print!("{}", qga::policy_report::grants_text(&policy));
            ExitCode::SUCCESS
        }
    }
}

/// `qga compile FAMILY.wasm [-o FILE]`: write the artifact, print the
/// policy lines that trust it.
#[cfg(feature = "compiler")]
fn compile(input: &std::path::Path, output: Option<&std::path::Path>) -> ExitCode {
    let Some(family) = input.file_stem().and_then(|s| s.to_str()) else {
        eprintln!("qga compile: {}: the file name must be FAMILY.wasm", input.display());
        return ExitCode::FAILURE;
    };
    let wasm = match std::fs::read(input) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("qga compile: cannot read {}: {e}", input.display());
            return ExitCode::FAILURE;
        }
    };
    let artifact = match qga::runtime::compile_artifact(family, &wasm) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("qga compile: {e}");
            return ExitCode::FAILURE;
        }
    };
    let output = output.map_or_else(|| input.with_extension("cwasm"), std::path::Path::to_path_buf);
    // A temporary name then a rename: never a half-written artifact.
    let tmp = output.with_extension("cwasm.tmp");
    if let Err(e) = std::fs::write(&tmp, &artifact).and_then(|()| std::fs::rename(&tmp, &output)) {
        let _ = std::fs::remove_file(&tmp);
        eprintln!("qga compile: cannot write {}: {e}", output.display());
        return ExitCode::FAILURE;
    }
    let digest = qga::runtime::sources::hex_digest(&artifact);
    println!("{}", output.display());
    println!("# trust it: add to the policy (--policy FILE)\n[component.{family}]\nsha256 = \"{digest}\"");
    ExitCode::SUCCESS
}

#[cfg(not(feature = "compiler"))]
fn compile(_: &std::path::Path, _: Option<&std::path::Path>) -> ExitCode {
    eprintln!(
        "qga compile: this qga has no compiler: build one with `cargo build --release -p qga --features compiler` to compile handler components"
    );
    ExitCode::FAILURE
}
