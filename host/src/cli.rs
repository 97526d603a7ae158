//! The command line: qemu-ga 7.2's options with the same short and long
//! names, plus qga's own.

use std::path::PathBuf;

use clap::Parser;

/// The hook `-F` runs when given no path (qemu-ga's default).
pub const DEFAULT_FSFREEZE_HOOK: &str = "/etc/qemu/fsfreeze-hook";

#[derive(Debug, Parser)]
#[command(
    name = "qga",
    version,
    about = "QEMU guest agent whose command handlers run in WebAssembly sandboxes",
    disable_version_flag = true,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Subcommand>,

    /// Configuration file (default /etc/qemu/qemu-ga.conf, or $QGA_CONF);
    /// a file named here must exist
    #[arg(help_heading = "Process", short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Transport method: one of unix-listen, virtio-serial, isa-serial, or
    /// vsock-listen (virtio-serial is the default)
    #[arg(help_heading = "Channel", short = 'm', long = "method", value_name = "METHOD")]
    pub method: Option<String>,

    /// Device/socket path (virtio-serial default:
    /// /dev/virtio-ports/org.qemu.guest_agent.0, isa-serial default:
    /// /dev/ttyS0); vsock-listen addresses are written as <cid>:<port>
    #[arg(help_heading = "Channel", short = 'p', long = "path", value_name = "PATH")]
    pub path: Option<String>,

    /// Log file path; logs go to stderr by default
    #[arg(help_heading = "Process", short = 'l', long = "logfile", value_name = "FILE")]
    pub logfile: Option<PathBuf>,

    /// Pid file (default /var/run/qemu-ga.pid)
    #[arg(help_heading = "Process", short = 'f', long = "pidfile", value_name = "FILE")]
    pub pidfile: Option<PathBuf>,

    /// Enable the fsfreeze hook, optionally naming the script
    /// (default /etc/qemu/fsfreeze-hook); write -F/path, without a space
    #[arg(help_heading = "Agent commands", short = 'F', long = "fsfreeze-hook", value_name = "PATH", num_args = 0..=1,
          require_equals = true, default_missing_value = DEFAULT_FSFREEZE_HOOK)]
    pub fsfreeze_hook: Option<PathBuf>,

    /// Directory for state information (absolute path, default /var/run)
    #[arg(help_heading = "Process", short = 't', long = "statedir", value_name = "DIR")]
    pub statedir: Option<PathBuf>,

    /// Log extra debugging information
    #[arg(help_heading = "Process", short = 'v', long = "verbose")]
    pub verbose: bool,

    /// Print version information and exit
    #[arg(help_heading = "Process", short = 'V', long = "version")]
    pub version: bool,

    /// Become a daemon
    #[arg(help_heading = "Process", short = 'd', long = "daemonize")]
    pub daemonize: bool,

    /// Comma-separated list of RPCs to disable ("help" lists them)
    #[arg(
        help_heading = "Agent commands",
        short = 'b',
        long = "block-rpcs",
        value_name = "LIST"
    )]
    pub block_rpcs: Vec<String>,

    /// Comma-separated list of RPCs to enable; all others are disabled
    #[arg(
        help_heading = "Agent commands",
        short = 'a',
        long = "allow-rpcs",
        value_name = "LIST"
    )]
    pub allow_rpcs: Vec<String>,

    /// Print the effective configuration as a config file and exit
    #[arg(help_heading = "Process", short = 'D', long = "dump-conf")]
    pub dump_conf: bool,

    /// Keep re-opening the path if it is unavailable or closed
    #[arg(help_heading = "Channel", short = 'r', long = "retry-path")]
    pub retry_path: bool,

    /// Load handler components from this directory (FAMILY.wasm) instead of
    /// the embedded ones
    #[arg(help_heading = "Agent commands", long = "handlers", value_name = "DIR")]
    pub handlers: Option<PathBuf>,

    /// Operator policy (TOML): which commands run and how their grants are
    /// narrowed (see docs/policy.md); SIGHUP reloads it
    #[arg(help_heading = "Agent commands", long = "policy", value_name = "FILE")]
    pub policy: Option<PathBuf>,

    /// Append one JSON line per request and per policy/component event to FILE
    /// (created 0600)
    #[arg(help_heading = "Agent commands", long = "audit-log", value_name = "FILE")]
    pub audit_log: Option<PathBuf>,

    /// Reload (as on SIGHUP) when a *.wasm file in the --handlers directory
    /// changes (checked every second)
    #[arg(help_heading = "Agent commands", long = "watch-handlers")]
    pub watch_handlers: bool,
}

/// qemu-ga parses `-F` with getopt's optional argument: `-F/path` attached,
/// bare `-F` for the default. Rewrite `-FPATH` to `--fsfreeze-hook=PATH` so
/// clap reads the same thing.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    args.into_iter()
        .map(|arg| match arg.strip_prefix("-F") {
            Some(rest) if !rest.is_empty() && !arg.starts_with("--") => {
                format!("--fsfreeze-hook={rest}")
            }
            _ => arg,
        })
        .collect()
}

/// qga's own tools; without one, `qga` runs the agent.
#[derive(Debug, clap::Subcommand)]
pub enum Subcommand {
    /// Precompile a handler component (FAMILY.wasm) into the artifact
    /// (FAMILY.cwasm) that an agent loads from --handlers once the policy
    /// pins its sha256 (a qga built with the compiler feature)
    Compile {
        /// The component, named after its family
        #[arg(value_name = "FAMILY.wasm")]
        input: PathBuf,
        /// Where to write the artifact [default: FAMILY.cwasm beside the input]
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Sign a handler component with an OpenSSH ed25519 private key (as
    /// `ssh-keygen -t ed25519 -N ''` writes it): a .wasm in place, as its
    /// last custom section `qga-signature`; any other file (a precompiled
    /// .cwasm), or with --detached, into FILE.sig
    Sign {
        /// The OpenSSH ed25519 private key
        #[arg(long = "key", value_name = "KEY")]
        key: PathBuf,
        /// Write FILE.sig instead of changing FILE
        #[arg(long = "detached")]
        detached: bool,
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Check FILE's signature (embedded, else FILE.sig) against an OpenSSH
    /// ed25519 public key: exit 0 if valid, 1 with the reason if not
    Verify {
        /// The OpenSSH ed25519 public key (KEY.pub)
        #[arg(long = "key", value_name = "KEY.pub")]
        key: PathBuf,
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the manual page (roff) generated from this command line
    Manpage,
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Inspect and check policies: what each command may do, and why
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

/// Where `qga policy …` reads the policy and the components from.
#[derive(Debug, Clone, clap::Args)]
pub struct PolicySource {
    /// The policy file (default: the `policy` key of the config file, else
    /// the built-in compat policy)
    #[arg(long = "policy", value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Handlers directory, as the agent's --handlers (default: the
    /// `handlers` key of the config file)
    #[arg(long = "handlers", value_name = "DIR")]
    pub handlers: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Per command: enabled?, component and digest, interfaces imported,
    /// granted, imported but not granted, effective constraints
    Audit {
        /// Stable JSON for tools instead of a table
        #[arg(long = "json")]
        json: bool,
        #[command(flatten)]
        source: PolicySource,
    },
    /// Everything the policy says about one command, and why
    Explain {
        #[arg(value_name = "COMMAND")]
        command: String,
        /// JSON instead of text
        #[arg(long = "json")]
        json: bool,
        #[command(flatten)]
        source: PolicySource,
    },
    /// Check a policy file: exit 0 if valid, 1 with `file:line: reason` if not
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Also check pins and grants against these components
        #[arg(long = "handlers", value_name = "DIR")]
        handlers: Option<PathBuf>,
    },
}
