//! The fuzzer's parts: inputs ([`mutate`]), ways of delivering them, and
//! the oracles every reply must pass.

mod json;
pub mod mutate;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use mutate::Rng;

/// How the bytes of an input reach the agent.
#[derive(Debug, Clone, Copy)]
pub enum Delivery {
    Whole,
    /// Cut at random points, one write each.
    Split,
    /// One write per byte (short inputs only).
    ByteByByte,
    /// The input many times in one write.
    Flood,
    /// 0xFF first (qemu-ga's parser reset), then the input.
    ResetFirst,
    /// On a connection of its own, cut short, then closed.
    Disconnect,
}

impl Delivery {
    pub fn pick(rng: &mut Rng, len: usize) -> Delivery {
        match rng.below(12) {
            0..=4 => Delivery::Whole,
            5 | 6 => Delivery::Split,
            7 if len <= 4096 => Delivery::ByteByByte,
            8 if len <= 64 << 10 => Delivery::Flood,
            9 => Delivery::ResetFirst,
            10 => Delivery::Disconnect,
            _ => Delivery::Whole,
        }
    }
}

/// Write `input` the way `how` says (but Disconnect, which needs a
/// connection of its own); returns the bytes actually sent.
pub fn deliver(writer: &mut UnixStream, rng: &mut Rng, how: Delivery, input: &[u8]) -> std::io::Result<Vec<u8>> {
    match how {
        Delivery::Whole | Delivery::Disconnect => writer.write_all(input)?,
        Delivery::Split => {
            let mut cuts: Vec<usize> = (0..1 + rng.below(6)).map(|_| rng.below(input.len() + 1)).collect();
            cuts.sort_unstable();
            let mut from = 0;
            for cut in cuts.into_iter().chain([input.len()]) {
                writer.write_all(&input[from..cut])?;
                from = cut;
            }
        }
        Delivery::ByteByByte => {
            for b in input {
                writer.write_all(std::slice::from_ref(b))?;
            }
        }
        Delivery::Flood => {
            let copies = 2 + rng.below(100);
            let flood = input.repeat(copies);
            writer.write_all(&flood)?;
            return Ok(flood);
        }
        Delivery::ResetFirst => {
            let mut bytes = vec![0xFF];
            bytes.extend_from_slice(input);
            writer.write_all(&bytes)?;
            return Ok(bytes);
        }
    }
    Ok(input.to_vec())
}

/// Reply lines read by a thread of their own, so that an agent answering
/// a flood never waits on the writer.
pub struct Replies {
    lines: Receiver<Vec<u8>>,
}

impl Replies {
    pub fn new(stream: UnixStream) -> Replies {
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::with_capacity(1 << 20, stream);
            loop {
                let mut line = Vec::new();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Replies { lines }
    }

    /// Read replies up to the one of `guest-sync-delimited` with `id`,
    /// checking each; the count of replies before it.
    pub fn until_sync(&self, id: u64, hang: Duration) -> Result<usize, Failure> {
        let mut want = vec![0xFF];
        want.extend_from_slice(format!("{{\"return\": {id}}}\n").as_bytes());
        let mut count = 0;
        loop {
            let line = match self.lines.recv_timeout(hang) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => return Err(Failure::Hang),
                Err(RecvTimeoutError::Disconnected) => return Err(Failure::Closed),
            };
            if line == want {
                return Ok(count);
            }
            check_reply(&line).map_err(Failure::Invalid)?;
            count += 1;
        }
    }
}

/// What went wrong.
#[derive(Debug)]
pub enum Failure {
    Hang,
    Closed,
    Invalid(String),
    Died,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Hang => f.write_str("no answer to the sync (hang)"),
            Failure::Closed => f.write_str("the agent closed the connection"),
            Failure::Invalid(why) => write!(f, "invalid reply: {why}"),
            Failure::Died => f.write_str("the agent died"),
        }
    }
}

/// One reply line: one JSON object (after an optional 0xFF), valid UTF-8,
/// with `return` or `error` (never both), maybe `id`, nothing else; an
/// error (when the reply is shallow enough for serde_json) holds a class
/// qemu-ga uses and a text.
pub fn check_reply(line: &[u8]) -> Result<(), String> {
    let shown = || String::from_utf8_lossy(&line[..line.len().min(300)]).into_owned();
    let body = line.strip_prefix(&[0xFF]).unwrap_or(line);
    let body = body
        .strip_suffix(b"\n")
        .ok_or_else(|| format!("no newline: {}", shown()))?;
    std::str::from_utf8(body).map_err(|e| format!("{e}: {}", shown()))?;
    let keys = json::top_level_keys(body).map_err(|e| format!("{e}: {}", shown()))?;
    let has = |k: &str| keys.iter().any(|key| key == k);
    if has("return") == has("error") || keys.iter().any(|k| !["return", "error", "id"].contains(&k.as_str())) {
        return Err(format!("not a reply: {}", shown()));
    }
    if has("error")
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
    {
        let error = &value["error"];
        let class = error.get("class").and_then(|c| c.as_str());
        let desc = error.get("desc").and_then(|c| c.as_str());
        if !matches!(class, Some("GenericError" | "CommandNotFound"))
            || desc.is_none()
            || error.as_object().map(|o| o.len()) != Some(2)
        {
            return Err(format!("bad error: {}", shown()));
        }
    }
    Ok(())
}
