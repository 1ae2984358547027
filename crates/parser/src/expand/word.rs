//! The walk over one word. Mirrors BuildKit's `shellWord` step by step
//! (including its quirks), because users' Dockerfiles depend on them.

use std::borrow::Cow;

use super::go::{is_go_digit, is_go_letter};
use super::pattern;
use super::{Env, ExpandErrorKind as Fault, Lexer, Matches};

/// What `text/scanner` hands out for end of input when printed with `%c`.
const EOF_CHAR: char = '\u{FFFD}';

/// The result of a successful walk.
pub(super) struct Output {
    pub(super) word: String,
    pub(super) words: Vec<String>,
    pub(super) matches: Matches,
}

/// What a caller needs besides the expanded word: building the fields and
/// recording the names looked up costs allocations per character and per
/// name, so a walk does only what was asked.
#[derive(Clone, Copy)]
pub(super) struct Wants {
    fields: bool,
    matches: bool,
}

impl Wants {
    pub(super) const WORD: Wants = Wants {
        fields: false,
        matches: false,
    };
    pub(super) const FIELDS: Wants = Wants {
        fields: true,
        matches: false,
    };
    pub(super) const MATCHES: Wants = Wants {
        fields: false,
        matches: true,
    };
}

/// Field splitting as BuildKit's `wordsStruct` does it.
#[derive(Default)]
struct Fields {
    word: String,
    words: Vec<String>,
    in_word: bool,
    /// Off when the caller wants the word only: every call is then a no-op.
    off: bool,
}

impl Fields {
    fn new(on: bool) -> Self {
        Fields {
            off: !on,
            ..Fields::default()
        }
    }

    /// An unquoted character: whitespace ends the current field.
    fn add_char(&mut self, ch: char) {
        if self.off {
            return;
        }
        if ch.is_whitespace() {
            // BuildKit only ends a field that has text; an empty quoted
            // string ("") keeps `in_word` set without producing a field.
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        if self.off {
            return;
        }
        self.word.push(ch);
        self.in_word = true;
    }

    /// The value of a `$` expansion is split like unquoted text.
    fn add_string(&mut self, s: &str) {
        if self.off {
            return;
        }
        s.chars().for_each(|c| self.add_char(c));
    }

    /// Quoted text is never split.
    fn add_raw_string(&mut self, s: &str) {
        if self.off {
            return;
        }
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

/// The scanner state for one word.
pub(super) struct Walker<'a> {
    lex: &'a Lexer,
    env: &'a dyn Env,
    /// The word, walked by byte position (no copy of it is made).
    text: &'a str,
    pos: usize,
    raw_escapes: bool,
    wants: Wants,
    matches: Matches,
}

impl<'a> Walker<'a> {
    pub(super) fn new(lex: &'a Lexer, word: &'a str, env: &'a dyn Env, wants: Wants) -> Self {
        // Go's text/scanner drops a byte-order mark at the start of input.
        let word = word.strip_prefix('\u{FEFF}').unwrap_or(word);
        Walker {
            lex,
            env,
            text: word,
            pos: 0,
            raw_escapes: lex.raw_escapes,
            wants,
            matches: Matches::default(),
        }
    }

    pub(super) fn run(mut self) -> Result<Output, Fault> {
        let (word, words) = self.process_stop_on(None, self.lex.raw_escapes)?;
        Ok(Output {
            word,
            words,
            matches: self.matches,
        })
    }

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if let Some(c) = ch {
            self.pos += c.len_utf8();
        }
        ch
    }

    /// Processes until `stop` (consumed) or end of input, with escapes kept
    /// raw or not for the duration.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), Fault> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let out = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        out
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), Fault> {
        // Most words expand to about their own length: one allocation.
        let mut result = String::with_capacity(self.text.len() - self.pos);
        let mut fields = Fields::new(self.wants.fields);
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, fields.finish()));
            }
            if let Some(value) = self.special(ch)? {
                too_long(result.len() + value.len())?;
                result.push_str(&value);
                if ch == '$' {
                    fields.add_string(&value);
                } else {
                    fields.add_raw_string(&value);
                }
                continue;
            }
            self.next();
            if ch != self.lex.escape {
                fields.add_char(ch);
                result.push(ch);
                continue;
            }
            if self.raw_escapes {
                fields.add_raw_char(ch);
                result.push(ch);
            }
            // An escape at the very end is dropped.
            let Some(escaped) = self.next() else { break };
            fields.add_raw_char(escaped);
            result.push(escaped);
        }
        match stop {
            Some(c) => Err(Fault::Unterminated {
                what: c.to_string(),
            }),
            None => Ok((result, fields.finish())),
        }
    }

    /// Runs the handler for `$` and (unless disabled) quotes.
    fn special(&mut self, ch: char) -> Result<Option<Cow<'a, str>>, Fault> {
        let quotes = !self.lex.skip_process_quotes;
        match ch {
            '$' => self.process_dollar().map(Some),
            '\'' if quotes => self.process_single_quote().map(|s| Some(s.into())),
            '"' if quotes => self.process_double_quote().map(|s| Some(s.into())),
            _ => Ok(None),
        }
    }

    fn process_single_quote(&mut self) -> Result<String, Fault> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(Fault::Unterminated {
                        what: "single-quote".into(),
                    })
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Result<String, Fault> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(Fault::Unterminated {
                        what: "double-quote".into(),
                    })
                }
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    too_long(result.len() + value.len())?;
                    result.push_str(&value);
                }
                Some(_) => self.double_quoted_char(&mut result),
            }
        }
    }

    /// One non-`$` character inside double quotes: the escape token only
    /// escapes `"`, `$` and itself; before anything else it stays literal.
    fn double_quoted_char(&mut self, result: &mut String) {
        let Some(mut ch) = self.next() else { return };
        if ch == self.lex.escape {
            if self.raw_escapes {
                result.push(ch);
            }
            match self.peek() {
                // A trailing escape is dropped; the missing quote is
                // reported by the caller.
                None => return,
                Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                    self.next();
                    ch = c;
                }
                Some(_) => {}
            }
        }
        result.push(ch);
    }

    /// A variable's value is borrowed from the environment, not copied:
    /// words like `/opt/bin:$PATH` are common and `PATH` can be long.
    fn process_dollar(&mut self) -> Result<Cow<'a, str>, Fault> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.lookup(name) {
                None if self.lex.skip_unset_env => format!("${name}").into(),
                value => value.unwrap_or_default().into(),
            });
        }
        self.next();
        match self.peek() {
            None => return Err(Fault::MissingBrace),
            Some('{' | '}' | ':') => return Err(Fault::BadSubstitution),
            Some(_) => {}
        }
        let name = self.process_name();
        match self.next() {
            Some('}') => Ok(match self.lookup(name) {
                None if self.lex.skip_unset_env => format!("${{{name}}}").into(),
                value => value.unwrap_or_default().into(),
            }),
            Some(':') => {
                let op = self.next();
                let text = format!(":{}", op.unwrap_or(EOF_CHAR));
                self.modifier(name, op, text, true).map(Cow::Owned)
            }
            Some(op @ ('+' | '-' | '?' | '#' | '%')) => self
                .modifier(name, Some(op), op.to_string(), false)
                .map(Cow::Owned),
            Some('/') => self.substitute(name).map(Cow::Owned),
            other => Err(Fault::UnsupportedModifier {
                modifier: other.unwrap_or(EOF_CHAR).to_string(),
            }),
        }
    }

    /// `${name<op>word}` for the operators that take one word. `text` is the
    /// operator as written (`:-`, `#`, …) and `null_is_unset` is the colon.
    fn modifier(
        &mut self,
        name: &str,
        op: Option<char>,
        text: String,
        null_is_unset: bool,
    ) -> Result<String, Fault> {
        let raw = matches!(op, Some('#' | '%'));
        let (word, _) = self
            .process_stop_on(Some('}'), raw)
            .map_err(|e| self.at_eof(e))?;
        let value = self.get_env(name);
        if self.lex.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}{text}{word}}}"));
        }
        let empty = match value.as_deref() {
            None => true,
            Some(v) => null_is_unset && v.is_empty(),
        };
        match op {
            Some('-') => Ok(if empty {
                word
            } else {
                value.unwrap_or_default()
            }),
            Some('+') => Ok(if empty { String::new() } else { word }),
            Some('?') => required(name, value, null_is_unset, word),
            Some(c @ ('#' | '%')) => {
                let value = value.unwrap_or_default();
                let (greedy, pat) = match word.strip_prefix(c) {
                    Some(rest) => (true, rest),
                    None => (false, word.as_str()),
                };
                if c == '%' {
                    pattern::trim_suffix(pat, &value, greedy)
                } else {
                    pattern::trim_prefix(pat, &value, greedy)
                }
            }
            _ => Err(Fault::UnsupportedModifier { modifier: text }),
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`.
    fn substitute(&mut self, name: &str) -> Result<String, Fault> {
        let all = self.peek() == Some('/');
        if all {
            self.next();
        }
        let (pat, _) = self.process_stop_on(Some('/'), true).map_err(|e| {
            if self.peek().is_none() {
                Fault::MissingSlash
            } else {
                e
            }
        })?;
        let (replacement, _) = self
            .process_stop_on(Some('}'), true)
            .map_err(|e| self.at_eof(e))?;
        let value = self.get_env(name);
        if self.lex.skip_unset_env && value.is_none() {
            return Ok(format!("${{{name}/{pat}/{replacement}}}"));
        }
        pattern::replace(&pat, &value.unwrap_or_default(), &replacement, all)
    }

    /// BuildKit reports any failure inside `${…}` that ran to the end of the
    /// input as a missing `}`.
    fn at_eof(&self, e: Fault) -> Fault {
        if self.peek().is_none() {
            Fault::MissingBrace
        } else {
            e
        }
    }

    /// A name: a run of digits, one special parameter character, or a run of
    /// letters, digits and `_`. Borrowed from the word: the characters of a
    /// name are the ones consumed.
    fn process_name(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(ch) = self.peek() {
            if self.pos == start && is_go_digit(ch) {
                while self.peek().is_some_and(is_go_digit) {
                    self.next();
                }
                break;
            }
            if self.pos == start && is_special_param(ch) {
                self.next();
                break;
            }
            if !is_go_letter(ch) && !is_go_digit(ch) && ch != '_' {
                break;
            }
            self.next();
        }
        &self.text[start..self.pos]
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        self.lookup(name).map(str::to_string)
    }

    /// The value of `name`, noted in the matches when the caller wants them.
    fn lookup(&mut self, name: &str) -> Option<&'a str> {
        let env: &'a dyn Env = self.env;
        let value = env.get(name);
        if self.wants.matches {
            let set = if value.is_some() {
                &mut self.matches.matched
            } else {
                &mut self.matches.unmatched
            };
            set.insert(name.to_string());
        }
        value
    }
}

/// `${name?message}` / `${name:?message}`.
fn required(
    name: &str,
    value: Option<String>,
    null_is_unset: bool,
    word: String,
) -> Result<String, Fault> {
    let default = match value.as_deref() {
        None => "is not allowed to be unset",
        Some("") if null_is_unset => "is not allowed to be empty",
        Some(_) => return Ok(value.unwrap_or_default()),
    };
    let message = if word.is_empty() {
        default.to_string()
    } else {
        word
    };
    Err(Fault::Required {
        name: name.to_string(),
        message,
    })
}

/// POSIX special parameters, which BuildKit reads as one-character names.
/// Fails once an expansion would reach `len` bytes, past the bound.
pub(super) fn too_long(len: usize) -> Result<(), Fault> {
    match len > super::MAX_EXPANDED_LEN {
        true => Err(Fault::TooLong {
            limit: super::MAX_EXPANDED_LEN,
        }),
        false => Ok(()),
    }
}

fn is_special_param(ch: char) -> bool {
    matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}
