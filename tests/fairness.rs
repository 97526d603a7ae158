//! One client's input never stops the others: while one client sends a
//! message that takes long to parse, other clients are answered, and
//! SIGTERM is acted on. Every assertion is on the order of events; the only
//! timeouts guard against a hang.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use support::Agent;

/// Only guards against a hang: a healthy agent is orders of magnitude faster.
const HANG: Duration = Duration::from_secs(120);

/// `{"execute": "guest-ping", "arguments": {"k0": 0, ...}}` with `n`
/// members: guest-ping takes no arguments, so the reply is an
/// unexpected-member error once every member is parsed and checked.
fn many_members(n: usize) -> Vec<u8> {
    let mut out = br#"{"execute": "guest-ping", "arguments": {"#.to_vec();
    for i in 0..n {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        write!(out, "\"k{i}\": {i}").unwrap();
    }
    out.extend_from_slice(b"}}\n");
    out
}

/// A guest-ping whose id is a string of `mib` MiB of `\u0041` escapes.
fn escapes(mib: usize) -> Vec<u8> {
    let mut out = br#"{"execute": "guest-ping", "id": ""#.to_vec();
    out.extend(std::iter::repeat_n(&b"\\u0041"[..], (mib << 20) / 6).flatten());
    out.extend_from_slice(b"\"}\n");
    out
}

/// Send `message` whole on a fresh connection from a thread; the thread
/// returns the connection once every byte is written.
fn send_in_background(agent: &Agent, message: Vec<u8>) -> std::thread::JoinHandle<UnixStream> {
    let mut big = UnixStream::connect(&agent.socket).unwrap();
    std::thread::spawn(move || {
        big.write_all(&message).unwrap();
        big
    })
}

/// Whether a reply has already arrived on `reader` (no waiting).
fn has_reply(reader: &mut BufReader<UnixStream>) -> bool {
    reader.get_ref().set_nonblocking(true).unwrap();
    let arrived = matches!(reader.fill_buf(), Ok(buf) if !buf.is_empty());
    reader.get_ref().set_nonblocking(false).unwrap();
    arrived
}

/// The next reply line on `reader`, however long the agent takes (up to
/// the hang guard).
fn slow_reply(reader: &mut BufReader<UnixStream>) -> String {
    reader.get_ref().set_read_timeout(Some(HANG)).unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(
        line.ends_with('\n'),
        "no whole reply: {:?}",
        &line[..line.len().min(300)]
    );
    line.pop();
    line
}

/// Bytes sent on `client` that the agent has not read yet: the receive
/// queue of the agent's end of the connection, as `ss` (iproute2) shows it.
fn unread(client: &UnixStream) -> u64 {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", client.as_raw_fd())).unwrap();
    let inode = link
        .to_string_lossy()
        .trim_start_matches("socket:[")
        .trim_end_matches(']')
        .to_owned();
    let out = std::process::Command::new("ss")
        .args(["-xn"])
        .output()
        .expect("ss (iproute2)");
    let table = String::from_utf8_lossy(&out.stdout);
    // Netid State Recv-Q Send-Q Local Port Peer Port: the agent's row is
    // the one whose peer is our socket.
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() >= 8 && f[7] == inode)
        .map(|f| f[2].parse().unwrap())
        .unwrap_or_else(|| panic!("no agent end for socket {inode} in\n{table}"))
}

/// A big message is sent but for its last bytes; once the agent has read
/// all the rest, the last bytes go out (the parse of the whole message
/// starts) and a second client's request follows at once: it is answered
/// while the big one is still parsed (its reply not yet there), and the
/// big one is answered afterwards.
fn answered_during_the_big_parse(message: Vec<u8>, request: &str, want: &str, big_reply: impl Fn(&str) -> bool) {
    let agent = Agent::qga(&[]);
    let mut other = agent.connect();
    assert_eq!(other.call(request), want, "before");
    let (head, tail) = message.split_at(message.len() - 3);
    let mut big = UnixStream::connect(&agent.socket).unwrap();
    big.write_all(head).unwrap();
    settle(|| unread(&big) == 0);
    big.write_all(tail).unwrap();
    let reply = other.call(request);
    let mut big = BufReader::new(big);
    let big_pending = has_reply(&mut big);
    assert_eq!(reply, want);
    assert!(!big_pending, "the big message was answered before the small one");
    let answer = slow_reply(&mut big);
    assert!(big_reply(&answer), "{}", &answer[..answer.len().min(300)]);
    assert_eq!(other.call(request), want, "after");
}

/// Wait for `done` (up to the hang guard).
fn settle(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + HANG;
    while !done() {
        assert!(std::time::Instant::now() < deadline, "never happened");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_ping_is_answered_while_half_a_million_members_are_parsed() {
    answered_during_the_big_parse(
        many_members(500_000),
        r#"{"execute": "guest-ping"}"#,
        r#"{"return": {}}"#,
        |a| a.contains("is unexpected"),
    );
}

#[test]
fn a_ping_is_answered_while_60_mib_of_escapes_are_parsed() {
    answered_during_the_big_parse(escapes(60), r#"{"execute": "guest-ping"}"#, r#"{"return": {}}"#, |a| {
        a.starts_with(r#"{"return": {}, "id": "AAAA"#)
    });
}

/// One client cannot keep a guest frozen: a thaw is not queued behind
/// another client's big message. (Nothing is frozen here, so the thaw
/// answers 0 and touches no filesystem.)
#[test]
fn a_thaw_is_not_kept_waiting_behind_a_big_parse() {
    answered_during_the_big_parse(
        many_members(500_000),
        r#"{"execute": "guest-fsfreeze-thaw"}"#,
        r#"{"return": 0}"#,
        |a| a.contains("is unexpected"),
    );
}

/// A client that streams a big message without pause, 64 KiB at a time,
/// and one that asks in between: every question is answered before the
/// big message is complete.
#[test]
fn a_client_streaming_without_pause_leaves_room_for_others() {
    let agent = Agent::qga(&[]);
    let mut other = agent.connect();
    let message = many_members(300_000);
    let mut big = UnixStream::connect(&agent.socket).unwrap();
    let (head, tail) = message.split_at(message.len() - 3);
    for (i, chunk) in head.chunks(64 << 10).enumerate() {
        big.write_all(chunk).unwrap();
        assert_eq!(
            other.call(&format!(r#"{{"execute": "guest-sync", "arguments": {{"id": {i}}}}}"#)),
            format!(r#"{{"return": {i}}}"#)
        );
    }
    let mut replies = BufReader::new(big.try_clone().unwrap());
    assert!(!has_reply(&mut replies));
    big.write_all(tail).unwrap();
    assert!(slow_reply(&mut replies).contains("is unexpected"));
}

/// SIGTERM during a big parse ends the agent.
#[test]
fn sigterm_during_a_big_parse_ends_the_agent() {
    let mut agent = Agent::qga(&[]);
    let _big = send_in_background(&agent, many_members(500_000))
        .join()
        .expect("sender");
    // The agent still answers (so it has read the message), then is told
    // to stop while the big one is parsed or checked.
    assert_eq!(
        agent.connect().call(r#"{"execute": "guest-ping"}"#),
        r#"{"return": {}}"#
    );
    agent.signal(libc_sigterm());
    let status = agent.wait_exit(HANG);
    assert!(status.success() || status.code().is_some(), "{status:?}");
}

/// SIGTERM while a client is still streaming ends the agent.
#[test]
fn sigterm_while_a_client_streams_ends_the_agent() {
    let mut agent = Agent::qga(&[]);
    let mut stream = UnixStream::connect(&agent.socket).unwrap();
    stream
        .write_all(br#"{"execute": "guest-ping", "arguments": {"x": ""#)
        .unwrap();
    let writer = std::thread::spawn(move || {
        let filler = b"\\n".repeat(32 << 10);
        // Until the agent is gone and the write fails.
        while stream.write_all(&filler).is_ok() {}
    });
    assert_eq!(
        agent.connect().call(r#"{"execute": "guest-ping"}"#),
        r#"{"return": {}}"#
    );
    agent.signal(libc_sigterm());
    agent.wait_exit(HANG);
    writer.join().expect("writer ends when the agent is gone");
}

fn libc_sigterm() -> i32 {
    15
}
