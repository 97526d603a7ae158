//! Inputs for the fuzzer: the requests of the wire fixtures, mutated with
//! knowledge of JSON (values replaced, members dropped, doubled, renamed,
//! nested, other commands' names) and without (bytes flipped, inserted,
//! deleted, repeated, spliced), plus the shapes that once hung the agent.

use serde_json::{Map, Value};

/// A seeded xorshift: the same seed gives the same run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Every request the fixtures send (`> TEXT` and `>x HEX` lines).
pub fn corpus(fixtures: &std::path::Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut dirs = vec![fixtures.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                for line in std::fs::read_to_string(&path).unwrap().lines() {
                    if let Some(text) = line.strip_prefix("> ") {
                        out.push(format!("{text}\n").into_bytes());
                    } else if let Some(hex) = line.strip_prefix(">x ") {
                        let digits: String = hex.chars().filter(|c| !c.is_whitespace()).collect();
                        out.push(
                            (0..digits.len() / 2)
                                .filter_map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).ok())
                                .collect(),
                        );
                    }
                }
            }
        }
    }
    assert!(out.len() > 100, "fixtures hold the corpus: {}", out.len());
    out
}

/// Command names the corpus uses, to swap between requests.
pub fn command_names(corpus: &[Vec<u8>]) -> Vec<String> {
    let mut names: Vec<String> = corpus
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(r).ok())
        .filter_map(|v| v.get("execute").and_then(Value::as_str).map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `n` members `"k<i>": <i>` (the shape that was quadratic).
pub fn members(n: usize) -> String {
    let mut out = String::with_capacity(n * 12);
    for i in 0..n {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!("\"k{i}\": {i}"));
    }
    out
}

/// Expand a regression template: `{{members:N}}` becomes N members.
pub fn expand(template: &str) -> Vec<u8> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{members:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 10..];
        let end = after.find("}}").expect("closed template");
        out.push_str(&members(after[..end].parse().expect("a count")));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out.into_bytes()
}

fn random_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 3 { 9 } else { 12 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => Value::from(rng.next() as i64),
        3 => Value::from(rng.next()),
        4 => Value::from(*rng.pick(&[0i64, -1, 1, 255, 256, 65536, i64::MIN, i64::MAX])),
        5 => Value::from(*rng.pick(&[0.5f64, -0.0, 1e300, 1e-300, 3.0])),
        6 => Value::from(*rng.pick(&[
            "",
            "/",
            "/etc/passwd",
            "r",
            "w+",
            "set",
            "bogus",
            "\u{0}",
            "é",
            "\u{FFFF}",
            "../..",
            "a\nb",
        ])),
        7 => Value::from("A".repeat(rng.below(70_000))),
        8 => Value::from(format!("{:x}", rng.next())),
        9 => Value::Array((0..rng.below(5)).map(|_| random_value(rng, depth + 1)).collect()),
        _ => Value::Object(
            (0..rng.below(5))
                .map(|_| (format!("k{}", rng.below(8)), random_value(rng, depth + 1)))
                .collect(),
        ),
    }
}

/// Change one node of `v`.
fn mutate_value(rng: &mut Rng, v: &mut Value, names: &[String], depth: usize) {
    match v {
        Value::Object(map) if !map.is_empty() && rng.below(4) != 0 => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = rng.pick(&keys).clone();
            match rng.below(6) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    let value = map.remove(&key).unwrap();
                    map.insert(format!("{key}{}", rng.pick(&["", "x", "_", "-", "\u{e9}"])), value);
                }
                2 if key == "execute" => {
                    map.insert(key, Value::from(rng.pick(names).as_str()));
                }
                3 => {
                    map.insert(
                        rng.pick(&["arguments", "id", "execute", "path", "handle", "x"])
                            .to_string(),
                        random_value(rng, depth),
                    );
                }
                _ => mutate_value(rng, map.get_mut(&key).unwrap(), names, depth + 1),
            }
        }
        Value::Array(items) if !items.is_empty() && rng.below(4) != 0 => {
            let i = rng.below(items.len());
            match rng.below(3) {
                0 => {
                    items.remove(i);
                }
                1 => {
                    let copy = items[i].clone();
                    items.push(copy);
                }
                _ => mutate_value(rng, &mut items[i], names, depth + 1),
            }
        }
        _ => {
            *v = match rng.below(3) {
                0 => Value::Array(vec![v.clone()]),
                1 => {
                    let mut m = Map::new();
                    m.insert("x".into(), v.clone());
                    Value::Object(m)
                }
                _ => random_value(rng, depth),
            }
        }
    }
}

/// Byte-level damage.
fn mutate_bytes(rng: &mut Rng, mut bytes: Vec<u8>, corpus: &[Vec<u8>]) -> Vec<u8> {
    const SPECIAL: &[u8] = b"{}[]:,\"'\\ \n\t0-.eE+tfnu\xff\xfe\x00\x01\x7f\xc0\x80\xe2\xed\xf4";
    for _ in 0..1 + rng.below(4) {
        let len = bytes.len();
        let at = rng.below(len + 1);
        match rng.below(7) {
            0 if len > 0 => bytes[at.min(len - 1)] ^= 1 << rng.below(8),
            1 => bytes.insert(at, *rng.pick(SPECIAL)),
            2 => bytes.insert(at, rng.next() as u8),
            3 if len > 0 => {
                let end = (at + 1 + rng.below(16)).min(len);
                bytes.drain(at.min(len - 1)..end);
            }
            4 if at < len => {
                let end = (at + 1 + rng.below(32)).min(len);
                let piece = bytes[at..end].to_vec();
                for _ in 0..1 + rng.below(50) {
                    bytes.splice(at..at, piece.iter().copied());
                }
            }
            5 => {
                let other = rng.pick(corpus);
                let from = rng.below(other.len());
                let piece = other[from..(from + rng.below(40)).min(other.len())].to_vec();
                bytes.splice(at..at, piece);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// One fuzzed input.
pub fn input(rng: &mut Rng, corpus: &[Vec<u8>], names: &[String]) -> Vec<u8> {
    let base = rng.pick(corpus).clone();
    match rng.below(20) {
        0 => {
            // A big shape: members, nesting, escapes, as one value of a request.
            let inner = match rng.below(4) {
                0 => format!("{{{}}}", members(1 + rng.below(30_000))),
                1 => {
                    let depth = 1000 + rng.below(40);
                    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
                }
                2 => format!(
                    "\"{}\"",
                    rng.pick(&["\\n", "\\u0041", "\\ud83d\\ude00", "\\\\"])
                        .repeat(rng.below(200_000))
                ),
                _ => format!("[{}]", vec!["0"; 1 + rng.below(100_000)].join(",")),
            };
            let at = rng.pick(&[
                r#"{"execute": %}"#,
                r#"{"execute": "guest-file-open", "arguments": {"path": %}}"#,
                r#"{"execute": "guest-ping", "bogus": %}"#,
                r#"{"execute": "guest-sync", "arguments": {"id": %}}"#,
                r#"{"execute": "guest-ping", "id": %}"#,
            ]);
            format!("{}\n", at.replace('%', &inner)).into_bytes()
        }
        1..=9 => match serde_json::from_slice::<Value>(&base) {
            Ok(mut v) => {
                for _ in 0..1 + rng.below(3) {
                    mutate_value(rng, &mut v, names, 0);
                }
                let mut text = serde_json::to_vec(&v).unwrap();
                text.push(b'\n');
                text
            }
            Err(_) => mutate_bytes(rng, base, corpus),
        },
        10..=17 => mutate_bytes(rng, base, corpus),
        _ => base,
    }
}
