//! A strict JSON checker without recursion (replies echo ids nested 1024
//! deep, past serde_json's limit): whether a text is one JSON value, and
//! the keys of its top-level object.

/// The top-level object's keys (raw, still escaped) if `text` is exactly
/// one JSON object; else why not.
pub fn top_level_keys(text: &[u8]) -> Result<Vec<String>, String> {
    let mut p = Checker {
        text,
        at: 0,
        keys: Vec::new(),
    };
    p.skip_ws();
    if p.text.get(p.at) != Some(&b'{') {
        return Err("not an object".into());
    }
    p.value()?;
    p.skip_ws();
    if p.at != text.len() {
        return Err(format!("trailing bytes at {}", p.at));
    }
    Ok(p.keys)
}

struct Checker<'a> {
    text: &'a [u8],
    at: usize,
    keys: Vec<String>,
}

impl Checker<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.text.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.at))
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        self.skip_ws();
        if self.text.get(self.at) == Some(&b) {
            self.at += 1;
            Ok(())
        } else {
            self.err(&format!("expected '{}'", b as char))
        }
    }

    /// One value; containers are walked with an explicit stack.
    fn value(&mut self) -> Result<(), String> {
        // Each entry: is it an object, and has it had a member yet.
        let mut stack: Vec<(bool, bool)> = Vec::new();
        loop {
            self.skip_ws();
            match self.text.get(self.at) {
                Some(b'{') | Some(b'[') => {
                    let object = self.text[self.at] == b'{';
                    self.at += 1;
                    self.skip_ws();
                    let close = if object { b'}' } else { b']' };
                    if self.text.get(self.at) == Some(&close) {
                        self.at += 1;
                    } else {
                        stack.push((object, false));
                        if object {
                            self.key(stack.len() == 1)?;
                        }
                        continue;
                    }
                }
                Some(b'"') => self.string()?,
                Some(b't') => self.literal("true")?,
                Some(b'f') => self.literal("false")?,
                Some(b'n') => self.literal("null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return self.err("expected a value"),
            }
            // After a value: close containers or go on to the next member.
            loop {
                let Some(&(object, _)) = stack.last() else {
                    return Ok(());
                };
                self.skip_ws();
                match self.text.get(self.at) {
                    Some(b',') => {
                        self.at += 1;
                        if let Some(top) = stack.last_mut() {
                            top.1 = true;
                        }
                        if object {
                            self.key(stack.len() == 1)?;
                        }
                        break;
                    }
                    Some(b'}') if object => {
                        self.at += 1;
                        stack.pop();
                    }
                    Some(b']') if !object => {
                        self.at += 1;
                        stack.pop();
                    }
                    _ => return self.err("expected ',' or a close"),
                }
            }
        }
    }

    fn key(&mut self, top_level: bool) -> Result<(), String> {
        self.skip_ws();
        let start = self.at;
        self.string()?;
        if top_level {
            self.keys
                .push(String::from_utf8_lossy(&self.text[start + 1..self.at - 1]).into_owned());
        }
        self.expect(b':')
    }

    fn string(&mut self) -> Result<(), String> {
        if self.text.get(self.at) != Some(&b'"') {
            return self.err("expected a string");
        }
        self.at += 1;
        loop {
            match self.text.get(self.at) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.at += 1;
                    break;
                }
                Some(b'\\') => {
                    self.at += 1;
                    match self.text.get(self.at) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.at += 1,
                        Some(b'u') => {
                            let hex = self.text.get(self.at + 1..self.at + 5).unwrap_or_default();
                            if hex.len() != 4 || !hex.iter().all(u8::is_ascii_hexdigit) {
                                return self.err("bad \\u escape");
                            }
                            self.at += 5;
                        }
                        _ => return self.err("bad escape"),
                    }
                }
                Some(&b) if b < 0x20 => return self.err("control byte in string"),
                Some(_) => self.at += 1,
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &str) -> Result<(), String> {
        if self.text[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(())
        } else {
            self.err("bad literal")
        }
    }

    fn number(&mut self) -> Result<(), String> {
        let start = self.at;
        while matches!(
            self.text.get(self.at),
            Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        ) {
            self.at += 1;
        }
        let text = std::str::from_utf8(&self.text[start..self.at]).unwrap();
        match text.parse::<f64>() {
            Ok(d) if d.is_finite() => Ok(()),
            _ => self.err("bad number"),
        }
    }
}
