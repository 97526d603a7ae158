//! qga-client cp against both agents (the workspace's qga and the
//! reference /usr/sbin/qemu-ga) on unix sockets: both directions at the
//! chunk edges and 100 MiB with checksums, --verify, directories, a missing
//! guest path, an agent that stops answering mid-copy, the progress bar.

#[path = "client/common.rs"]
mod common;
mod support;

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use nix::sys::signal::Signal;
use support::loopfs::LoopFs;
use support::{Agent, Scratch, settle};

/// Copy `size` bytes in and back out through `agent`; both copies match.
fn round_trip(agent: &Agent, size: usize, extra: &[&str]) {
    let dir = Scratch::new("client-cp");
    let src = dir.path("src");
    let guest = dir.path("guest");
    let back = dir.path("back");
    random_file(&src, size);
    let guest_arg = format!("guest:{}", guest.display());
    let mut args = vec!["cp"];
    args.extend_from_slice(extra);
    let out = client(
        &agent.socket,
        &[&args[..], &[src.to_str().unwrap(), &guest_arg]].concat(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "no progress bar when stderr is not a terminal");
    assert_eq!(std::fs::metadata(&guest).unwrap().len(), size as u64);
    assert_eq!(sha256_file(&guest), sha256_file(&src), "copy in of {size} bytes");
    ok(
        &agent.socket,
        &[&args[..], &[&guest_arg, back.to_str().unwrap()]].concat(),
    );
    assert_eq!(sha256_file(&back), sha256_file(&src), "copy out of {size} bytes");
    assert_eq!(dir_entries(&dir.0), ["back", "guest", "src"], "no temporary left");
}

#[test]
fn cp_round_trips_edge_sizes_through_both_agents() {
    const MIB: usize = 1 << 20;
    for agent in both_agents(&[]) {
        for size in [0, 1, 4 * MIB - 1, 4 * MIB, 4 * MIB + 1] {
            round_trip(&agent, size, &[]);
        }
        round_trip(&agent, 3000, &["--chunk", "1000"]);
    }
}

#[test]
fn cp_round_trips_100_mib_through_both_agents() {
    for agent in both_agents(&[]) {
        round_trip(&agent, 100 << 20, &[]);
    }
}

#[test]
fn cp_verify_checks_the_guest_side_or_says_it_could_not() {
    for (agent, exec) in [
        (Agent::qga(&[]), true),
        (Agent::qemu_ga(&[]), true),
        (Agent::qemu_ga(&["-b", "guest-exec"]), false),
    ] {
        let dir = Scratch::new("client-verify");
        let src = dir.path("src");
        random_file(&src, 70_000);
        let guest = format!("guest:{}", dir.path("dst").display());
        let out = client(&agent.socket, &["cp", "--verify", src.to_str().unwrap(), &guest]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(sha256_file(&dir.path("dst")), sha256_file(&src));
        let said = stderr(&out);
        if exec {
            assert!(
                said.contains(&format!("verified: SHA-256 {}", sha256_file(&src))),
                "{said}"
            );
        } else {
            assert!(said.contains("guest-exec is not enabled"), "{said}");
            assert!(said.contains("was not checked"), "{said}");
        }
        // Without exec the file was written in place: no DST.part anywhere.
        assert_eq!(dir_entries(&dir.0), ["dst", "src"]);
    }
}

#[test]
fn cp_of_a_missing_guest_path_fails_cleanly() {
    for agent in both_agents(&[]) {
        let dir = Scratch::new("client-missing");
        let missing = format!("guest:{}", dir.path("nope").display());
        let out = client(&agent.socket, &["cp", &missing, dir.path("here").to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("No such file or directory"), "{}", stderr(&out));
        assert!(dir_entries(&dir.0).is_empty(), "{:?}", dir_entries(&dir.0));
        let src = dir.path("src");
        std::fs::write(&src, b"x").unwrap();
        let into_missing_dir = format!("guest:{}", dir.path("no-dir/file").display());
        let out = client(&agent.socket, &["cp", src.to_str().unwrap(), &into_missing_dir]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("No such file or directory"), "{}", stderr(&out));
        let out = client(&agent.socket, &["cp", src.to_str().unwrap(), "also-host"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("exactly one of SRC and DST"), "{}", stderr(&out));
    }
}

/// Start a copy of 100 MiB in small chunks, stop the agent (SIGSTOP) once
/// `started` sees the copy under way; the client must give up with a clear
/// error within its wait.
fn stop_agent_mid_copy(agent: &Agent, args: &[&str], started: impl Fn() -> bool) -> Output {
    let child = Command::new(client_binary())
        .arg("-s")
        .arg(&agent.socket)
        .args(["-w", "2", "cp", "--chunk", "65536"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        settle(Duration::from_secs(60), &started, |s| *s),
        "the copy never started"
    );
    agent.signal(Signal::SIGSTOP as i32);
    let out = child.wait_with_output().unwrap();
    // Resumed, so that the agent can be stopped at drop.
    agent.signal(Signal::SIGCONT as i32);
    out
}

/// The byte count of an interrupted copy-in's message ("...; N bytes were
/// written to guest:DST"), checked to name `dst`.
fn bytes_written_to(said: &str, dst: &std::path::Path) -> u64 {
    let written = said
        .split("; ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {said}"));
    assert!(
        said.contains(&format!("bytes were written to guest:{}", dst.display())),
        "{said}"
    );
    written
}

#[test]
fn agent_that_stops_answering_mid_copy_out_leaves_no_host_file() {
    for agent in both_agents(&[]) {
        let dir = Scratch::new("client-stop-out");
        let src = dir.path("src");
        random_file(&src, 100 << 20);
        let dst_dir = dir.path("out");
        std::fs::create_dir(&dst_dir).unwrap();
        let guest = format!("guest:{}", src.display());
        let dst = dst_dir.join("dst");
        let out = stop_agent_mid_copy(&agent, &[&guest, dst.to_str().unwrap()], || {
            std::fs::read_dir(&dst_dir)
                .unwrap()
                .any(|e| e.unwrap().metadata().unwrap().len() > 0)
        });
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("guest-file-read: the agent did not answer within 2s"),
            "{}",
            stderr(&out)
        );
        assert!(dir_entries(&dst_dir).is_empty(), "{:?}", dir_entries(&dst_dir));
    }
}

#[test]
fn agent_that_stops_answering_mid_copy_in_says_how_much_was_written() {
    for agent in both_agents(&["-b", "guest-exec"]) {
        let dir = Scratch::new("client-stop-in");
        let src = dir.path("src");
        random_file(&src, 100 << 20);
        let dst = dir.path("dst");
        let guest = format!("guest:{}", dst.display());
        let out = stop_agent_mid_copy(&agent, &[src.to_str().unwrap(), &guest], || {
            std::fs::metadata(&dst).is_ok_and(|m| m.len() > 0)
        });
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let said = stderr(&out);
        let written = bytes_written_to(&said, &dst);
        assert!(written > 0 && written < 100 << 20, "{said}");
        assert_eq!(written % 65536, 0, "{said}");
    }
}

#[test]
fn progress_bar_shows_rate_and_eta_on_a_terminal() {
    use std::os::fd::AsFd;
    let agent = Agent::qga(&[]);
    let dir = Scratch::new("client-progress");
    let src = dir.path("src");
    random_file(&src, 8 << 20);
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let terminal = std::fs::File::from(pty.slave.as_fd().try_clone_to_owned().unwrap());
    let guest = format!("guest:{}", dir.path("guest").display());
    let status = Command::new(client_binary())
        .arg("-s")
        .arg(&agent.socket)
        .args(["cp", "--chunk", "1048576", src.to_str().unwrap(), &guest])
        .stderr(terminal)
        .status()
        .unwrap();
    assert!(status.success());
    nix::fcntl::fcntl(
        &pty.master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )
    .unwrap();
    let mut shown = Vec::new();
    let _ = std::fs::File::from(pty.master).read_to_end(&mut shown);
    let shown = String::from_utf8_lossy(&shown);
    assert!(shown.contains("/s  ETA "), "{shown:?}");
    assert!(shown.contains(" / 8.0M"), "{shown:?}");
    assert!(shown.ends_with("\r\u{1b}[K"), "the bar is erased at the end: {shown:?}");
}

#[test]
fn cp_into_an_existing_directory_keeps_the_source_name() {
    for agent in both_agents(&[]) {
        let dir = Scratch::new("client-cp-dir");
        let src = dir.path("src");
        random_file(&src, 5000);
        let guest_dir = dir.path("guest-dir");
        std::fs::create_dir(&guest_dir).unwrap();
        // A directory named without a trailing slash (found through exec), and with one.
        for target in [guest_dir.display().to_string(), format!("{}/", guest_dir.display())] {
            let _ = std::fs::remove_file(guest_dir.join("src"));
            ok(
                &agent.socket,
                &["cp", src.to_str().unwrap(), &format!("guest:{target}")],
            );
            assert_eq!(sha256_file(&guest_dir.join("src")), sha256_file(&src), "{target}");
            assert_eq!(dir_entries(&guest_dir), ["src"], "no .part left in {target}");
        }
        let host_dir = dir.path("host-dir");
        std::fs::create_dir(&host_dir).unwrap();
        let from = format!("guest:{}", guest_dir.join("src").display());
        ok(&agent.socket, &["cp", &from, host_dir.to_str().unwrap()]);
        assert_eq!(dir_entries(&host_dir), ["src"]);
        assert_eq!(sha256_file(&host_dir.join("src")), sha256_file(&src));
    }
}

#[test]
fn cp_into_a_full_filesystem_fails_cleanly() {
    let fs = LoopFs::new("client-cp-full", 8 << 20);
    let dir = Scratch::new("client-cp-full");
    let src = dir.path("src");
    random_file(&src, 32 << 20);
    for (agent, exec) in [
        (Agent::qga(&[]), true),
        (Agent::qemu_ga(&[]), true),
        (Agent::qga(&["-b", "guest-exec"]), false),
        (Agent::qemu_ga(&["-b", "guest-exec"]), false),
    ] {
        let dst = fs.path().join("dst");
        let guest = format!("guest:{}", dst.display());
        let out = client(
            &agent.socket,
            &["cp", "--chunk", "1048576", src.to_str().unwrap(), &guest],
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let said = stderr(&out);
        assert!(said.contains("No space left on device"), "{said}");
        if exec {
            // DST.part was written, then removed: nothing half-written stays.
            assert!(
                said.ends_with(&format!("guest:{}.part was removed\n", dst.display())),
                "{said}"
            );
            assert!(!dst.exists() && !fs.path().join("dst.part").exists());
        } else {
            // In place: the message says how much of DST is there.
            let written = bytes_written_to(&said, &dst);
            assert!(written < 32 << 20, "{said}");
            std::fs::remove_file(&dst).unwrap();
        }
    }
}
