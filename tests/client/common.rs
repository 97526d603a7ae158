//! Helpers of the qga-client tests (tests/client.rs, tests/client_cp.rs):
//! run the client against an agent's socket, both agents, files and hashes.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha256};

use crate::support::Agent;

pub fn client_binary() -> &'static str {
    env!("CARGO_BIN_EXE_qga-client")
}

/// Run qga-client against `socket` with `args`.
pub fn client(socket: &Path, args: &[&str]) -> Output {
    client_with_stdin(socket, args, &[])
}

pub fn client_with_stdin(socket: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(client_binary())
        .arg("-s")
        .arg(socket)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Its stdout, asserting it succeeded.
pub fn ok(socket: &Path, args: &[&str]) -> String {
    let out = client(socket, args);
    assert!(
        out.status.success(),
        "qga-client {args:?}: {:?} {}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

/// qga and qemu-ga, each started with `args`.
pub fn both_agents(args: &[&str]) -> [Agent; 2] {
    [Agent::qga(args), Agent::qemu_ga(args)]
}

pub fn sha256_file(path: &Path) -> String {
    let mut hasher = Sha256::new();
    let mut file = std::fs::File::open(path).unwrap();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A file of `size` pseudo-random bytes (a different stream per size).
pub fn random_file(path: &Path, size: usize) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ size as u64;
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(size);
    std::fs::write(path, data).unwrap();
}

pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
