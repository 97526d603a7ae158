//! What one broker round trip costs: `OpenFile` answered with `Opened` and a
//! real fd (`/dev/null`), the broker on another thread of this process (the
//! channel's cost; the fork changes nothing on this path). Timing lives here,
//! never in tests. `cargo run --release -p qga-privsep --example channel-bench [N]`

use std::fs::File;
use std::os::fd::AsFd;
use std::time::Instant;

use qga_privsep::channel::{self, ChannelError};
use qga_privsep::wire::{OpenMode, Path, Reply, Request};

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let (main, broker) = channel::pair().expect("socketpair");
    let server = std::thread::spawn(move || {
        let null = File::open("/dev/null").expect("/dev/null");
        loop {
            match broker.recv() {
                Ok(_) => broker.send(&Reply::Opened, &[null.as_fd()]).expect("send"),
                Err(ChannelError::Closed) => return,
                Err(e) => panic!("{e}"),
            }
        }
    });
    let request = Request::OpenFile {
        path: Path::new("/var/lib/qga/some/file").unwrap(),
        mode: OpenMode::Read,
    };
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        main.send(&request, &[]).expect("send");
        let received = main.recv().expect("recv");
        drop(received);
        samples.push(start.elapsed().as_nanos() as u64);
    }
    drop(main);
    server.join().expect("broker thread");
    samples.sort_unstable();
    let pct = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)] as f64 / 1000.0;
    println!(
        "{rounds} round trips (request, reply + 1 fd, close): p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs",
        pct(50),
        pct(90),
        pct(99)
    );
}
