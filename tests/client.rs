//! qga-client against both agents (the workspace's qga and the reference
//! /usr/sbin/qemu-ga) on unix sockets and a serial line: every subcommand,
//! exec's exit codes and signals, and the failures an operator meets (no
//! agent, a stale channel, a hostile peer). Copies: tests/client_cp.rs.

#[path = "client/common.rs"]
mod common;
mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::process::Command;

use common::*;
use serde_json::Value;
use support::loopfs::LoopFs;
use support::{Agent, Scratch};

#[test]
fn read_only_subcommands_render_both_agents() {
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    for agent in both_agents(&[]) {
        let s = &agent.socket;
        assert_eq!(ok(s, &["ping"]), "");
        let info = ok(s, &["info"]);
        assert!(info.starts_with("version: "), "{info}");
        assert!(info.contains("guest-get-osinfo"), "{info}");
        let osinfo = ok(s, &["osinfo"]);
        assert!(
            osinfo
                .lines()
                .any(|l| l.starts_with("kernel-release:") && l.ends_with(kernel.trim())),
            "{osinfo}"
        );
        assert_eq!(ok(s, &["hostname"]), host_name);
        let time = ok(s, &["time"]);
        let nanos: i64 = time
            .split('(')
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        assert!((now.as_nanos() as i64 - nanos).abs() < 3_600_000_000_000, "{time}");
        assert!(time.ends_with(" ns since the epoch)\n"), "{time}");
        assert!(ok(s, &["users"]).starts_with("USER  DOMAIN  LOGIN-TIME\n"));
        let ifconfig = ok(s, &["ifconfig"]);
        assert!(
            ifconfig.contains("lo:\n\tinet 127.0.0.1  netmask 255.0.0.0\n"),
            "{ifconfig}"
        );
        let fsinfo = ok(s, &["fsinfo"]);
        assert!(fsinfo.starts_with("MOUNTPOINT  "), "{fsinfo}");
        assert!(fsinfo.lines().skip(1).any(|l| l.starts_with("/ ")), "{fsinfo}");
        assert!(ok(s, &["disks"]).starts_with("NAME"));
        let vcpus = ok(s, &["vcpus"]);
        let cpus = std::fs::read_dir("/sys/devices/system/cpu")
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name().to_string_lossy().into_owned();
                name.strip_prefix("cpu")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .count();
        assert!(vcpus.starts_with("CPU  ONLINE  CAN-OFFLINE\n"), "{vcpus}");
        assert_eq!(vcpus.lines().count(), cpus + 1, "one row per CPU: {vcpus}");
        assert!(
            vcpus
                .lines()
                .skip(1)
                .any(|l| l.starts_with("0 ") && l.contains(" true ")),
            "{vcpus}"
        );
        assert_eq!(ok(s, &["fsfreeze", "status"]), "thawed\n");
        let out = client(s, &["fsfreeze", "thaw", "/"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("status and thaw take none"), "{}", stderr(&out));
    }
}

#[test]
fn json_prints_each_reply_as_the_agent_sent_it() {
    for agent in both_agents(&[]) {
        let s = &agent.socket;
        let raw = agent.connect().call(r#"{"execute": "guest-get-host-name"}"#);
        assert_eq!(ok(s, &["--json", "hostname"]).trim_end(), raw.trim_end());
        let reply: Value = serde_json::from_str(&ok(s, &["--json", "osinfo"])).unwrap();
        assert!(reply["return"]["kernel-release"].is_string(), "{reply}");
        assert_eq!(ok(s, &["raw", r#"{"execute": "guest-ping"}"#]), "{\"return\": {}}\n");
        // raw passes the agent's error through as it came, and succeeds.
        let error = ok(s, &["raw", r#"{"execute": "guest-nonexistent"}"#]);
        assert!(error.contains("\"class\": \"CommandNotFound\""), "{error}");
    }
}

#[test]
fn commands_that_act_on_the_machine_report_the_agents_refusal() {
    let blocked = "guest-shutdown,guest-fstrim,guest-fsfreeze-freeze,guest-fsfreeze-freeze-list,guest-fsfreeze-thaw";
    let [qga, qemu_ga] = both_agents(&["-b", blocked]);
    for args in [
        &["shutdown"][..],
        &["shutdown", "--mode", "reboot"],
        &["fstrim"],
        &["fstrim", "--minimum", "4096"],
        &["fsfreeze", "freeze"],
        &["fsfreeze", "freeze", "/"],
        &["fsfreeze", "thaw"],
    ] {
        let ours = client(&qga.socket, args);
        let theirs = client(&qemu_ga.socket, args);
        assert_eq!(ours.status.code(), Some(1), "{args:?}: {}", stderr(&ours));
        assert_eq!(theirs.status.code(), Some(1), "{args:?}: {}", stderr(&theirs));
        assert!(
            stderr(&theirs).contains("has been disabled"),
            "{args:?}: {}",
            stderr(&theirs)
        );
        assert_eq!(stderr(&ours), stderr(&theirs), "{args:?}");
    }
}

#[test]
fn fsfreeze_freezes_and_thaws_a_loop_mounted_filesystem() {
    let fs = LoopFs::new("client-freeze", 32 << 20);
    for agent in both_agents(&[]) {
        let s = &agent.socket;
        assert_eq!(ok(s, &["fsfreeze", "freeze", fs.mnt()]), "1 filesystems frozen\n");
        assert_eq!(ok(s, &["fsfreeze", "status"]), "frozen\n");
        assert_eq!(ok(s, &["--json", "fsfreeze", "status"]), "{\"return\": \"frozen\"}\n");
        // Thaw thaws every frozen filesystem of the machine: other tests
        // running at the same time may have frozen theirs.
        let thawed = ok(s, &["fsfreeze", "thaw"]);
        let count: u32 = thawed
            .strip_suffix(" filesystems thawed\n")
            .unwrap_or_else(|| panic!("{thawed:?}"))
            .parse()
            .unwrap();
        assert!(count >= 1, "{thawed:?}");
        assert_eq!(ok(s, &["fsfreeze", "status"]), "thawed\n");
        let out = client(s, &["fsfreeze", "thaw", fs.mnt()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("status and thaw take none"), "{}", stderr(&out));
    }
}

#[test]
fn exec_passes_output_exit_codes_and_signals_through() {
    for agent in both_agents(&[]) {
        let s = &agent.socket;
        let out = client(s, &["exec", "--", "sh", "-c", "printf out; printf err >&2; exit 3"]);
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(stdout(&out), "out");
        assert_eq!(stderr(&out), "err");
        for (script, code) in [
            ("exit 0", 0),
            ("exit 255", 255),
            ("kill -9 $$", 128 + 9),
            ("kill -TERM $$", 128 + 15),
        ] {
            let out = client(s, &["exec", "--", "sh", "-c", script]);
            assert_eq!(out.status.code(), Some(code), "{script}: {}", stderr(&out));
        }
        let out = client(
            s,
            &[
                "exec",
                "--env",
                "A=one",
                "--env",
                "B=two",
                "--",
                "sh",
                "-c",
                "echo $A$B",
            ],
        );
        assert_eq!(stdout(&out), "onetwo\n");
        let out = client_with_stdin(s, &["exec", "--stdin", "-", "--", "tr", "a-z", "A-Z"], b"shout");
        assert_eq!(stdout(&out), "SHOUT");
        let input = agent.scratch.path("input");
        std::fs::write(&input, b"line\n").unwrap();
        let out = client(s, &["exec", "--stdin", input.to_str().unwrap(), "--", "wc", "-l"]);
        assert_eq!(stdout(&out).trim(), "1");
        let out = client(s, &["exec", "--", "/nonexistent/program"]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).starts_with("qga-client: guest-exec: "), "{}", stderr(&out));
    }
}

#[test]
fn exec_timeout_prints_the_pid_and_exits_124() {
    for agent in both_agents(&[]) {
        let out = client(&agent.socket, &["exec", "--timeout", "0.5", "--", "sleep", "60"]);
        assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
        let pid: u32 = stdout(&out).trim().parse().unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert_eq!(cmdline, b"sleep\x0060\x00");
        assert!(stderr(&out).contains(&format!("pid {pid}")), "{}", stderr(&out));
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
}

#[test]
fn a_guest_without_an_agent_is_an_error_not_a_hang() {
    let dir = Scratch::new("client-noagent");
    // A chardev socket with nobody behind it: connects, never answers.
    let socket = dir.path("silent.sock");
    let _listener = UnixListener::bind(&socket).unwrap();
    let out = client(&socket, &["-w", "1", "ping"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no guest agent answered guest-sync-delimited within 1s"),
        "{}",
        stderr(&out)
    );
    let out = client(&dir.path("absent.sock"), &["ping"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot connect to"), "{}", stderr(&out));
    // One channel at a time: a usage error.
    let out = client(&dir.path("unused"), &["--vsock", "3:9999", "ping"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // vsock: an address nobody listens on (no such CID, or no vsock at all).
    let out = Command::new(client_binary())
        .args(["--vsock", "3:9999", "-w", "1", "ping"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot connect to vsock 3:9999"),
        "{}",
        stderr(&out)
    );
    let out = Command::new(client_binary())
        .args(["--vsock", "3", "ping"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--vsock wants CID:PORT"), "{}", stderr(&out));
    let out = Command::new(client_binary()).arg("ping").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("say where the agent is"), "{}", stderr(&out));
}

#[test]
fn resync_skips_stale_bytes_to_the_reply_with_our_id() {
    // A channel that still holds a previous session's replies (virtio-serial
    // has no connection boundaries): stale lines, a stale delimited reply
    // with another id, then ours.
    let dir = Scratch::new("client-resync");
    let socket = dir.path("agent.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let peer = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(b"}}\n") {
            stream.read_exact(&mut byte).unwrap();
            seen.push(byte[0]);
        }
        assert_eq!(seen[0], 0xFF, "the client resets the agent's parser first");
        let text = String::from_utf8_lossy(&seen[1..]).into_owned();
        let request: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(request["execute"], "guest-sync-delimited");
        let id = request["arguments"]["id"].as_u64().unwrap();
        stream.write_all(b"{\"return\": {\"host-name\": \"stale\"}}\n").unwrap();
        stream.write_all(b"\xff{\"return\": 12345}\n").unwrap();
        stream.write_all(b"\x00junk").unwrap();
        stream.write_all(&[0xFF]).unwrap();
        stream.write_all(format!("{{\"return\": {id}}}\n").as_bytes()).unwrap();
        let mut line = Vec::new();
        while !line.ends_with(b"\n") {
            stream.read_exact(&mut byte).unwrap();
            line.push(byte[0]);
        }
        assert_eq!(line, b"{\"execute\":\"guest-get-host-name\"}\n");
        stream.write_all(b"{\"return\": {\"host-name\": \"fresh\"}}\n").unwrap();
    });
    assert_eq!(ok(&socket, &["hostname"]), "fresh\n");
    peer.join().unwrap();
}

#[test]
fn man_page_and_completions_come_from_the_cli() {
    let page = Command::new(client_binary()).arg("manpage").output().unwrap();
    assert!(page.status.success());
    let roff = String::from_utf8(page.stdout).unwrap();
    assert!(roff.contains(".TH qga-client 1"), "{}", &roff[..200.min(roff.len())]);
    assert!(roff.contains("vsock"));
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(client_binary())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("fsfreeze"), "{shell}");
    }
}

/// A pseudo-terminal whose master end is relayed to `agent`'s unix socket:
/// the slave is a serial device as the host sees QEMU's `-chardev pty`.
fn serial_line_to(agent: &Agent) -> (std::path::PathBuf, std::os::fd::OwnedFd) {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = nix::unistd::ttyname(&pty.slave).unwrap();
    let master = std::fs::File::from(pty.master);
    let socket = std::os::unix::net::UnixStream::connect(&agent.socket).unwrap();
    let (mut from_master, mut to_socket) = (master.try_clone().unwrap(), socket.try_clone().unwrap());
    std::thread::spawn(move || std::io::copy(&mut from_master, &mut to_socket));
    let (mut from_socket, mut to_master) = (socket, master);
    std::thread::spawn(move || std::io::copy(&mut from_socket, &mut to_master));
    (slave, pty.slave)
}

#[test]
fn serial_device_carries_commands_exec_and_copies() {
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    for agent in both_agents(&[]) {
        let (slave, _keep_open) = serial_line_to(&agent);
        let serial = |args: &[&str]| {
            let out = Command::new(client_binary())
                .arg("--serial")
                .arg(&slave)
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "--serial {args:?}: {}", stderr(&out));
            out.stdout
        };
        assert_eq!(serial(&["hostname"]), host_name.as_bytes());
        // Each session resyncs on the same line; binary output passes as is.
        assert_eq!(serial(&["exec", "--", "printf", "\\377\\n"]), b"\xff\n");
        assert_eq!(serial(&["fsfreeze", "status"]), b"thawed\n");
        let dir = Scratch::new("client-serial");
        let src = dir.path("src");
        random_file(&src, (1 << 20) + 3);
        let guest = format!("guest:{}", dir.path("guest").display());
        serial(&["cp", "--chunk", "300000", src.to_str().unwrap(), &guest]);
        serial(&["cp", &guest, dir.path("back").to_str().unwrap()]);
        assert_eq!(sha256_file(&dir.path("back")), sha256_file(&src));
        assert_eq!(sha256_file(&dir.path("guest")), sha256_file(&src));
    }
}

/// A peer that completes the resync, then answers the next request with
/// `reply` written forever (until the client hangs up).
fn hostile_peer(dir: &Scratch, reply: &'static [u8]) -> std::path::PathBuf {
    let socket = dir.path("hostile.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"}}\n") {
            stream.read_exact(&mut byte).unwrap();
            request.push(byte[0]);
        }
        let request: Value = serde_json::from_slice(&request[1..]).unwrap();
        let id = request["arguments"]["id"].as_u64().unwrap();
        stream.write_all(b"\xff").unwrap();
        stream.write_all(format!("{{\"return\": {id}}}\n").as_bytes()).unwrap();
        while stream.write_all(reply).is_ok() {}
    });
    socket
}

#[test]
fn endless_reply_line_is_refused_not_buffered() {
    let dir = Scratch::new("client-hostile");
    let socket = hostile_peer(&dir, &[b'a'; 1 << 16]);
    let out = client(&socket, &["hostname"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("longer than 80 MiB"), "{}", stderr(&out));
}

#[test]
fn guest_text_cannot_drive_the_operators_terminal() {
    let dir = Scratch::new("client-escape");
    let socket = hostile_peer(
        &dir,
        b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"\\u001b]0;owned\\u0007\"}}\n",
    );
    let out = client(&socket, &["hostname"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!out.stderr.contains(&0x1b), "{:?}", stderr(&out));
    assert!(stderr(&out).contains("\\u{1b}]0;owned\\u{7}"), "{}", stderr(&out));
}
