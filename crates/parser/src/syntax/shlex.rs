//! The part of BuildKit's shell lexer (`frontend/dockerfile/shell`) that the
//! parser itself uses: `ProcessWords` with an empty environment and
//! `SkipUnsetEnv`, so `$x` and `${x...}` come back as written, on which
//! heredoc detection depends. Quotes and escapes can be kept (`RawQuotes`,
//! `RawEscapes`); the escape token is always the backslash. Errors (an
//! unterminated quote, a bad `${}`) are reported like BuildKit's.

use unicode_general_category::{get_general_category, GeneralCategory as G};

/// Lexer options.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Options {
    /// Keep quote characters in the words.
    pub raw_quotes: bool,
    /// Keep escape characters in the words.
    pub raw_escapes: bool,
}

/// `Lex.ProcessWords(src, emptyEnvs)` with `SkipUnsetEnv`.
pub(crate) fn process_words(src: &str, opts: Options) -> Result<Vec<String>, String> {
    let mut lx = Lexer {
        chars: src.chars().collect(),
        pos: 0,
        opts,
    };
    lx.stop_on(None, opts.raw_escapes)
        .map(|(_, words)| words)
        .map_err(|e| format!("failed to process {src:?}: {e}"))
}

/// BuildKit's `wordsStruct`: splits on whitespace what was not quoted or
/// escaped; an empty quoted string makes no word.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    opts: Options,
}

const ESCAPE: char = '\\';

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += usize::from(c.is_some());
        c
    }

    /// `processStopOn`: the text up to `stop` (consumed) or the end.
    fn stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.next();
                return Ok((result, words.finish()));
            }
            let special = match c {
                '\'' => Some(self.single_quote()?),
                '"' => Some(self.double_quote()?),
                '$' => Some(self.dollar()?),
                _ => None,
            };
            if let Some(tmp) = special {
                result.push_str(&tmp);
                if c == '$' {
                    words.add_string(&tmp);
                } else {
                    words.add_raw_string(&tmp);
                }
                continue;
            }
            self.next();
            if c != ESCAPE {
                words.add_char(c);
                result.push(c);
                continue;
            }
            if raw_escapes {
                words.add_raw_char(c);
                result.push(c);
            }
            let Some(escaped) = self.next() else { break };
            words.add_raw_char(escaped);
            result.push(escaped);
        }
        match stop {
            Some(s) => Err(format!(
                "unexpected end of statement while looking for matching {s}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    fn single_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let open = self.next();
        if self.opts.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.opts.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        let open = self.next();
        if self.opts.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.next();
                    if self.opts.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => result.push_str(&self.dollar()?),
                Some(_) => self.double_quoted_char(&mut result),
            }
        }
    }

    /// One character inside double quotes. Like BuildKit, with raw escapes
    /// a backslash before an ordinary character is written twice.
    fn double_quoted_char(&mut self, result: &mut String) {
        let Some(mut c) = self.next() else { return };
        if c == ESCAPE {
            if self.opts.raw_escapes {
                result.push(c);
            }
            match self.peek() {
                None => return,
                Some('"' | '$' | ESCAPE) => c = self.next().unwrap_or(c),
                Some(_) => {}
            }
        }
        result.push(c);
    }

    /// `processDollar`; unset variables (all of them) are written back.
    fn dollar(&mut self) -> Result<String, String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            return Ok(format!("${name}"));
        }
        self.next();
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.name();
        let ch = self.next();
        // Go's string(rune(EOF)) is U+FFFD.
        let mut chs = ch.unwrap_or('\u{fffd}').to_string();
        match ch {
            Some('}') => Ok(format!("${{{name}}}")),
            Some(':') => {
                let modifier = self.next();
                chs.push(modifier.unwrap_or('\u{fffd}'));
                match modifier {
                    Some('+' | '-' | '?') => self.modified(&name, &chs, false),
                    _ => Err(format!("unsupported modifier ({chs}) in substitution")),
                }
            }
            Some('+' | '-' | '?') => self.modified(&name, &chs, false),
            Some('#' | '%') => self.modified(&name, &chs, true),
            Some('/') => self.replacement(&name),
            _ => Err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }

    /// `${name<op>word}` with `name` unset: written back as it was.
    fn modified(&mut self, name: &str, op: &str, raw_escapes: bool) -> Result<String, String> {
        let word = self.braced_word('}', raw_escapes, "syntax error: missing '}'")?;
        Ok(format!("${{{name}{op}{word}}}"))
    }

    /// `${name/pattern/replacement}` (and `//`), written back.
    fn replacement(&mut self, name: &str) -> Result<String, String> {
        let all = if self.peek() == Some('/') {
            self.next();
            "/"
        } else {
            ""
        };
        let pattern = self.braced_word('/', true, "syntax error: missing '/' in ${}")?;
        let repl = self.braced_word('}', true, "syntax error: missing '}'")?;
        Ok(format!("${{{name}/{all}{pattern}/{repl}}}"))
    }

    fn braced_word(&mut self, stop: char, raw_escapes: bool, eof: &str) -> Result<String, String> {
        match self.stop_on(Some(stop), raw_escapes) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err(eof.into()),
            Err(e) => Err(e),
        }
    }

    /// `processName`: a run of letters, digits and `_`, or a run of digits,
    /// or one special parameter character.
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_digit(c) {
                while let Some(d) = self.peek().filter(|&d| is_digit(d)) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return c.to_string();
            }
            if !is_letter(c) && !is_digit(c) && c != '_' {
                break;
            }
            self.next();
            name.push(c);
        }
        name
    }
}

/// `unicode.IsDigit`: category Nd.
fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && get_general_category(c) == G::DecimalNumber)
}

/// `unicode.IsLetter`: categories Lu, Ll, Lt, Lm, Lo.
fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    matches!(
        get_general_category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(src: &str, raw: bool) -> Result<Vec<String>, String> {
        let opts = Options {
            raw_quotes: raw,
            raw_escapes: raw,
        };
        process_words(src, opts)
    }

    #[test]
    fn splits_like_buildkit() {
        assert_eq!(words("a  b\tc", false).unwrap(), ["a", "b", "c"]);
        assert_eq!(
            words("'a b' \"c d\" e\\ f", false).unwrap(),
            ["a b", "c d", "e f"]
        );
        assert_eq!(
            words("'a b' \"c d\" e\\ f", true).unwrap(),
            ["'a b'", "\"c d\"", "e\\ f"]
        );
        // Empty quotes make no word.
        assert_eq!(words("'' x \"\"", false).unwrap(), ["x"]);
        // Unset variables are written back, then split on whitespace.
        assert_eq!(
            words("$x ${y} ${z:-a b}", false).unwrap(),
            ["$x", "${y}", "${z:-a", "b}"]
        );
        assert_eq!(
            words("${x#*/} ${x%%.*} ${x//a/b} $ $1", false).unwrap(),
            ["${x#*/}", "${x%%.*}", "${x//a/b}", "$", "$1"]
        );
        // A backslash before an ordinary character in double quotes is
        // doubled with raw escapes.
        assert_eq!(words("\"a\\b\\\"c\"", true).unwrap(), ["\"a\\\\b\\\"c\""]);
        assert_eq!(words("\"a\\b\\\"c\"", false).unwrap(), ["a\\b\"c"]);
    }

    #[test]
    fn reports_errors_like_buildkit() {
        let e = |s: &str| words(s, true).unwrap_err();
        assert!(e("'x").ends_with("matching single-quote"));
        assert!(e("\"x").ends_with("matching double-quote"));
        assert!(e("${}").ends_with("bad substitution"));
        assert!(e("${x").ends_with("unsupported modifier (\u{fffd}) in substitution"));
        assert!(e("${x:-a").ends_with("missing '}'"));
        assert!(e("${x^^}").ends_with("unsupported modifier (^) in substitution"));
        assert!(e("${x:#a}").ends_with("unsupported modifier (:#) in substitution"));
    }
}
