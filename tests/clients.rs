//! Many clients, misbehaving clients, and the agent's own lifecycle on a
//! unix socket.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use support::Agent;

#[test]
fn hundred_concurrent_clients_are_each_answered_in_order() {
    let agent = Agent::qga(&[]);
    let threads: Vec<_> = (0..100)
        .map(|c| {
            let mut client = agent.connect();
            std::thread::spawn(move || {
                // Pipeline 20 requests, then read all replies.
                let mut batch = String::new();
                for i in 0..20 {
                    batch.push_str(&format!(
                        "{{\"execute\": \"guest-sync\", \"arguments\": {{\"id\": {}}}}}\n",
                        c * 1000 + i
                    ));
                }
                client.send(batch.as_bytes());
                for i in 0..20 {
                    assert_eq!(client.read_text(), format!("{{\"return\": {}}}", c * 1000 + i));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}

#[test]
fn unread_reply_does_not_kill_agent() {
    let mut agent = Agent::qga(&[]);
    for _ in 0..50 {
        let mut client = agent.connect();
        client.send_line(r#"{"execute": "guest-info"}"#);
        drop(client);
    }
    assert!(agent.is_running());
    assert_eq!(
        agent.connect().call(r#"{"execute": "guest-ping"}"#),
        r#"{"return": {}}"#
    );
}

#[test]
fn half_an_object_then_disconnect_leaves_no_state_for_the_next_client() {
    let agent = Agent::qga(&[]);
    let mut first = agent.connect();
    first.send(br#"{"execute": "guest-sync", "arguments": {"id": "#);
    drop(first);
    let mut second = agent.connect();
    assert_eq!(
        second.call(r#"{"execute": "guest-ping", "id": 2}"#),
        r#"{"return": {}, "id": 2}"#
    );
}

#[test]
fn parser_state_is_per_client() {
    let agent = Agent::qga(&[]);
    let mut a = agent.connect();
    let mut b = agent.connect();
    a.send(br#"{"execute": "guest-sync", "#);
    b.send(br#"{"execute": "guest-sync", "arguments": {"id": 2}}"#);
    a.send(br#""arguments": {"id": 1}}"#);
    assert_eq!(b.read_text(), r#"{"return": 2}"#);
    assert_eq!(a.read_text(), r#"{"return": 1}"#);
}

#[test]
fn client_that_never_reads_does_not_make_the_agent_spin_or_stall_others() {
    let agent = Agent::qga(&[]);
    let stalled = agent.connect().into_stream();
    let socket = agent.socket.clone();
    // Flood requests with big replies and never read them; the writer
    // blocks once both socket buffers are full.
    let flooder = std::thread::spawn(move || {
        let mut stream = stalled;
        let request = b"{\"execute\": \"guest-info\"}\n".repeat(200);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if stream.write_all(&request).is_err() {
                return true; // the agent dropped us
            }
        }
        false
    });
    std::thread::sleep(Duration::from_secs(1));
    // Every other client is still served (each call waits for its reply:
    // a stalled agent fails it with the client's read timeout).
    let mut other = support::Client::connect(&socket);
    for i in 0..100 {
        assert_eq!(
            other.call(&format!(r#"{{"execute": "guest-ping", "id": {i}}}"#)),
            format!(r#"{{"return": {{}}, "id": {i}}}"#)
        );
    }
    // With the stalled client still connected, or after it was dropped,
    // the agent goes quiet: a thread spinning on the full socket would
    // stay runnable forever.
    agent.wait_idle();
    assert!(flooder.join().unwrap(), "the stalled client was never dropped");
    assert_eq!(other.call(r#"{"execute": "guest-ping"}"#), r#"{"return": {}}"#);
}

#[test]
fn socket_file_is_removed_after_sigterm() {
    let mut agent = Agent::qga(&[]);
    assert!(agent.socket.exists());
    agent.signal(15);
    assert!(agent.wait_exit(Duration::from_secs(5)).success());
    assert!(!agent.socket.exists(), "socket file left behind");
}

#[test]
fn sigint_also_shuts_down_cleanly() {
    let mut agent = Agent::qga(&[]);
    let _idle = agent.connect();
    agent.signal(2);
    assert!(agent.wait_exit(Duration::from_secs(5)).success());
    assert!(!agent.socket.exists());
}

#[test]
fn idle_agent_uses_no_cpu() {
    let agent = Agent::qga(&[]);
    let _idle_client = agent.connect();
    // Not one thread of the agent runs for a whole second: no timer, no
    // polling, no start-up work left.
    agent.wait_idle();
}

#[test]
fn serves_a_socket_passed_by_systemd_activation() {
    let scratch = support::Scratch::new("activation");
    let socket = scratch.path("activated.sock");
    let mut launcher = std::process::Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&socket)
        .arg(support::qga_binary())
        .args(["-m", "unix-listen", "-p", "/nonexistent/never-bound.sock", "-t"])
        .arg(scratch.path("state"))
        .env("QGA_CONF", scratch.path("none"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (package systemd) runs");
    // The socket file appears at bind(), before listen(): wait until a
    // connection is accepted (the 60 s only bound a launcher that never
    // listens).
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "systemd-socket-activate did not listen");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut a = support::Client::connect(&socket);
    let mut b = support::Client::connect(&socket);
    assert_eq!(
        a.call(r#"{"execute": "guest-ping", "id": "a"}"#),
        r#"{"return": {}, "id": "a"}"#
    );
    assert_eq!(
        b.call(r#"{"execute": "guest-sync", "arguments": {"id": 3}}"#),
        r#"{"return": 3}"#
    );
    let _ = launcher.kill();
    let _ = launcher.wait();
}

#[test]
fn oversized_string_costs_one_error_then_the_stream_recovers() {
    let agent = Agent::qga(&[]);
    let client = agent.connect();
    let mut request = br#"{"execute": "guest-ping", "id": ""#.to_vec();
    request.resize(request.len() + (65 << 20), b'a');
    request.extend_from_slice(b"\"}\n{\"execute\": \"guest-ping\", \"id\": 2}\n");
    let writer = {
        let mut stream = client.into_stream();
        std::thread::spawn(move || {
            stream.write_all(&request).unwrap();
            stream
        })
    };
    let stream = writer.join().unwrap();
    let mut client = support::Client::from_stream(stream);
    assert_eq!(
        client.read_text(),
        r#"{"error": {"class": "GenericError", "desc": "JSON token size limit exceeded"}}"#
    );
    assert_eq!(client.read_text(), r#"{"return": {}, "id": 2}"#);
    assert!(!client.has_pending_reply(Duration::from_millis(300)));
}
