//! qga-client: the host side of the QEMU guest agent protocol, for people
//! who run QEMU without libvirt. Talks to qga or qemu-ga over a unix
//! socket, vsock or a serial device.

mod channel;
mod cli;
mod copy;
mod exec;
mod progress;
mod session;
mod show;

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use serde_json::{Value, json};

use channel::Endpoint;
use cli::{Cli, Command, FreezeAction};
use session::{Session, SessionError};

#[derive(Debug, thiserror::Error)]
enum ClientError {
    #[error("say where the agent is: -s PATH, --vsock CID:PORT or --serial DEV")]
    NoEndpoint,
    #[error("--vsock wants CID:PORT (two numbers), not {0:?}")]
    BadVsock(String),
    #[error("--wait wants a positive number of seconds, not {0}")]
    BadWait(f64),
    #[error("mount points name what to freeze: fsfreeze status and thaw take none")]
    MountpointsFreezeOnly,
    #[error("{0}")]
    Session(#[from] SessionError),
    #[error("{0}")]
    Exec(#[from] exec::ExecError),
    #[error("{0}")]
    Copy(#[from] copy::CopyError),
    #[error("cannot write: {0}")]
    Output(#[from] std::io::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Errors quote the guest's text: escape what could drive a terminal.
            eprintln!("qga-client: {}", show::printable(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

fn endpoint(cli: &Cli) -> Result<Endpoint, ClientError> {
    if let Some(path) = &cli.channel.socket {
        return Ok(Endpoint::Unix(path.clone()));
    }
    if let Some(path) = &cli.channel.serial {
        return Ok(Endpoint::Serial(path.clone()));
    }
    if let Some(address) = &cli.channel.vsock {
        let parsed = address
            .split_once(':')
            .and_then(|(cid, port)| Some((cid.parse().ok()?, port.parse().ok()?)));
        return match parsed {
            Some((cid, port)) => Ok(Endpoint::Vsock { cid, port }),
            None => Err(ClientError::BadVsock(address.clone())),
        };
    }
    Err(ClientError::NoEndpoint)
}

fn run(cli: Cli) -> Result<u8, ClientError> {
    match &cli.command {
        Command::Manpage => {
            clap_mangen::Man::new(Cli::command())
                .section("1")
                .render(&mut std::io::stdout())?;
            return Ok(0);
        }
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "qga-client", &mut std::io::stdout());
            return Ok(0);
        }
        _ => {}
    }
    if !(cli.wait.is_finite() && cli.wait > 0.0) {
        return Err(ClientError::BadWait(cli.wait));
    }
    let endpoint = endpoint(&cli)?;
    let mut session = Session::connect(&endpoint, Duration::from_secs_f64(cli.wait))?;
    let print = |reply: session::Reply, render: fn(&Value) -> String| {
        if cli.json {
            println!("{}", reply.raw);
        } else {
            print!("{}", render(&reply.value));
        }
    };
    match &cli.command {
        Command::Ping => print(session.call("guest-ping", None)?, |_| String::new()),
        Command::Info => print(session.call("guest-info", None)?, show::info),
        Command::Osinfo => print(session.call("guest-get-osinfo", None)?, show::osinfo),
        Command::Hostname => print(session.call("guest-get-host-name", None)?, show::hostname),
        Command::Time => print(session.call("guest-get-time", None)?, show::time),
        Command::Users => print(session.call("guest-get-users", None)?, show::users),
        Command::Ifconfig => print(session.call("guest-network-get-interfaces", None)?, show::ifconfig),
        Command::Fsinfo => print(session.call("guest-get-fsinfo", None)?, show::fsinfo),
        Command::Disks => print(session.call("guest-get-disks", None)?, show::disks),
        Command::Vcpus => print(session.call("guest-get-vcpus", None)?, show::vcpus),
        Command::Fsfreeze { action, mountpoints } => {
            if *action != FreezeAction::Freeze && !mountpoints.is_empty() {
                return Err(ClientError::MountpointsFreezeOnly);
            }
            let reply = match (action, mountpoints.is_empty()) {
                (FreezeAction::Status, _) => session.call("guest-fsfreeze-status", None)?,
                (FreezeAction::Freeze, true) => session.call("guest-fsfreeze-freeze", None)?,
                (FreezeAction::Freeze, false) => {
                    session.call("guest-fsfreeze-freeze-list", Some(json!({"mountpoints": mountpoints})))?
                }
                (FreezeAction::Thaw, _) => session.call("guest-fsfreeze-thaw", None)?,
            };
            // As QEMU's qemu-ga-client: "thawed", "2 filesystems frozen".
            let verb = match action {
                FreezeAction::Freeze => "frozen",
                FreezeAction::Status | FreezeAction::Thaw => "thawed",
            };
            if cli.json {
                println!("{}", reply.raw);
            } else {
                match &reply.value {
                    Value::String(s) => println!("{}", show::printable(s)),
                    Value::Number(n) => println!("{n} filesystems {verb}"),
                    other => println!("{other}"),
                }
            }
        }
        Command::Fstrim { minimum } => {
            let arguments = minimum.map(|m| json!({"minimum": m}));
            print(session.call("guest-fstrim", arguments)?, show::fstrim);
        }
        Command::Shutdown { mode } => {
            session.call_no_reply("guest-shutdown", json!({"mode": mode.wire()}))?;
        }
        Command::Exec(args) => {
            let code = exec::command(&mut session, &args.argv, &args.env, args.stdin.as_deref(), args.timeout)?;
            return Ok(u8::try_from(code).unwrap_or(1));
        }
        Command::Cp(args) => {
            let options = copy::CopyOptions {
                chunk: args.chunk,
                verify: args.verify,
            };
            copy::command(&mut session, &args.src, &args.dst, &options)?;
        }
        Command::Raw { request } => {
            let command = serde_json::from_str::<Value>(request)
                .ok()
                .and_then(|v| v.get("execute").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| "raw".to_owned());
            println!("{}", session.call_raw(&command, request)?);
        }
        Command::Manpage | Command::Completions { .. } => {}
    }
    Ok(0)
}
