//! The text of QEMU's compact JSON writer: string quoting and escapes,
//! `%.17g` doubles, and the modified UTF-8 decoding behind both.

use std::fmt::Write as _;

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
pub(super) fn quoted_len(s: &str) -> usize {
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
pub(super) fn write_quoted(out: &mut String, s: &str) {
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
    use crate::qobject::{Dict, Value};

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
