//! The wire protocol: bytes to requests, replies to bytes. It knows the QMP
//! envelope (`execute`, `arguments`, `id`) and nothing about commands.

mod lexer;
#[cfg(test)]
mod linearity;
mod parser;
mod stream;

pub use stream::{Parsed, StreamParser};

use crate::qobject::{Dict, Value};

/// qemu-ga's sync byte: prefixes a `guest-sync-delimited` reply, and resets
/// the parser when a client sends it.
pub const SENTINEL: u8 = 0xFF;

/// The only two error classes qemu-ga ever answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    GenericError,
    CommandNotFound,
}

impl ErrorClass {
    fn as_str(self) -> &'static str {
        match self {
            ErrorClass::GenericError => "GenericError",
            ErrorClass::CommandNotFound => "CommandNotFound",
        }
    }
}

/// An error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QmpError {
    pub class: ErrorClass,
    pub desc: String,
}

impl QmpError {
    pub fn generic(desc: impl Into<String>) -> Self {
        QmpError {
            class: ErrorClass::GenericError,
            desc: desc.into(),
        }
    }

    pub fn not_found(desc: impl Into<String>) -> Self {
        QmpError {
            class: ErrorClass::CommandNotFound,
            desc: desc.into(),
        }
    }
}

impl std::fmt::Display for QmpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.desc)
    }
}

impl std::error::Error for QmpError {}

/// A request that passed the envelope checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub command: String,
    pub arguments: Option<Dict>,
    pub id: Option<Value>,
}

/// QEMU's `qmp_dispatch_check_obj`: validate the envelope of one parsed
/// value. On error, the id (if the value was an object with one) comes back
/// with it so the error reply can echo it.
pub fn check_request(value: Value) -> Result<Request, (QmpError, Option<Value>)> {
    let Value::Dict(mut dict) = value else {
        return Err((QmpError::generic("QMP input must be a JSON object"), None));
    };
    let id = dict.get("id").cloned();
    let mut has_execute = false;
    for (key, member) in dict.iter_qdict_order() {
        let problem = match key {
            "execute" if member.as_str().is_none() => Some("QMP input member 'execute' must be a string".to_owned()),
            "execute" => {
                has_execute = true;
                None
            }
            "arguments" if member.as_dict().is_none() => {
                Some("QMP input member 'arguments' must be an object".to_owned())
            }
            "arguments" | "id" => None,
            other => Some(format!("QMP input member '{other}' is unexpected")),
        };
        if let Some(desc) = problem {
            return Err((QmpError::generic(desc), id));
        }
    }
    if !has_execute {
        return Err((QmpError::generic("QMP input lacks member 'execute'"), id));
    }
    let Some(Value::Str(command)) = dict.remove("execute") else {
        unreachable!("checked above")
    };
    let arguments = match dict.remove("arguments") {
        Some(Value::Dict(args)) => Some(args),
        _ => None,
    };
    Ok(Request { command, arguments, id })
}

/// One reply line: `{"return": ...}` or `{"error": ...}`, the id echoed as
/// given, the 0xFF prefix when delimited, the final newline. The result is
/// taken by value and written once into a buffer of its exact size (a
/// 48 MiB read's reply is 64 MiB: no clone, no regrowth, no second copy).
pub fn encode_reply(result: Result<Value, QmpError>, id: Option<&Value>, delimited: bool) -> Vec<u8> {
    let mut reply = Dict::new();
    match result {
        Ok(value) => reply.insert("return", value),
        Err(err) => {
            let body = Dict::new()
                .with("class", err.class.as_str())
                .with("desc", err.desc.as_str());
            reply.insert("error", Value::Dict(body));
        }
    }
    if let Some(id) = id {
        reply.insert("id", id.clone());
    }
    let reply = Value::Dict(reply);
    let mut line = String::with_capacity(reply.json_len() + 1);
    reply.write_json(&mut line);
    line.push('\n');
    if !delimited {
        return line.into_bytes();
    }
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.push(SENTINEL);
    bytes.extend_from_slice(line.as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> Result<Request, (QmpError, Option<Value>)> {
        let mut parser = StreamParser::new();
        let mut out = Vec::new();
        parser.feed(json.as_bytes(), &mut out);
        check_request(out.remove(0).unwrap())
    }

    #[test]
    fn envelope_errors_have_qemu_texts() {
        let desc = |json: &str| check(json).unwrap_err().0.desc;
        assert_eq!(desc("[1]"), "QMP input must be a JSON object");
        assert_eq!(desc("{}"), "QMP input lacks member 'execute'");
        assert_eq!(desc(r#"{"execute": 1}"#), "QMP input member 'execute' must be a string");
        assert_eq!(
            desc(r#"{"execute": "x", "arguments": []}"#),
            "QMP input member 'arguments' must be an object"
        );
        assert_eq!(
            desc(r#"{"execute": "x", "bar": 1}"#),
            "QMP input member 'bar' is unexpected"
        );
    }

    #[test]
    fn envelope_error_keeps_the_id() {
        let (_, id) = check(r#"{"id": "a", "arguments": 1}"#).unwrap_err();
        assert_eq!(id, Some(Value::Str("a".into())));
    }

    #[test]
    fn replies_are_one_qemu_line() {
        let ok = encode_reply(Ok(Value::Dict(Dict::new())), Some(&Value::Int(1)), false);
        assert_eq!(ok, b"{\"return\": {}, \"id\": 1}\n");
        let err = encode_reply(
            Err(QmpError::not_found("The command x has not been found")),
            Some(&Value::Int(1)),
            false,
        );
        assert_eq!(err, b"{\"id\": 1, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command x has not been found\"}}\n");
        let delimited = encode_reply(Ok(Value::Int(5)), None, true);
        assert_eq!(delimited, b"\xff{\"return\": 5}\n");
    }
}
