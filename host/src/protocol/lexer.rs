//! The JSON lexer of QEMU 7.2 (`qobject/json-lexer.c`), byte for byte: the
//! same tokens, the same lenience (single-quoted strings, any byte from 0x20
//! to 0xFD inside strings), the same error recovery (skip to a structural
//! character, a control character or an impossible UTF-8 byte such as 0xFF).
//!
//! One deliberate difference: a token longer than the 64 MiB limit is
//! reported once and the rest of it is skipped, instead of being cut into
//! more tokens that flood the client with errors.

/// A token buffer grown past this is freed, not reused, after its token.
const KEEP_TOKEN_CAPACITY: usize = 64 << 10;

/// Longest token QEMU accepts.
pub const MAX_TOKEN_SIZE: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    LCurly,
    RCurly,
    LSquare,
    RSquare,
    Colon,
    Comma,
    Integer,
    Float,
    Keyword,
    String,
}

/// What the lexer hands to the streamer.
#[derive(Debug, PartialEq, Eq)]
pub enum Lexeme<'a> {
    Token(TokenKind, &'a [u8]),
    /// Bytes that cannot start or continue a token (QEMU's `JSON_ERROR`),
    /// including the offending byte.
    Stray(&'a [u8]),
    /// A token grew past [`MAX_TOKEN_SIZE`]; the rest of it is skipped.
    Oversized,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Recovery,
    DqString,
    DqEscape,
    SqString,
    SqEscape,
    Zero,
    Sign,
    Digits,
    Mantissa,
    MantissaDigits,
    ExpE,
    ExpSign,
    ExpDigits,
    Keyword,
}

/// Where one byte takes the lexer from a state.
enum Step {
    /// Consume the byte and stay in or move to a state.
    Go(State),
    /// Consume the byte; it completes a token.
    Emit(TokenKind),
    /// Do not consume the byte: the token ends before it.
    EmitBefore(TokenKind),
    /// Consume the byte and drop the token text (whitespace).
    Skip,
    /// Do not consume the byte: recovery ends, restart at `Start`.
    Resync,
    /// Consume the byte: it is an error.
    Error,
}

fn step(state: State, b: u8) -> Step {
    use State::*;
    use Step::*;
    let string_byte = (0x20..=0xFD).contains(&b);
    match state {
        Start => match b {
            b'"' => Go(DqString),
            b'\'' => Go(SqString),
            b'0' => Go(Zero),
            b'1'..=b'9' => Go(Digits),
            b'-' => Go(Sign),
            b'{' => Emit(TokenKind::LCurly),
            b'}' => Emit(TokenKind::RCurly),
            b'[' => Emit(TokenKind::LSquare),
            b']' => Emit(TokenKind::RSquare),
            b',' => Emit(TokenKind::Comma),
            b':' => Emit(TokenKind::Colon),
            b'a'..=b'z' => Go(Keyword),
            b' ' | b'\t' | b'\r' | b'\n' => Skip,
            _ => Error,
        },
        Recovery => match b {
            b'\t' => Go(Recovery),
            0..=0x1F | 0xFE | 0xFF | b'[' | b']' | b'{' | b'}' | b':' | b',' => Resync,
            _ => Go(Recovery),
        },
        DqString => match b {
            b'\\' => Go(DqEscape),
            b'"' => Emit(TokenKind::String),
            _ if string_byte => Go(DqString),
            _ => Error,
        },
        SqString => match b {
            b'\\' => Go(SqEscape),
            b'\'' => Emit(TokenKind::String),
            _ if string_byte => Go(SqString),
            _ => Error,
        },
        DqEscape if string_byte => Go(DqString),
        SqEscape if string_byte => Go(SqString),
        DqEscape | SqEscape => Error,
        Zero => match b {
            b'0'..=b'9' => Error,
            b'.' => Go(Mantissa),
            _ => EmitBefore(TokenKind::Integer),
        },
        Sign => match b {
            b'0' => Go(Zero),
            b'1'..=b'9' => Go(Digits),
            _ => Error,
        },
        Digits => match b {
            b'0'..=b'9' => Go(Digits),
            b'e' | b'E' => Go(ExpE),
            b'.' => Go(Mantissa),
            _ => EmitBefore(TokenKind::Integer),
        },
        Mantissa => match b {
            b'0'..=b'9' => Go(MantissaDigits),
            _ => Error,
        },
        MantissaDigits => match b {
            b'0'..=b'9' => Go(MantissaDigits),
            b'e' | b'E' => Go(ExpE),
            _ => EmitBefore(TokenKind::Float),
        },
        ExpE => match b {
            b'-' | b'+' => Go(ExpSign),
            b'0'..=b'9' => Go(ExpDigits),
            _ => Error,
        },
        ExpSign => match b {
            b'0'..=b'9' => Go(ExpDigits),
            _ => Error,
        },
        ExpDigits => match b {
            b'0'..=b'9' => Go(ExpDigits),
            _ => EmitBefore(TokenKind::Float),
        },
        Keyword => match b {
            b'a'..=b'z' => Go(Keyword),
            _ => EmitBefore(TokenKind::Keyword),
        },
    }
}

#[derive(Debug)]
pub struct Lexer {
    state: State,
    token: Vec<u8>,
    /// The current token passed the size limit: follow it to its end
    /// without keeping its bytes.
    skipping: bool,
}

impl Default for Lexer {
    fn default() -> Self {
        Self::new()
    }
}

impl Lexer {
    pub fn new() -> Self {
        Lexer {
            state: State::Start,
            token: Vec::new(),
            skipping: false,
        }
    }

    /// Feed one byte; `emit` receives every lexeme it completes.
    pub fn feed(&mut self, b: u8, emit: &mut impl FnMut(Lexeme<'_>)) {
        loop {
            let (consumed, next) = match step(self.state, b) {
                Step::Go(s) => {
                    self.push(b);
                    (true, s)
                }
                Step::Emit(kind) => {
                    self.push(b);
                    self.finish(Some(kind), emit);
                    (true, State::Start)
                }
                Step::EmitBefore(kind) => {
                    self.finish(Some(kind), emit);
                    (false, State::Start)
                }
                Step::Skip => {
                    self.token.clear();
                    (true, State::Start)
                }
                Step::Resync => {
                    self.token.clear();
                    (false, State::Start)
                }
                Step::Error => {
                    self.push(b);
                    self.finish(None, emit);
                    (true, State::Recovery)
                }
            };
            self.state = next;
            if consumed {
                break;
            }
        }
        if self.token.len() > MAX_TOKEN_SIZE {
            emit(Lexeme::Oversized);
            self.token = Vec::new();
            self.skipping = true;
        }
    }

    /// Fast path: the leading bytes of `bytes` that the current state would
    /// take one by one without emitting anything (printable ASCII inside a
    /// string other than its quote and `\\`), taken at once. The token never
    /// grows past the size limit here, so the byte that crosses it still
    /// goes through [`Lexer::feed`]. Returns how many bytes were taken.
    pub fn feed_plain(&mut self, bytes: &[u8]) -> usize {
        let quote = match self.state {
            State::DqString => b'"',
            State::SqString => b'\'',
            _ => return 0,
        };
        let room = if self.skipping {
            bytes.len()
        } else {
            MAX_TOKEN_SIZE.saturating_sub(self.token.len()).min(bytes.len())
        };
        let n = bytes[..room]
            .iter()
            .position(|&b| !(0x20..=0x7e).contains(&b) || b == quote || b == b'\\')
            .unwrap_or(room);
        if !self.skipping {
            self.token.extend_from_slice(&bytes[..n]);
        }
        n
    }

    /// Bytes of the token in progress.
    pub fn pending(&self) -> usize {
        self.token.len()
    }

    fn push(&mut self, b: u8) {
        if !self.skipping {
            self.token.push(b);
        }
    }

    /// End the current token: hand it over (or the stray bytes when `kind`
    /// is None), unless it is the tail of an oversized token.
    fn finish(&mut self, kind: Option<TokenKind>, emit: &mut impl FnMut(Lexeme<'_>)) {
        if self.skipping {
            self.skipping = false;
        } else {
            match kind {
                Some(kind) => emit(Lexeme::Token(kind, &self.token)),
                None => emit(Lexeme::Stray(&self.token)),
            }
        }
        if self.token.capacity() > KEEP_TOKEN_CAPACITY {
            // A big token (a file write's base64) is not kept for the
            // connection's lifetime.
            self.token = Vec::new();
        } else {
            self.token.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex(input: &[u8]) -> Vec<String> {
        let mut lexer = Lexer::new();
        let mut out = Vec::new();
        for &b in input {
            lexer.feed(b, &mut |l| {
                out.push(match l {
                    Lexeme::Token(k, t) => format!("{k:?}:{}", String::from_utf8_lossy(t)),
                    Lexeme::Stray(t) => format!("stray:{}", String::from_utf8_lossy(t)),
                    Lexeme::Oversized => "oversized".into(),
                })
            });
        }
        out
    }

    #[test]
    fn tokens_of_a_request() {
        assert_eq!(
            lex(b"{'a': [1, -2.5e3, true]}"),
            [
                "LCurly:{",
                "String:'a'",
                "Colon::",
                "LSquare:[",
                "Integer:1",
                "Comma:,",
                "Float:-2.5e3",
                "Comma:,",
                "Keyword:true",
                "RSquare:]",
                "RCurly:}"
            ]
        );
    }

    #[test]
    fn a_stray_byte_includes_itself_and_recovers_at_a_brace() {
        assert_eq!(lex(b"\xff{}"), ["stray:\u{FFFD}", "LCurly:{", "RCurly:}"]);
        assert_eq!(lex(b"-x 1 {"), ["stray:-x", "LCurly:{"]);
        assert_eq!(lex(b"01 "), ["stray:01"]);
        assert_eq!(lex(b"\"a\x01b\" 2\n3 "), ["stray:\"a\u{1}", "Integer:3"]);
    }

    #[test]
    fn recovery_also_ends_at_a_colon_or_a_comma() {
        assert_eq!(lex(b"Q,1 "), ["stray:Q", "Comma:,", "Integer:1"]);
        assert_eq!(lex(b"Qx:2 "), ["stray:Q", "Colon::", "Integer:2"]);
        assert_eq!(
            lex(b"\xff\"id\":3}"),
            ["stray:\u{FFFD}", "Colon::", "Integer:3", "RCurly:}"]
        );
    }

    #[test]
    fn a_number_ends_before_the_next_byte() {
        assert_eq!(lex(b"12}"), ["Integer:12", "RCurly:}"]);
        assert_eq!(lex(b"0.5,"), ["Float:0.5", "Comma:,"]);
    }
}
