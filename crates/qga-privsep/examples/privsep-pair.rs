//! Starts the pair as the agent will, with the broker keeping what a grant
//! set needs, and prints both processes' `/proc/<pid>/status` privilege
//! lines. Run as root: `cargo run --release -p qga-privsep --example
//! privsep-pair -- compat|hardened`.

use std::fs;
use std::process::ExitCode;

use qga_privsep::channel::ChannelError;
use qga_privsep::landlock::{self, Access, Rule};
use qga_privsep::lifecycle;
use qga_privsep::needs::broker_capabilities;
use qga_privsep::privilege::{self, CapSet};
use qga_privsep::seccomp;
use qga_privsep::status::ProcessStatus;
use qga_privsep::wire::{Operation, Reply, Request};

const LINES: &[&str] = &[
    "Name",
    "Pid",
    "PPid",
    "Uid",
    "Gid",
    "Groups",
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
];

fn print_status(role: &str, pid: i32) {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    println!("--- {role} (pid {pid})");
    for line in text
        .lines()
        .filter(|l| LINES.iter().any(|p| l.split(':').next() == Some(p)))
    {
        println!("  {line}");
    }
}

fn main() -> ExitCode {
    let granted: Vec<Operation> = match std::env::args().nth(1).as_deref() {
        Some("compat") => Operation::ALL.to_vec(),
        Some("hardened") => vec![Operation::OpenFile, Operation::ReopenChannel],
        _ => {
            eprintln!("usage: privsep-pair compat|hardened");
            return ExitCode::from(2);
        }
    };
    let needed = broker_capabilities(granted);
    let user = match privilege::resolve_agent_user() {
        Ok(user) => user,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let spawned = lifecycle::spawn_broker(move |end| {
        // At start the broker keeps what is needed and still available.
        let available = ProcessStatus::of_self().map(|s| s.cap_bounding).unwrap_or(0);
        let keep = needed.intersect(CapSet::from_bits(available));
        if let Err(e) = privilege::keep_only(keep) {
            eprintln!("broker: {e}");
            return 1;
        }
        loop {
            match end.recv() {
                Ok(_) => end.send(&Reply::Done, &[]).unwrap(),
                Err(ChannelError::Closed) => return 0,
                Err(e) => {
                    eprintln!("broker: {e}");
                    return 2;
                }
            }
        }
    });
    let (main, broker) = match spawned {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let dropped = privilege::drop_all(&user).map(drop).map_err(|e| e.to_string());
    let confined = dropped.and_then(|()| {
        landlock::restrict(&[Rule {
            path: "/proc".into(),
            access: Access::ReadOnly,
        }])
        .map_err(|e| e.to_string())
    });
    let filtered = confined.and_then(|status| seccomp::install().map(|s| (status, s)).map_err(|e| e.to_string()));
    let (landlock_status, installed) = match filtered {
        Ok(done) => done,
        Err(e) => {
            eprintln!("main: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One round trip: the broker has narrowed itself before it answers.
    main.send(&Request::ReopenChannel, &[]).unwrap();
    main.recv().unwrap();
    println!("user {} ({}:{}); {landlock_status}", user.user, user.uid, user.gid);
    println!(
        "seccomp: {} syscalls allowed, {} BPF instructions",
        installed.syscalls, installed.instructions
    );
    print_status("main (wire, wasmtime)", std::process::id() as i32);
    print_status("broker", broker.pid());
    drop(main);
    match broker.wait() {
        Ok(lifecycle::Exit::Code(0)) => ExitCode::SUCCESS,
        other => {
            eprintln!("broker ended with {other:?}");
            ExitCode::FAILURE
        }
    }
}
