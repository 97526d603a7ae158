//! QEMU 7.2's JSON parser (`qobject/json-parser.c`): turns the tokens of one
//! complete top-level value into a [`Value`], with QEMU's error texts. The
//! first error found is the one reported.

use super::lexer::TokenKind;
use crate::qobject::{Dict, Value, lossy_string, mod_utf8_codepoint};

/// One token: its kind and where its text lies in the message's text
/// (one buffer for all tokens, so a token costs no allocation of its own).
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

/// Parse one value from `tokens`, whose texts lie in `text`; the error
/// text lacks the "JSON parse error, " prefix, which the caller adds.
pub fn parse(tokens: &[Token], text: &[u8]) -> Result<Value, String> {
    let mut cursor = Cursor { tokens, text, pos: 0 };
    cursor.value()
}

struct Cursor<'a> {
    tokens: &'a [Token],
    text: &'a [u8],
    pos: usize,
}

const PREMATURE_EOI: &str = "premature EOI";

impl<'a> Cursor<'a> {
    fn text_of(&self, token: &Token) -> &'a [u8] {
        &self.text[token.start..token.end]
    }

    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.pos)
    }

    fn pop(&mut self) -> Result<&'a Token, String> {
        let token = self.tokens.get(self.pos).ok_or(PREMATURE_EOI)?;
        self.pos += 1;
        Ok(token)
    }

    fn value(&mut self) -> Result<Value, String> {
        let token = self.peek().ok_or(PREMATURE_EOI)?;
        match token.kind {
            TokenKind::LCurly => self.object(),
            TokenKind::LSquare => self.array(),
            TokenKind::String => {
                self.pos += 1;
                parse_string(self.text_of(token)).map(Value::Str)
            }
            TokenKind::Integer | TokenKind::Float => {
                self.pos += 1;
                parse_number(token.kind, self.text_of(token))
            }
            TokenKind::Keyword => {
                self.pos += 1;
                match self.text_of(token) {
                    b"true" => Ok(Value::Bool(true)),
                    b"false" => Ok(Value::Bool(false)),
                    b"null" => Ok(Value::Null),
                    other => Err(format!("invalid keyword '{}'", lossy_string(other))),
                }
            }
            TokenKind::RCurly | TokenKind::RSquare | TokenKind::Colon | TokenKind::Comma => {
                Err("expecting value".into())
            }
        }
    }

    fn object(&mut self) -> Result<Value, String> {
        self.pos += 1; // '{'
        let mut dict = Dict::new();
        if self.peek().ok_or(PREMATURE_EOI)?.kind == TokenKind::RCurly {
            self.pos += 1;
            return Ok(Value::Dict(dict));
        }
        self.pair(&mut dict)?;
        loop {
            match self.pop()?.kind {
                TokenKind::RCurly => return Ok(Value::Dict(dict)),
                TokenKind::Comma => self.pair(&mut dict)?,
                _ => return Err("expected separator in dict".into()),
            }
        }
    }

    fn pair(&mut self, dict: &mut Dict) -> Result<(), String> {
        self.peek().ok_or(PREMATURE_EOI)?;
        let Value::Str(key) = self.value()? else {
            return Err("key is not a string in object".into());
        };
        if self.pop()?.kind != TokenKind::Colon {
            return Err("missing : in object pair".into());
        }
        let value = self.value()?;
        if dict.contains_key(&key) {
            return Err("duplicate key".into());
        }
        dict.insert(key, value);
        Ok(())
    }

    fn array(&mut self) -> Result<Value, String> {
        self.pos += 1; // '['
        let mut list = Vec::new();
        if self.peek().ok_or(PREMATURE_EOI)?.kind == TokenKind::RSquare {
            self.pos += 1;
            return Ok(Value::List(list));
        }
        list.push(self.value()?);
        loop {
            match self.pop()?.kind {
                TokenKind::RSquare => return Ok(Value::List(list)),
                TokenKind::Comma => list.push(self.value()?),
                _ => return Err("expected separator in list".into()),
            }
        }
    }
}

/// `JSON_INTEGER` becomes `Int` if it fits i64, else `Uint` if it fits u64,
/// else a double; `JSON_FLOAT` is a double. A double that overflows to
/// infinity is refused: QEMU would echo it as `inf`, which is not JSON.
fn parse_number(kind: TokenKind, text: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(text).map_err(|_| "expecting value".to_string())?;
    if kind == TokenKind::Integer {
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        if !text.starts_with('-')
            && let Ok(u) = text.parse::<u64>()
        {
            return Ok(Value::Uint(u));
        }
    }
    match text.parse::<f64>() {
        Ok(d) if d.is_finite() => Ok(Value::Double(d)),
        _ => Err("number out of range".into()),
    }
}

/// The value of four hex digits at the start of `s`, as QEMU's `cvt4hex`.
fn cvt4hex(s: &[u8]) -> Option<u32> {
    let digits = s.get(..4)?;
    let text = std::str::from_utf8(digits).ok()?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

/// QEMU's `parse_string`: unescape a quoted string token.
fn parse_string(token: &[u8]) -> Result<String, String> {
    let quote = token[0];
    let mut out = String::with_capacity(token.len());
    let mut i = 1;
    while token[i] != quote {
        // Fast path: a run of printable ASCII (the bulk of base64 data)
        // decodes to itself.
        let run = token[i..]
            .iter()
            .position(|&b| !(0x20..=0x7e).contains(&b) || b == quote || b == b'\\')
            .unwrap_or(token.len() - i);
        if run > 0 {
            match std::str::from_utf8(&token[i..i + run]) {
                Ok(text) => out.push_str(text),
                Err(_) => return Err("invalid UTF-8 sequence in string".into()),
            }
            i += run;
            continue;
        }
        if token[i] != b'\\' {
            let (cp, used) = mod_utf8_codepoint(&token[i..]);
            match cp.and_then(char::from_u32) {
                Some(ch) => out.push(ch),
                None => return Err("invalid UTF-8 sequence in string".into()),
            }
            i += used;
            continue;
        }
        let begin = i;
        i += 1;
        let escaped = token[i];
        i += 1;
        let simple = match escaped {
            b'"' => '"',
            b'\'' => '\'',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let mut cp = cvt4hex(&token[i..]);
                i += 4;
                if let Some(lead @ 0xD800..=0xDBFF) = cp
                    && token.get(i) == Some(&b'\\')
                    && token.get(i + 1) == Some(&b'u')
                {
                    cp = match cvt4hex(&token[i + 2..]) {
                        Some(trail @ 0xDC00..=0xDFFF) => {
                            i += 6;
                            Some(0x10000 + ((lead & 0x3FF) << 10) + (trail & 0x3FF))
                        }
                        _ => None,
                    };
                }
                match cp.filter(|&c| valid_escape(c)).and_then(char::from_u32) {
                    Some(ch) => ch,
                    None => {
                        let end = i.min(token.len());
                        return Err(format!(
                            "{} is not a valid Unicode character",
                            lossy_string(&token[begin..end])
                        ));
                    }
                }
            }
            _ => return Err("invalid escape sequence in string".into()),
        };
        out.push(simple);
    }
    Ok(out)
}

/// Code points QEMU's `mod_utf8_encode` accepts from a `\u` escape.
fn valid_escape(cp: u32) -> bool {
    cp <= 0x10FFFF && !(0xFDD0..=0xFDEF).contains(&cp) && (cp & 0xFFFE) != 0xFFFE && !(0xD800..=0xDFFF).contains(&cp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string(s: &[u8]) -> Result<String, String> {
        parse_string(s)
    }

    #[test]
    fn strings_unescape_like_qemu() {
        assert_eq!(string(br#""a\"b\'c\/\\\n""#).unwrap(), "a\"b'c/\\\n");
        assert_eq!(string(br#"'x"y'"#).unwrap(), "x\"y");
        assert_eq!(string(br#""\u00e9\ud83d\ude00\u0000""#).unwrap(), "é😀\0");
        assert_eq!(string(br#""\x""#).unwrap_err(), "invalid escape sequence in string");
        assert_eq!(
            string(br#""\uD800""#).unwrap_err(),
            "\\uD800 is not a valid Unicode character"
        );
        assert_eq!(
            string(br#""\uD800\u0041""#).unwrap_err(),
            "\\uD800 is not a valid Unicode character"
        );
        assert_eq!(
            string(br#""\uFFFF""#).unwrap_err(),
            "\\uFFFF is not a valid Unicode character"
        );
        assert_eq!(
            string(br#""\u12""#).unwrap_err(),
            "\\u12\" is not a valid Unicode character"
        );
        assert_eq!(string(b"\"\xc3\x28\"").unwrap_err(), "invalid UTF-8 sequence in string");
        assert_eq!(string(b"\"\xc0\x80\"").unwrap(), "\0");
    }

    #[test]
    fn numbers_keep_qemu_kinds() {
        assert_eq!(parse_number(TokenKind::Integer, b"-0"), Ok(Value::Int(0)));
        assert_eq!(
            parse_number(TokenKind::Integer, b"18446744073709551615"),
            Ok(Value::Uint(u64::MAX))
        );
        assert_eq!(
            parse_number(TokenKind::Integer, b"18446744073709551616"),
            Ok(Value::Double(1.8446744073709552e19))
        );
        assert_eq!(
            parse_number(TokenKind::Integer, b"-9223372036854775809"),
            Ok(Value::Double(-9.223372036854776e18))
        );
        assert_eq!(
            parse_number(TokenKind::Float, b"1e400"),
            Err("number out of range".into())
        );
        assert_eq!(parse_number(TokenKind::Float, b"1e-400"), Ok(Value::Double(0.0)));
    }
}
