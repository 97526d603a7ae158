//! QEMU's QObject model: the values a request carries and a reply is made of,
//! with the two properties of QEMU's implementation that are visible on the
//! wire: the order in which a `QDict` iterates its keys (hash buckets, not
//! insertion), and the exact text of its compact JSON writer.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

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

/// A JSON object with QDict semantics: one value per key, entries kept in
/// insertion order, iterated on the wire in QDict bucket order.
///
/// Every operation costs O(1) whatever the number of members (a hostile
/// peer sends a million): the slots keep insertion order, a removed member
/// leaves a hole that is swept once holes outnumber members, and past a few
/// members a hash index (SipHash with a random key, so no chosen collisions)
/// finds a key's slot.
#[derive(Debug, Clone, Default)]
pub struct Dict {
    slots: Vec<Option<(Key, Value)>>,
    live: usize,
    /// Key to slot; none while `slots` is short enough to scan (boxed, so
    /// that a small dict, and every `Value`, stays small).
    #[allow(clippy::box_collection, reason = "keeps every Value small; most dicts have no index")]
    index: Option<Box<HashMap<Key, usize>>>,
}

/// Up to this many slots a lookup scans them (cheaper than hashing).
const SCAN_SLOTS: usize = 8;

/// A member name, shared between its slot and the index.
#[derive(Debug, Clone, Eq)]
struct Key(Arc<str>);

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        work::count(1);
        self.0 == other.0
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        work::count(1);
        self.0.hash(state)
    }
}

impl std::borrow::Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// Members compare in insertion order, as two QDicts built alike would.
impl PartialEq for Dict {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// QEMU's `QDICT_BUCKET_MAX`.
const QDICT_BUCKETS: u32 = 512;

/// QEMU's `tdb_hash`, reduced to a bucket index.
fn qdict_bucket(key: &str) -> u32 {
    let bytes = key.as_bytes();
    let mut value = 0x238F_13AFu32.wrapping_mul(bytes.len() as u32);
    for (i, &b) in bytes.iter().enumerate() {
        value = value.wrapping_add(u32::from(b) << ((i * 5) % 24));
    }
    1_103_515_243u32.wrapping_mul(value).wrapping_add(12345) % QDICT_BUCKETS
}

impl Dict {
    pub fn new() -> Self {
        Self::default()
    }

    /// The slot holding `key`.
    fn position(&self, key: &str) -> Option<usize> {
        if self.slots.len() <= SCAN_SLOTS {
            return self.slots.iter().position(|slot| {
                slot.as_ref().is_some_and(|(k, _)| {
                    work::count(1);
                    &*k.0 == key
                })
            });
        }
        self.index.as_ref().and_then(|index| index.get(key).copied())
    }

    /// Insert or replace (in place, like `qdict_put_obj`).
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key: String = key.into();
        if let Some(pos) = self.position(&key) {
            if let Some((_, slot)) = &mut self.slots[pos] {
                *slot = value;
            }
            return;
        }
        let key = Key(Arc::from(key));
        self.slots.push(Some((key.clone(), value)));
        self.live += 1;
        if self.slots.len() > SCAN_SLOTS {
            let slot = self.slots.len() - 1;
            match &mut self.index {
                Some(index) => {
                    index.insert(key, slot);
                }
                None => self.reindex(),
            }
        }
    }

    /// Builder form of [`Dict::insert`].
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(key, value.into());
        self
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        let pos = self.position(key)?;
        self.slots[pos].as_ref().map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let pos = self.position(key)?;
        let (_, value) = self.slots[pos].take()?;
        self.live -= 1;
        if let Some(index) = &mut self.index {
            index.remove(key);
        }
        if self.slots.len() > SCAN_SLOTS && self.slots.len() > 2 * self.live {
            self.slots.retain(Option::is_some);
            self.reindex();
        }
        Some(value)
    }

    /// Rebuild the index from the slots (after a sweep, or when the slots
    /// outgrow a scan).
    fn reindex(&mut self) {
        if self.slots.len() <= SCAN_SLOTS {
            self.index = None;
            return;
        }
        let mut index = HashMap::with_capacity(self.live);
        for (pos, slot) in self.slots.iter().enumerate() {
            if let Some((k, _)) = slot {
                index.insert(k.clone(), pos);
            }
        }
        self.index = Some(Box::new(index));
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.slots.iter().flatten().map(|(k, v)| (&*k.0, v))
    }

    /// Entries in the order QEMU's QDict iterates them: ascending hash
    /// bucket, and within a bucket the most recently inserted first. A
    /// counting sort over the 512 buckets: linear in the member count.
    pub fn iter_qdict_order(&self) -> impl Iterator<Item = (&str, &Value)> {
        let entries: Vec<(&str, &Value)> = self.iter().collect();
        let buckets: Vec<u32> = entries.iter().map(|(k, _)| qdict_bucket(k)).collect();
        let mut start = vec![0usize; QDICT_BUCKETS as usize + 1];
        for &b in &buckets {
            start[b as usize + 1] += 1;
        }
        for b in 1..start.len() {
            start[b] += start[b - 1];
        }
        let mut order = vec![0usize; entries.len()];
        for (i, &b) in buckets.iter().enumerate().rev() {
            order[start[b as usize]] = i;
            start[b as usize] += 1;
        }
        order.into_iter().map(move |i| entries[i])
    }
}

impl FromIterator<(String, Value)> for Dict {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        let mut dict = Dict::new();
        for (k, v) in iter {
            dict.insert(k, v);
        }
        dict
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

/// QEMU's `is_valid_codepoint`: Unicode scalar values that are not
/// noncharacters.
fn is_valid_codepoint(cp: u32) -> bool {
    cp <= 0x10FFFF && !(0xFDD0..=0xFDEF).contains(&cp) && (cp & 0xFFFE) != 0xFFFE && !(0xD800..=0xDFFF).contains(&cp)
}

/// QEMU's `mod_utf8_codepoint`: decode one code point of modified UTF-8 from
/// the front of `bytes`. Returns the code point (None if invalid) and the
/// number of bytes consumed (at least 1).
pub fn mod_utf8_codepoint(bytes: &[u8]) -> (Option<u32>, usize) {
    const MIN_CP: [u32; 5] = [0x80, 0x800, 0x10000, 0x200000, 0x4000000];
    let first = bytes[0];
    if first < 0x80 {
        return (Some(u32::from(first)), 1);
    }
    if first >= 0xFE || first & 0x40 == 0 {
        return (None, 1);
    }
    let len = first.leading_ones() as usize;
    let mut cp = u32::from(first) & ((0x80u32 >> len) - 1);
    let mut used = 1;
    for i in 1..len {
        let b = bytes.get(i).copied().unwrap_or(0);
        if b & 0xC0 != 0x80 {
            return (None, used);
        }
        used += 1;
        cp = (cp << 6) | u32::from(b & 0x3F);
    }
    if !is_valid_codepoint(cp) || (cp < MIN_CP[len - 2] && !(cp == 0 && len == 2)) {
        return (None, used);
    }
    (Some(cp), used)
}

/// Decode bytes the way QEMU's writer would render them: each invalid
/// sequence becomes U+FFFD, `C0 80` becomes U+0000.
pub fn lossy_string(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        let (cp, used) = mod_utf8_codepoint(rest);
        out.push(cp.and_then(char::from_u32).unwrap_or('\u{FFFD}'));
        rest = &rest[used..];
    }
    out
}

/// Bytes that go out as they are: printable ASCII but `"` and `\\`.
fn is_plain(b: u8) -> bool {
    (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'
}

/// Whether any byte of `chunk` needs escaping; no early exit, so it
/// compiles to vector code (a base64 reply is tens of MiB of plain bytes).
fn any_special(chunk: &[u8]) -> bool {
    chunk.iter().fold(false, |acc, &b| acc | !is_plain(b))
}

/// The length of the longest prefix of `bytes` that needs no escaping.
fn plain_prefix(bytes: &[u8]) -> usize {
    const CHUNK: usize = 64;
    let mut done = 0;
    for chunk in bytes.chunks(CHUNK) {
        if any_special(chunk) {
            return done + chunk.iter().position(|&b| !is_plain(b)).unwrap_or(chunk.len());
        }
        done += chunk.len();
    }
    done
}

/// The length of `write_quoted`'s output for `s`.
fn quoted_len(s: &str) -> usize {
    if !any_special(s.as_bytes()) {
        return s.len() + 2;
    }
    let mut len = 2;
    for ch in s.chars() {
        len += match ch {
            '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
            ' '..='\u{7e}' => 1,
            _ if is_valid_codepoint(ch as u32) && (ch as u32) > 0xFFFF => 12,
            _ => 6,
        };
    }
    len
}

/// QEMU's `quoted_str`.
fn write_quoted(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut rest = s;
    loop {
        // The longest run that needs no escaping goes out in one copy (the
        // bulk of a base64 reply); it ends on a char boundary.
        let plain = plain_prefix(rest.as_bytes());
        out.push_str(&rest[..plain]);
        rest = &rest[plain..];
        let Some(ch) = rest.chars().next() else {
            break;
        };
        rest = &rest[ch.len_utf8()..];
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='\u{7e}' => out.push(ch),
            _ => {
                let cp = if is_valid_codepoint(ch as u32) {
                    ch as u32
                } else {
                    0xFFFD
                };
                if cp > 0xFFFF {
                    let v = cp - 0x10000;
                    let _ = write!(out, "\\u{:04X}\\u{:04X}", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
                } else {
                    let _ = write!(out, "\\u{cp:04X}");
                }
            }
        }
    }
    out.push('"');
}

/// C's `printf("%.17g", d)`, the text QEMU writes for a double.
pub fn format_g17(d: f64) -> String {
    const P: i32 = 17;
    if d.is_nan() {
        return if d.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if d.is_infinite() {
        return if d < 0.0 { "-inf" } else { "inf" }.into();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{:.*e}", (P - 1) as usize, d);
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("exponent");
    if !(-4..P).contains(&exp) {
        let mantissa = strip_fraction_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        let fixed = format!("{:.*}", (P - 1 - exp) as usize, d);
        strip_fraction_zeros(&fixed).to_owned()
    }
}

fn strip_fraction_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_like_printf_17g() {
        assert_eq!(format_g17(0.1), "0.10000000000000001");
        assert_eq!(format_g17(1.5), "1.5");
        assert_eq!(format_g17(1e10), "10000000000");
        assert_eq!(format_g17(1e17), "1e+17");
        assert_eq!(format_g17(1.8446744073709552e19), "1.8446744073709552e+19");
        assert_eq!(format_g17(-0.0), "-0");
        assert_eq!(format_g17(0.0001), "0.0001");
        assert_eq!(format_g17(0.00001), "1.0000000000000001e-05");
        assert_eq!(format_g17(123.456), "123.456");
        assert_eq!(format_g17(5e-324), "4.9406564584124654e-324");
    }

    #[test]
    fn dict_iterates_in_qdict_bucket_order() {
        let reply = Dict::new().with("return", Dict::new()).with("id", 1i64);
        assert_eq!(Value::Dict(reply).to_json(), r#"{"return": {}, "id": 1}"#);
        let err = Dict::new().with("error", "x").with("id", 1i64);
        assert_eq!(Value::Dict(err).to_json(), r#"{"id": 1, "error": "x"}"#);
        let cmd = Dict::new()
            .with("name", "guest-ping")
            .with("enabled", true)
            .with("success-response", true);
        assert_eq!(
            Value::Dict(cmd).to_json(),
            r#"{"enabled": true, "name": "guest-ping", "success-response": true}"#
        );
    }

    /// The dict behaves as the plain list of members it replaced (insert
    /// replaces in place, remove then insert appends), across the switch
    /// from scanning to the index and the sweeps of removed slots.
    #[test]
    fn dict_matches_a_list_of_members() {
        let mut seed = 0x5EED_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..200 {
            let keys = 1 + round % 40;
            let mut dict = Dict::new();
            let mut model: Vec<(String, Value)> = Vec::new();
            for step in 0..300 {
                let key = format!("k{}", next() % keys as u64);
                if next() % 3 == 0 {
                    let want = model.iter().position(|(k, _)| *k == key).map(|i| model.remove(i).1);
                    assert_eq!(dict.remove(&key), want);
                } else {
                    let value = Value::Int(step);
                    match model.iter_mut().find(|(k, _)| *k == key) {
                        Some(slot) => slot.1 = value.clone(),
                        None => model.push((key.clone(), value.clone())),
                    }
                    dict.insert(key.clone(), value);
                }
                assert_eq!(dict.len(), model.len());
                assert!(
                    dict.iter()
                        .map(|(k, v)| (k.to_owned(), v.clone()))
                        .eq(model.iter().cloned())
                );
                assert_eq!(dict.get(&key), model.iter().find(|(k, _)| *k == key).map(|(_, v)| v));
            }
            let mut order: Vec<(u32, usize)> = model
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (qdict_bucket(k), i))
                .collect();
            order.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            let want: Vec<&str> = order.iter().map(|&(_, i)| model[i].0.as_str()).collect();
            let got: Vec<&str> = dict.iter_qdict_order().map(|(k, _)| k).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn strings_escape_like_qemu() {
        let v = Value::Str("a\"\\\u{8}\u{c}\n\r\t\u{1}\u{7f}é😀\u{FFFE}\0/".into());
        assert_eq!(
            v.to_json(),
            r#""a\"\\\b\f\n\r\t\u0001\u007F\u00E9\uD83D\uDE00\uFFFD\u0000/""#
        );
    }

    #[test]
    fn lossy_decoding_follows_mod_utf8() {
        assert_eq!(lossy_string(b"\xff"), "\u{FFFD}");
        assert_eq!(lossy_string(b"a\xc0\x80b"), "a\0b");
        assert_eq!(lossy_string(b"\xe2\x82"), "\u{FFFD}");
        assert_eq!(lossy_string(b"\xe2\x82x"), "\u{FFFD}x");
        assert_eq!(lossy_string(b"\xc3\xa9"), "é");
    }

    #[test]
    fn json_len_is_the_serialized_length() {
        let mut d = Dict::new();
        d.insert("count", Value::Int(-42));
        d.insert("buf-b64", Value::Str("aGVsbG8=".repeat(1000)));
        d.insert("eof", Value::Bool(false));
        d.insert("é\"\\\n\u{1}", Value::Str("x\u{1F600}\u{7f}\t'/".into()));
        d.insert("d", Value::Double(0.1));
        d.insert("u", Value::Uint(u64::MAX));
        d.insert(
            "l",
            Value::List(vec![
                Value::Null,
                Value::Bool(true),
                Value::List(vec![]),
                Value::Dict(Dict::new()),
            ]),
        );
        let v = Value::Dict(d);
        assert_eq!(v.json_len(), v.to_json().len());
        for s in ["", "plain", "\u{FFFF}", "\u{10FFFF}", "\u{D7FF}\u{E000}", "\u{FDD0}"] {
            let v = Value::Str(s.into());
            assert_eq!(v.json_len(), v.to_json().len(), "{s:?}");
        }
    }

    #[test]
    fn escapes_found_at_any_offset_of_a_long_plain_run() {
        for at in [0, 1, 62, 63, 64, 65, 127, 128, 129, 300] {
            for special in ["\"", "\\", "\n", "\u{1}", "é", "\u{7f}", "\u{1F600}"] {
                let s = format!("{}{special}{}", "A".repeat(at), "b".repeat(70));
                let json = Value::Str(s.clone()).to_json();
                let mut want = String::from("\"");
                want.push_str(&"A".repeat(at));
                want.push_str(
                    &Value::Str(special.into()).to_json()[1..][..Value::Str(special.into()).to_json().len() - 2],
                );
                want.push_str(&"b".repeat(70));
                want.push('"');
                assert_eq!(json, want, "special {special:?} at {at}");
                assert_eq!(Value::Str(s).json_len(), json.len());
            }
        }
    }
}
