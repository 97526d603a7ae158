//! Soak and load on loopback (bounded): 100 concurrent clients, 1000 mixed
//! requests each (host-native, component-dispatched, bad JSON, unknown
//! commands, 0xFF resyncs), reconnecting every 100 requests. Every reply is
//! checked; the agent's memory and descriptors must end where they started.

mod support;

use std::time::{Duration, Instant};

use support::{Agent, Client};

const CLIENTS: usize = 100;
const REQUESTS: usize = 1000;
const RECONNECT_EVERY: usize = 100;

/// One request and a check of its reply.
fn exchange(client: &mut Client, kind: usize, id: usize) {
    match kind % 7 {
        0 => assert_eq!(
            client.call(&format!(r#"{{"execute": "guest-sync", "arguments": {{"id": {id}}}}}"#)),
            format!(r#"{{"return": {id}}}"#)
        ),
        1 => assert_eq!(
            client.call(&format!(r#"{{"execute": "guest-ping", "id": {id}}}"#)),
            format!(r#"{{"return": {{}}, "id": {id}}}"#)
        ),
        2 => {
            let reply = client.call(&format!(r#"{{"execute": "guest-get-time", "id": {id}}}"#));
            assert!(
                reply.starts_with(r#"{"return": "#) && reply.ends_with(&format!(r#", "id": {id}}}"#)),
                "{reply}"
            );
        }
        3 => {
            let reply = client.call(&format!(r#"{{"execute": "guest-get-osinfo", "id": "{id}"}}"#));
            assert!(
                reply.starts_with(r#"{"return": {"#) && reply.ends_with(&format!(r#", "id": "{id}"}}"#)),
                "{reply}"
            );
        }
        4 => assert_eq!(
            client.call(&format!(r#"{{"execute": "guest-nope", "id": {id}}}"#)),
            format!(
                r#"{{"id": {id}, "error": {{"class": "CommandNotFound", "desc": "The command guest-nope has not been found"}}}}"#
            )
        ),
        5 => assert_eq!(
            client.call(r#"{"execute": ]"#),
            r#"{"error": {"class": "GenericError", "desc": "JSON parse error, expecting value"}}"#
        ),
        _ => {
            client.send(b"\xff");
            assert_eq!(
                client.read_text(),
                r#"{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\uFFFD'"}}"#
            );
        }
    }
}

#[test]
fn hundred_clients_thousand_mixed_requests_each_with_reconnect_storms() {
    let agent = Agent::qga(&[]);
    // Warm up: load the family and reach steady state.
    let mut warm = agent.connect();
    for i in 0..200 {
        exchange(&mut warm, i, i);
    }
    drop(warm);
    // The warm-up's work (trim, linger of the epoch ticker) ends.
    agent.wait_idle();
    let fds_start = agent.open_fds();
    let rss_start = agent.rss_kib();
    // Round one reaches the peak concurrency (threads, allocator arenas);
    // after that memory must level off: a leak grows with every round.
    let first = round(&agent);
    let mut rss = vec![agent.rss_kib()];
    assert_eq!(agent.open_fds(), fds_start, "descriptors leaked");
    let mut levelled = false;
    for _ in 0..4 {
        round(&agent);
        rss.push(agent.rss_kib());
        assert_eq!(agent.open_fds(), fds_start, "descriptors leaked");
        if rss[rss.len() - 1] < rss[rss.len() - 2] + 1024 {
            levelled = true;
            break;
        }
    }
    println!(
        "soak: {} rounds of {} requests from {CLIENTS} clients (first in {first:?}); RSS {rss_start} KiB, then {rss:?}; fds {fds_start}",
        rss.len(),
        CLIENTS * REQUESTS
    );
    assert!(
        rss[0] < rss_start + 16 * 1024,
        "RSS grew from {rss_start} to {} KiB in round one",
        rss[0]
    );
    assert!(levelled, "RSS kept growing round after round: {rss:?} KiB");
    assert_eq!(
        agent.connect().call(r#"{"execute": "guest-ping"}"#),
        r#"{"return": {}}"#
    );
}

/// 100 clients x 1000 requests; returns how long it took.
fn round(agent: &Agent) -> Duration {
    let started = Instant::now();
    let socket = agent.socket.clone();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut client = Client::connect(&socket);
                for i in 0..REQUESTS {
                    if i > 0 && i % RECONNECT_EVERY == 0 {
                        // Half a request left behind, then a new connection.
                        client.send(br#"{"execute": "guest-sync", "argu"#);
                        client = Client::connect(&socket);
                    }
                    exchange(&mut client, c + i, c * REQUESTS + i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let elapsed = started.elapsed();
    // Idle handler threads exit after a second.
    std::thread::sleep(Duration::from_millis(1500));
    elapsed
}
