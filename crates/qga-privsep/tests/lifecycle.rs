//! The pair's lifecycle: the broker is forked before anything is read, holds
//! only its end of the channel, and each side ends when the other dies.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::os::fd::AsFd;

use qga_privsep::channel::ChannelError;
use qga_privsep::lifecycle::{self, EXIT_PANIC, Exit, LifecycleError};
use qga_privsep::wire::{Path, Reply, Request};
use support::{ensure, in_child, sys};

/// Hang guard for waiting on an event; not a timing assertion.
const GUARD_MS: i32 = 120_000;

/// Forks an "agent" that spawns a broker which never reads its channel, and
/// tells the test the broker's pid; the agent then runs `agent_after`.
fn agent_with_idle_broker(agent_after: fn(qga_privsep::channel::MainEnd, lifecycle::Broker) -> i32) -> (i32, i32) {
    let (mut reader, mut writer) = std::io::pipe().unwrap();
    match sys::fork().unwrap() {
        None => {
            drop(reader);
            sys::alarm(support::HANG_GUARD_SECONDS);
            let spawned = lifecycle::spawn_broker(|end| {
                let _held = end;
                loop {
                    std::thread::park();
                }
            });
            let Ok((main_end, broker)) = spawned else {
                sys::exit_now(3)
            };
            let _ = writer.write_all(&broker.pid().to_le_bytes());
            drop(writer);
            sys::exit_now(agent_after(main_end, broker))
        }
        Some(agent) => {
            drop(writer);
            let mut pid = [0u8; 4];
            reader.read_exact(&mut pid).expect("the agent reports its broker's pid");
            (agent, i32::from_le_bytes(pid))
        }
    }
}

#[test]
fn killing_the_main_process_ends_the_broker() {
    let (agent, broker) = agent_with_idle_broker(|_main, _broker| {
        loop {
            std::thread::park();
        }
    });
    let broker_exit = sys::pidfd_open(broker).unwrap();
    sys::kill(agent, libc::SIGKILL).unwrap();
    assert_eq!(sys::wait(agent).unwrap(), Err(libc::SIGKILL));
    // The broker never reads its channel: only the parent-death signal ends it.
    assert!(
        sys::wait_readable(broker_exit.as_fd(), GUARD_MS).unwrap(),
        "the broker outlived its parent"
    );
}

#[test]
fn killing_the_broker_ends_the_main_process() {
    let (agent, broker) = agent_with_idle_broker(|main, broker| {
        let saw_eof = matches!(main.recv(), Err(ChannelError::Closed));
        match (saw_eof, broker.wait()) {
            (true, Ok(Exit::Signal(libc::SIGKILL))) => 42,
            _ => 1,
        }
    });
    sys::kill(broker, libc::SIGKILL).unwrap();
    assert_eq!(
        sys::wait(agent).unwrap(),
        Ok(42),
        "the agent saw EOF and reaped a SIGKILLed broker"
    );
}

#[test]
fn the_broker_serves_requests_and_holds_no_inherited_fd() {
    let dir = support::temp_dir("lifecycle");
    let inherited = dir.join("inherited");
    fs::write(&inherited, b"the agent's").unwrap();
    in_child(|| {
        // Opened before the fork, as systemd's or the channel's fds would be.
        let _held = fs::File::open(&inherited).map_err(|e| e.to_string())?;
        let (main, broker) = lifecycle::spawn_broker(|end| {
            loop {
                let request = match end.recv() {
                    Ok(received) => received.message,
                    Err(ChannelError::Closed) => return 0,
                    Err(_) => return 2,
                };
                let reply = match request {
                    Request::ReopenChannel => {
                        let leaked = fs::read_dir("/proc/self/fd")
                            .unwrap()
                            .filter_map(Result::ok)
                            .any(|entry| fs::read_link(entry.path()).is_ok_and(|target| target == inherited));
                        if leaked {
                            Reply::Failed {
                                errno: libc::EBADF,
                                message: "an inherited fd is still open".into(),
                            }
                        } else {
                            let null = fs::File::open("/dev/null").unwrap();
                            end.send(&Reply::Opened, &[null.as_fd()]).unwrap();
                            continue;
                        }
                    }
                    _ => Reply::Failed {
                        errno: libc::EPERM,
                        message: "not granted".into(),
                    },
                };
                end.send(&reply, &[]).unwrap();
            }
        })
        .map_err(|e| e.to_string())?;

        main.send(&Request::ReopenChannel, &[]).map_err(|e| e.to_string())?;
        let received = main.recv().map_err(|e| e.to_string())?;
        ensure(received.message == Reply::Opened && received.fds.len() == 1, || {
            format!("{received:?}")
        })?;
        let target = fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&received.fds[0])
        ));
        ensure(target.as_ref().is_ok_and(|t| t.as_os_str() == "/dev/null"), || {
            format!("{target:?}")
        })?;
        let freeze = Request::Freeze {
            mountpoint: Path::new("/").unwrap(),
        };
        main.send(&freeze, &[]).map_err(|e| e.to_string())?;
        let refused = main.recv().map_err(|e| e.to_string())?.message;
        ensure(matches!(refused, Reply::Failed { errno: libc::EPERM, .. }), || {
            format!("{refused:?}")
        })?;
        drop(main);
        let exit = broker.wait().map_err(|e| e.to_string())?;
        ensure(exit == Exit::Code(0), || {
            format!("the broker ended with {exit:?} after EOF")
        })
    })
    .unwrap();
}

#[test]
fn a_panicking_broker_exits_and_the_main_process_sees_eof() {
    in_child(|| {
        let (main, broker) = lifecycle::spawn_broker(|_end| panic!("broker bug")).map_err(|e| e.to_string())?;
        ensure(matches!(main.recv(), Err(ChannelError::Closed)), || "no EOF".into())?;
        let exit = broker.wait().map_err(|e| e.to_string())?;
        ensure(exit == Exit::Code(EXIT_PANIC), || format!("{exit:?}"))
    })
    .unwrap();
}

#[test]
fn the_broker_is_forked_only_before_threads_start() {
    in_child(|| {
        let _worker = std::thread::spawn(std::thread::park);
        match lifecycle::spawn_broker(|_end| 0) {
            Err(LifecycleError::Threaded { threads: 2 }) => Ok(()),
            Err(e) => Err(e.to_string()),
            Ok((_, broker)) => Err(format!("forked broker {}", broker.pid())),
        }
    })
    .unwrap();
}
