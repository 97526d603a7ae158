//! A session with a guest agent: resynchronise as libvirt does (0xFF, then
//! `guest-sync-delimited` with a random id; skip to the agent's 0xFF and to
//! the reply that carries our id), then one request, one reply.

use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::channel::{Channel, ChannelError, Endpoint};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "{endpoint}: no guest agent answered guest-sync-delimited within {wait:?} (is the agent running in the guest?)"
    )]
    NoAgent { endpoint: String, wait: Duration },
    #[error("{0}")]
    Channel(#[from] ChannelError),
    #[error("{command}: {source}")]
    During { command: String, source: ChannelError },
    #[error("{command}: the agent's reply is not JSON: {text}")]
    BadReply { command: String, text: String },
    #[error("{command}: {desc}")]
    Agent {
        command: String,
        class: String,
        desc: String,
    },
}

/// One reply: the line as the agent sent it, and the parsed `return`.
pub struct Reply {
    pub raw: String,
    pub value: Value,
}

pub struct Session {
    channel: Channel,
    endpoint: String,
    /// How long each reply may take.
    pub wait: Duration,
}

impl Session {
    pub fn connect(endpoint: &Endpoint, wait: Duration) -> Result<Session, SessionError> {
        let channel = Channel::open(endpoint)?;
        let mut session = Session {
            channel,
            endpoint: endpoint.to_string(),
            wait,
        };
        session.sync()?;
        Ok(session)
    }

    /// Resynchronise: whatever the agent's parser or the channel held
    /// (a previous client's half request, stale replies) is skipped.
    pub fn sync(&mut self) -> Result<(), SessionError> {
        let id = random_id();
        let deadline = Instant::now() + self.wait;
        let no_agent = |e: ChannelError| match e {
            ChannelError::Timeout(_) | ChannelError::WriteTimeout(_) => SessionError::NoAgent {
                endpoint: self.endpoint.clone(),
                wait: self.wait,
            },
            other => SessionError::Channel(other),
        };
        let mut request = vec![0xFF];
        request.extend_from_slice(
            format!("{{\"execute\": \"guest-sync-delimited\", \"arguments\": {{\"id\": {id}}}}}\n").as_bytes(),
        );
        self.channel.send(&request, deadline, self.wait).map_err(no_agent)?;
        loop {
            self.channel.skip_to_delimiter(deadline, self.wait).map_err(no_agent)?;
            let line = self.channel.read_line(deadline, self.wait).map_err(no_agent)?;
            let reply: Option<Value> = serde_json::from_slice(&line).ok();
            if reply.as_ref().and_then(|r| r.get("return")).and_then(Value::as_u64) == Some(id) {
                return Ok(());
            }
        }
    }

    /// Send `command` with `arguments`; its reply, or the agent's error.
    pub fn call(&mut self, command: &str, arguments: Option<Value>) -> Result<Reply, SessionError> {
        let request = match arguments {
            Some(arguments) => json!({"execute": command, "arguments": arguments}),
            None => json!({"execute": command}),
        };
        let raw = self.call_raw(command, &request.to_string())?;
        let parsed: Value = serde_json::from_str(&raw).map_err(|_| SessionError::BadReply {
            command: command.to_owned(),
            text: raw.clone(),
        })?;
        if let Some(error) = parsed.get("error") {
            return Err(SessionError::Agent {
                command: command.to_owned(),
                class: error.get("class").and_then(Value::as_str).unwrap_or("").to_owned(),
                desc: error.get("desc").and_then(Value::as_str).unwrap_or("").to_owned(),
            });
        }
        match parsed.get("return") {
            Some(value) => Ok(Reply {
                value: value.clone(),
                raw,
            }),
            None => Err(SessionError::BadReply {
                command: command.to_owned(),
                text: raw,
            }),
        }
    }

    /// Send one request line as given; the next reply line as it came.
    pub fn call_raw(&mut self, command: &str, request: &str) -> Result<String, SessionError> {
        let during = |source| SessionError::During {
            command: command.to_owned(),
            source,
        };
        let deadline = Instant::now() + self.wait;
        let mut line = request.trim_end_matches('\n').as_bytes().to_vec();
        line.push(b'\n');
        self.channel.send(&line, deadline, self.wait).map_err(during)?;
        loop {
            let reply = self.channel.read_line(deadline, self.wait).map_err(during)?;
            // A stray delimiter (from a resync) precedes its line.
            let text = String::from_utf8_lossy(&reply);
            let text = text.trim_start_matches(|c: char| c == '\u{FFFD}' || c.is_whitespace());
            if !text.is_empty() {
                return Ok(text.to_owned());
            }
        }
    }

    /// Send `command` whose success has no reply (guest-shutdown), followed
    /// by a resync: an error reply arrives first when the agent refused it.
    /// No answer at all within the wait means the guest went down: success.
    pub fn call_no_reply(&mut self, command: &str, arguments: Value) -> Result<(), SessionError> {
        let request = json!({"execute": command, "arguments": arguments}).to_string() + "\n";
        let deadline = Instant::now() + self.wait;
        let during = |source| SessionError::During {
            command: command.to_owned(),
            source,
        };
        self.channel
            .send(request.as_bytes(), deadline, self.wait)
            .map_err(during)?;
        let id = random_id();
        let sync = format!("{{\"execute\": \"guest-sync\", \"arguments\": {{\"id\": {id}}}}}\n");
        match self.channel.send(sync.as_bytes(), deadline, self.wait) {
            Ok(()) => {}
            Err(ChannelError::Closed | ChannelError::WriteTimeout(_)) => return Ok(()),
            Err(e) => return Err(during(e)),
        }
        loop {
            let line = match self.channel.read_line(deadline, self.wait) {
                Ok(line) => line,
                Err(ChannelError::Closed | ChannelError::Timeout(_)) => return Ok(()),
                Err(e) => return Err(during(e)),
            };
            let Ok(reply) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if let Some(error) = reply.get("error") {
                return Err(SessionError::Agent {
                    command: command.to_owned(),
                    class: error.get("class").and_then(Value::as_str).unwrap_or("").to_owned(),
                    desc: error.get("desc").and_then(Value::as_str).unwrap_or("").to_owned(),
                });
            }
            if reply.get("return").and_then(Value::as_u64) == Some(id) {
                return Ok(());
            }
        }
    }

    /// Whether the agent lists `command` as enabled in guest-info.
    pub fn enabled(&mut self, commands: &[&str]) -> Result<bool, SessionError> {
        let info = self.call("guest-info", None)?.value;
        let listed = info
            .get("supported_commands")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Ok(commands.iter().all(|name| {
            listed.iter().any(|c| {
                c.get("name").and_then(Value::as_str) == Some(name)
                    && c.get("enabled").and_then(Value::as_bool) == Some(true)
            })
        }))
    }
}

/// A random id below 2^53 (exact in any JSON reader), from the kernel.
fn random_id() -> u64 {
    let mut bytes = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    let seed = match read {
        Ok(()) => u64::from_ne_bytes(bytes),
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            now.as_nanos() as u64 ^ u64::from(std::process::id())
        }
    };
    seed & ((1 << 53) - 1)
}
