//! `-m isa-serial` on a real pseudo-terminal: the agent must put the line in
//! raw mode (no echo, no CR/LF translation, no line buffering) and serve a
//! byte stream without connection boundaries.

mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Scratch, qga_binary};

fn read_reply(master: &mut std::fs::File) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\n") {
        assert!(
            Instant::now() < deadline,
            "no reply on the serial line: {:?}",
            String::from_utf8_lossy(&reply)
        );
        match master.read(&mut byte) {
            Ok(1) => reply.push(byte[0]),
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    reply
}

#[test]
fn isa_serial_serves_a_raw_tty() {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave_path = nix::unistd::ttyname(&pty.slave).expect("ttyname");
    let scratch = Scratch::new("serial");
    let mut agent = Command::new(qga_binary())
        .args(["-m", "isa-serial", "-p"])
        .arg(&slave_path)
        .arg("-t")
        .arg(scratch.path("state"))
        .env("QGA_CONF", scratch.path("none"))
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    // Give the agent time to open the line and switch it to raw mode.
    std::thread::sleep(Duration::from_millis(300));
    // Two requests in one write, the second split over two writes: no line
    // buffering, no echo, and '\n' stays '\n'.
    master
        .write_all(b"{\"execute\": \"guest-ping\"}{\"execute\": \"guest-sync\", ")
        .unwrap();
    assert_eq!(read_reply(&mut master), b"{\"return\": {}}\n");
    master.write_all(b"\"arguments\": {\"id\": 42}}").unwrap();
    assert_eq!(read_reply(&mut master), b"{\"return\": 42}\n");
    master
        .write_all(b"\xff{\"execute\": \"guest-sync-delimited\", \"arguments\": {\"id\": 7}}")
        .unwrap();
    assert_eq!(
        read_reply(&mut master),
        b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n"
    );
    assert_eq!(read_reply(&mut master), b"\xff{\"return\": 7}\n");
    let _ = agent.kill();
    let _ = agent.wait();
    drop(pty.slave);
}
