//! The command line: where the agent is, and what to ask it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "qga-client",
    version,
    about = "Talk to a QEMU guest agent (qga or qemu-ga) from the host",
    long_about = "Talk to a QEMU guest agent (qga or qemu-ga) from the host, without libvirt: \
                  over the unix socket of QEMU's chardev (-s), vsock (--vsock) or a serial \
                  device (--serial). Every session starts by resynchronising with \
                  guest-sync-delimited, as libvirt does.",
    after_help = "Exit status: 0 on success, 1 when the agent or the channel fails, 2 on a usage \
                  error; exec exits with the guest program's status (128+N when killed by signal N, \
                  124 when --timeout expired)."
)]
pub struct Cli {
    #[command(flatten)]
    pub channel: ChannelArgs,

    /// Print each reply as the agent sent it (JSON) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for each reply (and for the agent to resynchronise).
    #[arg(
        short = 'w',
        long = "wait",
        value_name = "SECONDS",
        default_value_t = 10.0,
        global = true
    )]
    pub wait: f64,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug)]
#[group(required = false, multiple = false)]
pub struct ChannelArgs {
    /// The agent's unix socket (QEMU's -chardev socket,path=PATH).
    #[arg(short = 's', long = "socket", value_name = "PATH", global = true)]
    pub socket: Option<PathBuf>,
    /// The agent's vsock address.
    #[arg(long, value_name = "CID:PORT", global = true)]
    pub vsock: Option<String>,
    /// A serial device or pty connected to the agent.
    #[arg(long, value_name = "DEV", global = true)]
    pub serial: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check that the agent answers.
    Ping,
    /// The agent's version and its commands.
    Info,
    /// The guest's operating system.
    Osinfo,
    /// The guest's host name.
    Hostname,
    /// The guest's clock.
    Time,
    /// Users logged in to the guest.
    Users,
    /// The guest's network interfaces.
    Ifconfig,
    /// The guest's mounted filesystems.
    Fsinfo,
    /// The guest's disks.
    Disks,
    /// Filesystem freeze: status, freeze or thaw.
    Fsfreeze {
        action: FreezeAction,
        /// Freeze only these mount points (freeze only).
        mountpoints: Vec<String>,
    },
    /// Discard unused blocks on the guest's filesystems.
    Fstrim {
        /// Minimum contiguous free range to discard, in bytes.
        #[arg(long, value_name = "BYTES")]
        minimum: Option<u64>,
    },
    /// The guest's virtual CPUs.
    Vcpus,
    /// Shut the guest down, halt it or reboot it.
    Shutdown {
        #[arg(long, value_enum, default_value_t = ShutdownMode::Powerdown)]
        mode: ShutdownMode,
    },
    /// Run a program in the guest; its output becomes ours, its exit status ours.
    Exec(ExecArgs),
    /// Copy a file into or out of the guest; one side is guest:/path.
    Cp(CopyArgs),
    /// Send one JSON request as given and print the reply as it came.
    Raw {
        /// The request, e.g. '{"execute": "guest-info"}'.
        request: String,
    },
    /// Print the man page (roff) generated from this command line.
    #[command(hide = true)]
    Manpage,
    /// Print shell completions.
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Environment of the program (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Feed FILE (or - for our stdin) to the program's stdin.
    #[arg(long, value_name = "FILE|-")]
    pub stdin: Option<PathBuf>,
    /// Stop waiting after SECONDS: print the pid, exit 124.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// The program and its arguments.
    #[arg(required = true, last = true, value_name = "PROG [ARG]...")]
    pub argv: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// Source: a host path or guest:/path.
    pub src: String,
    /// Destination: a host path or guest:/path.
    pub dst: String,
    /// Bytes per guest-file-read/-write.
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20, value_parser = clap::value_parser!(u64).range(1..=(48 << 20)))]
    pub chunk: u64,
    /// Compare SHA-256 of both sides afterwards (sha256sum through guest-exec).
    #[arg(long)]
    pub verify: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreezeAction {
    Status,
    Freeze,
    Thaw,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownMode {
    Powerdown,
    Halt,
    Reboot,
}

impl ShutdownMode {
    pub fn wire(self) -> &'static str {
        match self {
            ShutdownMode::Powerdown => "powerdown",
            ShutdownMode::Halt => "halt",
            ShutdownMode::Reboot => "reboot",
        }
    }
}
