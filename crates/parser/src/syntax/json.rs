//! The exec form: a JSON array of strings, decoded with the rules of Go's
//! `json.Unmarshal` (strict syntax first, element types second).

/// Why a text is not an exec-form array.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JsonError {
    /// Not JSON, or not an array: the caller falls back to the shell form.
    NotJson,
    /// Valid JSON array with a non-string element: an error in BuildKit.
    NotStringArray,
}

/// Go's `encoding/json` nesting limit.
const MAX_DEPTH: usize = 10_000;

/// Decodes `text` (leading whitespace already trimmed) as `[]string`.
pub(crate) fn parse_string_array(text: &str) -> Result<Vec<String>, JsonError> {
    let mut p = Parser {
        s: text.as_bytes(),
        text,
        pos: 0,
    };
    let items = p.top_array()?;
    p.ws();
    if p.pos != p.s.len() {
        return Err(JsonError::NotJson);
    }
    items.ok_or(JsonError::NotStringArray)
}

struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The outer array. `Ok(None)` when it is valid but holds a non-string.
    fn top_array(&mut self) -> Result<Option<Vec<String>>, JsonError> {
        if !self.eat(b'[') {
            return Err(JsonError::NotJson);
        }
        let mut items = Some(Vec::new());
        self.ws();
        if self.eat(b']') {
            return Ok(items);
        }
        loop {
            self.ws();
            if self.peek() == Some(b'"') {
                let s = self.string()?;
                if let Some(v) = items.as_mut() {
                    v.push(s);
                }
            } else {
                self.skip_value()?;
                items = None;
            }
            self.ws();
            if self.eat(b',') {
                continue;
            }
            if self.eat(b']') {
                return Ok(items);
            }
            return Err(JsonError::NotJson);
        }
    }

    /// Validates one value of any type without recursion.
    fn skip_value(&mut self) -> Result<(), JsonError> {
        // Each entry: container kind, and whether a value is expected next.
        let mut stack: Vec<u8> = Vec::new();
        loop {
            self.ws();
            // Parse one value start.
            match self.peek() {
                Some(b'[') | Some(b'{') => {
                    let open = self.s[self.pos];
                    self.pos += 1;
                    if stack.len() + 2 > MAX_DEPTH {
                        return Err(JsonError::NotJson);
                    }
                    stack.push(open);
                    self.ws();
                    let close = if open == b'[' { b']' } else { b'}' };
                    if self.eat(close) {
                        stack.pop();
                    } else {
                        if open == b'{' {
                            self.key()?;
                        }
                        continue;
                    }
                }
                Some(b'"') => {
                    self.string()?;
                }
                Some(b't') => self.literal("true")?,
                Some(b'f') => self.literal("false")?,
                Some(b'n') => self.literal("null")?,
                Some(b'-' | b'0'..=b'9') => self.number()?,
                _ => return Err(JsonError::NotJson),
            }
            // After a complete value: close containers or move to the next item.
            loop {
                let Some(&top) = stack.last() else {
                    return Ok(());
                };
                self.ws();
                if self.eat(b',') {
                    if top == b'{' {
                        self.ws();
                        self.key()?;
                    }
                    break;
                }
                let close = if top == b'[' { b']' } else { b'}' };
                if self.eat(close) {
                    stack.pop();
                    continue;
                }
                return Err(JsonError::NotJson);
            }
        }
    }

    fn key(&mut self) -> Result<(), JsonError> {
        if self.peek() != Some(b'"') {
            return Err(JsonError::NotJson);
        }
        self.string()?;
        self.ws();
        if self.eat(b':') {
            Ok(())
        } else {
            Err(JsonError::NotJson)
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), JsonError> {
        if self.s[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(JsonError::NotJson)
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<(), JsonError> {
        self.eat(b'-');
        if self.eat(b'0') {
        } else if self.digits() == 0 {
            return Err(JsonError::NotJson);
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(JsonError::NotJson);
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(JsonError::NotJson);
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let h = self
            .s
            .get(self.pos..self.pos + 4)
            .ok_or(JsonError::NotJson)?;
        let h = std::str::from_utf8(h).map_err(|_| JsonError::NotJson)?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(JsonError::NotJson);
        }
        self.pos += 4;
        u32::from_str_radix(h, 16).map_err(|_| JsonError::NotJson)
    }

    /// A string literal; lone surrogates decode to U+FFFD as in Go.
    fn string(&mut self) -> Result<String, JsonError> {
        self.pos += 1; // opening quote
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(c) = rest.chars().next() else {
                return Err(JsonError::NotJson);
            };
            self.pos += c.len_utf8();
            match c {
                '"' => return Ok(out),
                '\\' => self.escape(&mut out)?,
                c if (c as u32) < 0x20 => return Err(JsonError::NotJson),
                c => out.push(c),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), JsonError> {
        let b = self.peek().ok_or(JsonError::NotJson)?;
        self.pos += 1;
        let c = match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                if (0xd800..0xdc00).contains(&hi) && self.s[self.pos..].starts_with(b"\\u") {
                    let save = self.pos;
                    self.pos += 2;
                    let lo = self.hex4()?;
                    if (0xdc00..0xe000).contains(&lo) {
                        let cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                        out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                        return Ok(());
                    }
                    self.pos = save;
                }
                char::from_u32(hi).unwrap_or('\u{fffd}')
            }
            _ => return Err(JsonError::NotJson),
        };
        out.push(c);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Vec<String> {
        parse_string_array(s).unwrap()
    }

    #[test]
    fn decodes_string_arrays() {
        assert_eq!(ok(r#"["a", "b c"]"#), vec!["a", "b c"]);
        assert_eq!(ok("[]"), Vec::<String>::new());
        assert_eq!(ok(r#"[ "\u00e9\n\"" ]  "#), vec!["é\n\""]);
        assert_eq!(
            ok(r#"["\ud83c\udf89", "\ud800x"]"#),
            vec!["🎉", "\u{fffd}x"]
        );
    }

    #[test]
    fn rejects_bad_json_as_not_json() {
        for s in [
            r#"["a""#,
            r#"["a"] x"#,
            r#"['a']"#,
            r#"["a",]"#,
            "[\"\t\"]",
            "{}",
            "[01]",
        ] {
            assert_eq!(parse_string_array(s), Err(JsonError::NotJson), "{s}");
        }
    }

    #[test]
    fn non_strings_are_their_own_error() {
        for s in [
            "[1]",
            r#"["a", null]"#,
            r#"["a", [["b"]], {"k": [1, 2.5e3]}]"#,
            "[true]",
        ] {
            assert_eq!(parse_string_array(s), Err(JsonError::NotStringArray), "{s}");
        }
        // Syntax errors win over type errors, as in Go.
        assert_eq!(parse_string_array("[1, "), Err(JsonError::NotJson));
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let s = format!("[{}{}]", "[".repeat(50_000), "]".repeat(50_000));
        assert_eq!(parse_string_array(&s), Err(JsonError::NotJson));
        let s = format!("[{}{}]", "[".repeat(100), "]".repeat(100));
        assert_eq!(parse_string_array(&s), Err(JsonError::NotStringArray));
    }
}
