//! `exec`: guest-exec with captured output, then guest-exec-status polled
//! with a growing pause until the program has exited (or our --timeout).

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::session::{Session, SessionError};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{0}")]
    Session(#[from] SessionError),
    #[error("cannot read {path}: {source}")]
    Stdin { path: String, source: std::io::Error },
    #[error("guest-exec-status: {0}")]
    BadStatus(String),
    #[error("cannot write the program's output: {0}")]
    Output(std::io::Error),
}

/// How a guest program ended.
pub enum Outcome {
    Exited {
        code: i64,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        truncated: bool,
    },
    Killed {
        signal: i64,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        truncated: bool,
    },
    StillRunning {
        pid: i64,
    },
}

const FIRST_PAUSE: Duration = Duration::from_millis(1);
const LONGEST_PAUSE: Duration = Duration::from_millis(250);

/// Start `argv` in the guest and wait for it, at most until `deadline`.
pub fn run(
    session: &mut Session,
    argv: &[String],
    env: &[String],
    input: Option<&[u8]>,
    deadline: Option<Instant>,
) -> Result<Outcome, ExecError> {
    let mut arguments = json!({"path": argv[0], "capture-output": true});
    if argv.len() > 1 {
        arguments["arg"] = json!(argv[1..]);
    }
    if !env.is_empty() {
        arguments["env"] = json!(env);
    }
    if let Some(input) = input {
        arguments["input-data"] = json!(STANDARD.encode(input));
    }
    let started = session.call("guest-exec", Some(arguments))?.value;
    let pid = started
        .get("pid")
        .and_then(Value::as_i64)
        .ok_or_else(|| ExecError::BadStatus(format!("guest-exec returned no pid: {started}")))?;
    let mut pause = FIRST_PAUSE;
    loop {
        let status = session.call("guest-exec-status", Some(json!({"pid": pid})))?.value;
        if status.get("exited").and_then(Value::as_bool) == Some(true) {
            return outcome(&status);
        }
        if deadline.is_some_and(|d| Instant::now() + pause >= d) {
            if let Some(d) = deadline {
                std::thread::sleep(d.saturating_duration_since(Instant::now()));
            }
            let status = session.call("guest-exec-status", Some(json!({"pid": pid})))?.value;
            if status.get("exited").and_then(Value::as_bool) == Some(true) {
                return outcome(&status);
            }
            return Ok(Outcome::StillRunning { pid });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}

fn decoded(status: &Value, key: &str) -> Result<Vec<u8>, ExecError> {
    match status.get(key).and_then(Value::as_str) {
        Some(data) => STANDARD
            .decode(data)
            .map_err(|e| ExecError::BadStatus(format!("{key} is not base64: {e}"))),
        None => Ok(Vec::new()),
    }
}

fn outcome(status: &Value) -> Result<Outcome, ExecError> {
    let stdout = decoded(status, "out-data")?;
    let stderr = decoded(status, "err-data")?;
    let truncated = [status.get("out-truncated"), status.get("err-truncated")]
        .iter()
        .any(|t| t.and_then(|v| v.as_bool()) == Some(true));
    if let Some(signal) = status.get("signal").and_then(Value::as_i64) {
        return Ok(Outcome::Killed {
            signal,
            stdout,
            stderr,
            truncated,
        });
    }
    match status.get("exitcode").and_then(Value::as_i64) {
        Some(code) => Ok(Outcome::Exited {
            code,
            stdout,
            stderr,
            truncated,
        }),
        None => Err(ExecError::BadStatus(format!(
            "exited without a code or a signal: {status}"
        ))),
    }
}

/// The `exec` subcommand: our exit status.
pub fn command(
    session: &mut Session,
    argv: &[String],
    env: &[String],
    stdin: Option<&Path>,
    timeout: Option<f64>,
) -> Result<i32, ExecError> {
    let input = match stdin {
        None => None,
        Some(path) => {
            let mut data = Vec::new();
            let read = if path == Path::new("-") {
                std::io::stdin().read_to_end(&mut data)
            } else {
                std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut data))
            };
            read.map_err(|source| ExecError::Stdin {
                path: path.display().to_string(),
                source,
            })?;
            Some(data)
        }
    };
    let deadline = timeout.map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let outcome = run(session, argv, env, input.as_deref(), deadline)?;
    let (code, stdout, stderr, truncated) = match outcome {
        Outcome::Exited {
            code,
            stdout,
            stderr,
            truncated,
        } => (code.clamp(0, 255) as i32, stdout, stderr, truncated),
        Outcome::Killed {
            signal,
            stdout,
            stderr,
            truncated,
        } => ((128 + signal).clamp(0, 255) as i32, stdout, stderr, truncated),
        Outcome::StillRunning { pid } => {
            println!("{pid}");
            eprintln!(
                "qga-client: {} is still running in the guest as pid {pid}; stopped waiting",
                argv[0]
            );
            return Ok(124);
        }
    };
    std::io::stdout().write_all(&stdout).map_err(ExecError::Output)?;
    std::io::stdout().flush().map_err(ExecError::Output)?;
    std::io::stderr().write_all(&stderr).map_err(ExecError::Output)?;
    if truncated {
        eprintln!("qga-client: the agent truncated the program's output");
    }
    Ok(code)
}
