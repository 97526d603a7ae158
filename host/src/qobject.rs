//! QEMU's QObject model: the values a request carries and a reply is made of,
//! with the two properties of QEMU's implementation that are visible on the
//! wire: the order in which a `QDict` iterates its keys (hash buckets, not
//! insertion), and the exact text of its compact JSON writer.

use std::fmt::Write as _;

mod dict;
mod json_text;

pub use dict::Dict;
pub use json_text::{format_g17, lossy_string, mod_utf8_codepoint};
use json_text::{quoted_len, write_quoted};

/// A JSON value as QEMU holds it. Integers keep QEMU's three number kinds:
/// a literal that fits `i64` is `Int`, one that fits only `u64` is `Uint`,
/// anything else is `Double`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    Str(String),
    List(Vec<Value>),
    Dict(Dict),
}

impl Value {
    /// Serialize exactly as qemu-ga does (`qobject_to_json`): `", "` between
    /// members, `": "` after keys, keys in QDict order, non-ASCII escaped.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    pub fn write_json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Uint(u) => {
                let _ = write!(out, "{u}");
            }
            Value::Double(d) => out.push_str(&format_g17(*d)),
            Value::Str(s) => write_quoted(out, s),
            Value::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_json(out);
                }
                out.push(']');
            }
            Value::Dict(dict) => {
                out.push('{');
                for (i, (key, value)) in dict.iter_qdict_order().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_quoted(out, key);
                    out.push_str(": ");
                    value.write_json(out);
                }
                out.push('}');
            }
        }
    }

    /// The length of [`Value::to_json`]'s text, without building it (reply
    /// size limits on multi-MiB replies).
    pub fn json_len(&self) -> usize {
        match self {
            Value::Null => 4,
            Value::Bool(b) => {
                if *b {
                    4
                } else {
                    5
                }
            }
            Value::Int(_) | Value::Uint(_) | Value::Double(_) => self.to_json().len(),
            Value::Str(s) => quoted_len(s),
            Value::List(items) => {
                2 + items.iter().map(Value::json_len).sum::<usize>() + 2 * items.len().saturating_sub(1)
            }
            Value::Dict(dict) => {
                2 + dict
                    .iter()
                    .map(|(k, v)| quoted_len(k) + 2 + v.json_len())
                    .sum::<usize>()
                    + 2 * dict.len().saturating_sub(1)
            }
        }
    }

    /// QEMU's name for this value's type, as used in "expected: ..." texts.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) | Value::Uint(_) | Value::Double(_) => "number",
            Value::Str(_) => "string",
            Value::List(_) => "array",
            Value::Dict(_) => "object",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// `qnum_get_try_int`: an `Int`, or a `Uint` that fits `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Uint(u) => i64::try_from(*u).ok(),
            _ => None,
        }
    }

    /// `qnum_get_try_uint`: a `Uint`, or a non-negative `Int`.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Uint(u) => Some(*u),
            Value::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    }

    /// `qnum_get_double`: any number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Uint(u) => Some(*u as f64),
            Value::Double(d) => Some(*d),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<Dict> for Value {
    fn from(d: Dict) -> Self {
        Value::Dict(d)
    }
}

/// Counting the steps that grow with input (key comparisons and hashes, hash
/// table probes), so tests can show the work is linear without timing it.
/// Free outside tests.
pub(crate) mod work {
    #[cfg(test)]
    thread_local! {
        static STEPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    #[inline(always)]
    pub(crate) fn count(_steps: u64) {
        #[cfg(test)]
        STEPS.with(|s| s.set(s.get() + _steps));
    }

    /// The steps counted on this thread so far.
    #[cfg(test)]
    pub(crate) fn steps() -> u64 {
        STEPS.with(|s| s.get())
    }
}
