//! QEMU 7.2's JSON message streamer (`qobject/json-streamer.c`): groups the
//! lexer's tokens into top-level values, enforces the limits (64 MiB per
//! message, 2^21 tokens, nesting 1024) and resets on every error.
//!
//! One deliberate difference: after a limit error QEMU restarts with the next
//! token of the same oversized value and floods the client with one error per
//! leftover token. Here the rest of that value is discarded quietly until its
//! brackets balance, so one bad value costs exactly one error reply.

use super::lexer::{Lexeme, Lexer, MAX_TOKEN_SIZE, TokenKind};
use super::parser::{self, Token};
use crate::qobject::{Value, lossy_string};

const MAX_TOKEN_COUNT: usize = 2 << 20;
const MAX_NESTING: i64 = 1 << 10;

/// A few milliseconds of parsing: a feed that may parse more tokens than
/// this belongs off the event loop.
const SLOW_TOKENS: usize = 64 << 10;

/// Buffers up to these sizes are reused from one message to the next.
const KEEP_TOKENS: usize = 4 << 10;
const KEEP_TEXT: usize = 64 << 10;

/// Bytes of token text that cost about as much to parse as one token.
const TEXT_PER_TOKEN: usize = 8;

/// A streaming parser: bytes in, complete values (or parse errors) out. One
/// per client; it holds only that client's partial input.
#[derive(Default)]
pub struct StreamParser {
    lexer: Lexer,
    tokens: Vec<Token>,
    /// The text of every token in `tokens`, one after the other.
    text: Vec<u8>,
    braces: i64,
    brackets: i64,
    size: usize,
    /// Depth left to skip of a value that broke a limit.
    discarding: i64,
}

/// One parsed message: a value, or the text of a parse error.
pub type Parsed = Result<Value, String>;

impl StreamParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes; every message they complete is appended to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Parsed>) {
        let Self { lexer, .. } = self;
        let mut lexer = std::mem::take(lexer);
        let mut i = 0;
        while i < bytes.len() {
            let plain = lexer.feed_plain(&bytes[i..]);
            if plain > 0 {
                i += plain;
                continue;
            }
            lexer.feed(bytes[i], &mut |lexeme| self.process(lexeme, out));
            i += 1;
        }
        self.lexer = lexer;
    }

    /// Whether feeding `incoming` more bytes may take more than a few
    /// milliseconds: it may complete the message held so far, whose parse
    /// costs its token count, and each byte may add a token.
    /// A byte of token text (a long string of escapes) costs far less
    /// than a token.
    pub fn may_be_slow(&self, incoming: usize) -> bool {
        let text = self.size + self.lexer.pending();
        self.tokens.len() + (text + incoming) / TEXT_PER_TOKEN > SLOW_TOKENS
    }

    /// True while a message is partially received.
    pub fn is_mid_message(&self) -> bool {
        !self.tokens.is_empty() || self.discarding > 0
    }

    fn process(&mut self, lexeme: Lexeme<'_>, out: &mut Vec<Parsed>) {
        let (kind, text) = match lexeme {
            Lexeme::Stray(text) => {
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                out.push(Err(format!("JSON parse error, stray '{}'", lossy_string(&text[..end]))));
                self.reset();
                self.discarding = 0;
                return;
            }
            Lexeme::Oversized => {
                self.limit_error("JSON token size limit exceeded", out);
                return;
            }
            Lexeme::Token(kind, text) => (kind, text),
        };
        let depth_change = match kind {
            TokenKind::LCurly | TokenKind::LSquare => 1,
            TokenKind::RCurly | TokenKind::RSquare => -1,
            _ => 0,
        };
        if self.discarding > 0 {
            self.discarding += depth_change;
            return;
        }
        match kind {
            TokenKind::LCurly => self.braces += 1,
            TokenKind::RCurly => self.braces -= 1,
            TokenKind::LSquare => self.brackets += 1,
            TokenKind::RSquare => self.brackets -= 1,
            _ => {}
        }
        if self.size + text.len() + 1 > MAX_TOKEN_SIZE {
            return self.limit_error("JSON token size limit exceeded", out);
        }
        if self.tokens.len() + 1 > MAX_TOKEN_COUNT {
            return self.limit_error("JSON token count limit exceeded", out);
        }
        if self.braces + self.brackets > MAX_NESTING {
            return self.limit_error("JSON nesting depth limit exceeded", out);
        }
        self.size += text.len();
        let start = self.text.len();
        self.text.extend_from_slice(text);
        self.tokens.push(Token {
            kind,
            start,
            end: self.text.len(),
        });
        if (self.braces > 0 || self.brackets > 0) && self.braces >= 0 && self.brackets >= 0 {
            return;
        }
        out.push(parser::parse(&self.tokens, &self.text).map_err(|e| format!("JSON parse error, {e}")));
        self.reset();
    }

    fn limit_error(&mut self, desc: &str, out: &mut Vec<Parsed>) {
        out.push(Err(desc.to_owned()));
        self.discarding = (self.braces + self.brackets).max(0);
        self.reset();
    }

    fn reset(&mut self) {
        // Small buffers are kept for the next message; a big message's
        // are freed.
        if self.tokens.capacity() > KEEP_TOKENS {
            self.tokens = Vec::new();
        } else {
            self.tokens.clear();
        }
        if self.text.capacity() > KEEP_TEXT {
            self.text = Vec::new();
        } else {
            self.text.clear();
        }
        self.braces = 0;
        self.brackets = 0;
        self.size = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> Vec<String> {
        let mut parser = StreamParser::new();
        let mut out = Vec::new();
        parser.feed(input, &mut out);
        out.into_iter()
            .map(|r| match r {
                Ok(v) => v.to_json(),
                Err(e) => format!("error: {e}"),
            })
            .collect()
    }

    #[test]
    fn values_may_span_feeds_and_share_one() {
        let mut parser = StreamParser::new();
        let mut out = Vec::new();
        parser.feed(b"{\"execute\": \"gu", &mut out);
        assert!(out.is_empty() && parser.is_mid_message());
        parser.feed(b"est-ping\"}{\"a\": 1}[2]", &mut out);
        assert_eq!(out.len(), 3);
        assert!(!parser.is_mid_message());
    }

    #[test]
    fn parse_errors_have_qemu_texts() {
        assert_eq!(run(b"}"), ["error: JSON parse error, expecting value"]);
        assert_eq!(run(b"{\"a\" 1}"), ["error: JSON parse error, missing : in object pair"]);
        assert_eq!(
            run(b"{1: 2}"),
            ["error: JSON parse error, key is not a string in object"]
        );
        assert_eq!(run(b"[1 2]"), ["error: JSON parse error, expected separator in list"]);
        assert_eq!(
            run(b"{\"a\":1 \"b\"}"),
            ["error: JSON parse error, expected separator in dict"]
        );
        assert_eq!(run(b"[nul]"), ["error: JSON parse error, invalid keyword 'nul'"]);
        assert_eq!(run(b"{\"a\":1,\"a\":2}"), ["error: JSON parse error, duplicate key"]);
        assert_eq!(run(b"\xff{}"), ["error: JSON parse error, stray '\u{FFFD}'", "{}"]);
    }

    #[test]
    fn a_stray_byte_drops_the_partial_value() {
        assert_eq!(
            run(b"{\"a\": \xff {\"b\": 1}"),
            ["error: JSON parse error, stray '\u{FFFD}'", "{\"b\": 1}"]
        );
    }

    #[test]
    fn over_deep_nesting_costs_one_error_then_recovers() {
        let mut input = "[".repeat(1100);
        input.push_str(&"]".repeat(1100));
        input.push_str("{\"ok\": 1}");
        assert_eq!(
            run(input.as_bytes()),
            ["error: JSON nesting depth limit exceeded", "{\"ok\": 1}"]
        );
        let mut at_limit = "[".repeat(1024);
        at_limit.push_str(&"]".repeat(1024));
        assert_eq!(run(at_limit.as_bytes()).len(), 1);
        assert!(!run(at_limit.as_bytes())[0].starts_with("error"));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::qobject::{Dict, Value};
    use proptest::prelude::*;

    fn outputs(chunks: &[&[u8]]) -> Vec<Parsed> {
        let mut parser = StreamParser::new();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut out);
        }
        out
    }

    /// Bytes that look like requests often enough to reach deep states.
    fn jsonish() -> impl Strategy<Value = Vec<u8>> {
        let pieces = prop::sample::select(vec![
            &b"{"[..],
            b"}",
            b"[",
            b"]",
            b":",
            b",",
            b" ",
            b"\n",
            b"\"",
            b"'",
            b"\\",
            b"\\u",
            b"00e9",
            b"d83d",
            b"\"execute\"",
            b"\"guest-ping\"",
            b"\"arguments\"",
            b"\"id\"",
            b"1",
            b"-",
            b"0",
            b".5",
            b"e+3",
            b"1e400",
            b"true",
            b"nul",
            b"\xff",
            b"\x00",
            b"\xc3\xa9",
            b"\xc0\x80",
            b"\xed\xa0\x80",
            b"\x01",
            b"%d",
        ]);
        prop::collection::vec(
            prop_oneof![pieces.prop_map(|p| p.to_vec()), any::<u8>().prop_map(|b| vec![b])],
            0..200,
        )
        .prop_map(|parts| parts.concat())
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            (i64::MAX as u64 + 1..=u64::MAX).prop_map(Value::Uint),
            // Integral doubles print without '.' or 'e' and come back as
            // integers, exactly as in QEMU; leave them out of the round trip.
            any::<f64>()
                .prop_filter("finite, not integral", |d| d.is_finite()
                    && (d.fract() != 0.0 || d.abs() >= 1e17))
                .prop_map(Value::Double),
            any::<String>().prop_map(Value::Str),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::List),
                prop::collection::vec(("[a-z-]{1,12}", inner), 0..8)
                    .prop_map(|members| Value::Dict(members.into_iter().collect::<Dict>())),
            ]
        })
    }

    /// The same value with every object's keys in sorted insertion order.
    fn sorted(v: &Value) -> Value {
        match v {
            Value::List(items) => Value::List(items.iter().map(sorted).collect()),
            Value::Dict(dict) => {
                let mut members: Vec<(String, Value)> = dict.iter().map(|(k, v)| (k.to_owned(), sorted(v))).collect();
                members.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Dict(members.into_iter().collect())
            }
            other => other.clone(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 2000,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(0x0051_6741),
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_bytes_give_answers_never_a_panic(input in jsonish()) {
            let out = outputs(&[&input]);
            prop_assert!(out.len() <= input.len() + 1);
            // Whatever parsed serializes to JSON that parses back.
            for value in out.into_iter().flatten() {
                let text = value.to_json() + "\n";
                prop_assert_eq!(outputs(&[text.as_bytes()]).len(), 1);
            }
        }

        #[test]
        fn how_bytes_are_split_never_changes_the_answers(input in jsonish(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8)) {
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for p in points {
                chunks.push(&input[start..p]);
                start = p;
            }
            chunks.push(&input[start..]);
            prop_assert_eq!(outputs(&chunks), outputs(&[&input]));
        }

        #[test]
        fn written_values_parse_back_to_the_same_text(v in value()) {
            let text = v.to_json();
            // A bare scalar ends only at the next byte, as in QEMU.
            let out = outputs(&[text.as_bytes(), b"\n"]);
            prop_assert_eq!(out.len(), 1);
            let back = out.into_iter().next().unwrap();
            prop_assert!(back.is_ok(), "{} did not parse: {:?}", text, back);
            // Keys sharing a QDict bucket come back in reverse, as in QEMU.
            prop_assert_eq!(sorted(&back.unwrap()).to_json(), sorted(&v).to_json());
        }
    }
}
