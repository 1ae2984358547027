//! Shell-like word expansion, as BuildKit's `frontend/dockerfile/shell` lexer
//! does it.
//!
//! A [`Lexer`] takes one word of a Dockerfile instruction and an [`Env`] and
//! returns the word with quotes removed, escapes applied and variables
//! substituted ([`Lexer::process_word`]), or split into fields after
//! substitution ([`Lexer::process_words`]). It is only the lexer: which
//! instructions expand which variables is decided by the lowering stage.
//!
//! Supported forms, with BuildKit's semantics and error messages:
//!
//! | form | meaning |
//! | --- | --- |
//! | `$V`, `${V}` | value of `V`, empty when unset |
//! | `${V:-w}` / `${V-w}` | `w` when `V` is unset or empty / unset |
//! | `${V:+w}` / `${V+w}` | `w` when `V` is set and non-empty / set |
//! | `${V:?m}` / `${V?m}` | error `V: m` when `V` is unset or empty / unset |
//! | `${V#p}` / `${V##p}` | strip the shortest / longest prefix matching `p` |
//! | `${V%p}` / `${V%%p}` | strip the shortest / longest suffix matching `p` |
//! | `${V/p/r}` / `${V//p/r}` | replace the first / every match of `p` by `r` |
//!
//! Patterns know `*`, `?` and `\` escapes only; `[`…`]` are literal, exactly
//! as in BuildKit. Single quotes keep everything literal; double quotes keep
//! everything but `$` and the escapes of `"`, `$` and the escape token.
//! `$1`…, `$@`, `$*`, `$#`, `$?`, `$-`, `$$`, `$!` and `$0` are read as names
//! and so are normally unset. Unlike BuildKit, a word never expands past
//! [`MAX_EXPANDED_LEN`] bytes.
//!
//! ```
//! use std::collections::BTreeMap;
//! use rbk_parser::expand::Lexer;
//!
//! let env = BTreeMap::from([("V".to_string(), "1.2.3".to_string())]);
//! let lex = Lexer::new('\\');
//! assert_eq!(lex.process_word("v${V%.*}-'$V'", &env).unwrap(), "v1.2-$V");
//! assert_eq!(lex.process_words("a \"b c\" $V", &env).unwrap(), ["a", "b c", "1.2.3"]);
//! ```

mod go;
mod pattern;
mod word;

/// The longest expansion of one word, in bytes. BuildKit has no bound, and
/// `${V//p/r}` nested in its own replacement multiplies the length at every
/// level: a 300-byte word reached gigabytes (found by the `expand` fuzz
/// target). Nothing that long could be used anyway: Linux refuses a single
/// argument or environment string over 128 KiB to `execve`.
pub const MAX_EXPANDED_LEN: usize = 1 << 20;

/// The most work one `${V#p}`, `${V%p}` or `${V/p/r}` may ask for: the
/// pattern's length times the value's, in bytes after expansion. A pattern
/// becomes a regular expression, and matching one costs up to that product
/// when the regex crate's lazy DFA gives up: a 4 KiB pattern over a 1 MiB
/// value took 20 s here, and a 1 KiB one over 512 Ki two-byte characters
/// 7 s (BuildKit's Go regexp has the same bound). Words that real
/// Dockerfiles write stay far below it: a 256-byte pattern over 64 KiB.
pub const MAX_PATTERN_WORK: usize = 1 << 24;

/// The longest pattern, in bytes after expansion, whatever its value:
/// compiling one of 1 MiB (nested expansions can build it) took 0.1 s only
/// to fail on the regex crate's size limit.
pub const MAX_PATTERN_LEN: usize = 1 << 16;

use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use go::go_quote;

/// Where variable values come from.
pub trait Env {
    /// The value of `name`, or `None` when it is unset. Names are compared
    /// case-sensitively (BuildKit's Unix behaviour).
    fn get(&self, name: &str) -> Option<&str>;
}

impl Env for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        BTreeMap::get(self, name).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> Env for HashMap<String, String, S> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name).map(String::as_str)
    }
}

/// Pairs in declaration order; a later pair overrides an earlier one.
impl Env for [(String, String)] {
    fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Env for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<&str> {
        Env::get(self.as_slice(), name)
    }
}

/// Builds an environment from `KEY=VALUE` strings like BuildKit's
/// `BuildEnvs`: a string without `=` sets `KEY` to the empty string, and a
/// later entry overrides an earlier one.
pub fn build_envs<I, S>(entries: I) -> BTreeMap<String, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut envs = BTreeMap::new();
    for entry in entries {
        let entry = entry.as_ref();
        let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
        envs.insert(k.to_string(), v.to_string());
    }
    envs
}

/// The variables a word referred to (BuildKit's `ProcessWordResult`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Matches {
    /// Names that were looked up and found set.
    pub matched: BTreeSet<String>,
    /// Names that were looked up and found unset.
    pub unmatched: BTreeSet<String>,
}

/// Why a word could not be expanded. Displays as BuildKit does:
/// `failed to process "WORD": MESSAGE`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {kind}", go_quote(.word))]
#[non_exhaustive]
pub struct ExpandError {
    /// The word as given.
    pub word: String,
    /// What was wrong with it.
    pub kind: ExpandErrorKind,
}

/// The kinds of [`ExpandError`], with BuildKit's messages.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpandErrorKind {
    /// `${` is not closed.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${}`, `${:…}`, `${{…`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// `${V/p` without the second `/`.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// A quote or nested construct is not closed; `what` is `single-quote`,
    /// `double-quote` or the character looked for.
    #[error("unexpected end of statement while looking for matching {what}")]
    Unterminated {
        /// What was looked for.
        what: String,
    },
    /// `${V:=w}`, `${V.}` and other operators BuildKit does not support;
    /// `modifier` is the operator text (`U+FFFD` stands for end of input).
    #[error("unsupported modifier ({modifier}) in substitution")]
    UnsupportedModifier {
        /// The operator as written.
        modifier: String,
    },
    /// `${V?m}` or `${V:?m}` with `V` unset (or empty).
    #[error("{name}: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The user's message, or BuildKit's default.
        message: String,
    },
    /// The expansion grew past [`MAX_EXPANDED_LEN`] bytes.
    #[error("expansion longer than {limit} bytes")]
    TooLong {
        /// The bound, [`MAX_EXPANDED_LEN`].
        limit: usize,
    },
    /// The words of one Dockerfile expanded to more than a caller's bound
    /// in total (lowering's `MAX_LOWERED_TEXT`).
    #[error("the Dockerfile's expansions and RUN environments total more than {limit} bytes")]
    TooMuchInTotal {
        /// The caller's bound.
        limit: usize,
    },
    /// A `#`, `%` or `/` pattern longer than [`MAX_PATTERN_LEN`] bytes, or
    /// whose length times its value's passes [`MAX_PATTERN_WORK`].
    #[error(
        "pattern of {len} bytes over a value of {value_len} bytes in substitution: \
         too costly to match (pattern at most {max_len} bytes, \
         pattern times value at most {max_work} bytes)"
    )]
    PatternTooCostly {
        /// The pattern's length after expansion.
        len: usize,
        /// The length of the value it is matched against.
        value_len: usize,
        /// [`MAX_PATTERN_LEN`].
        max_len: usize,
        /// [`MAX_PATTERN_WORK`].
        max_work: usize,
    },
    /// A `#`, `%` or `/` pattern that cannot be compiled.
    #[error("invalid pattern ({pattern}) in substitution: {reason}")]
    InvalidPattern {
        /// The pattern after expansion.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A word expander configured like BuildKit's `shell.Lex`.
#[derive(Clone, Debug)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_process_quotes: bool,
    skip_unset_env: bool,
}

impl Lexer {
    /// A lexer whose escape token is `escape` (`\` or `` ` ``).
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Keep quote characters in the output (BuildKit's `RawQuotes`).
    pub fn raw_quotes(mut self, on: bool) -> Self {
        self.raw_quotes = on;
        self
    }

    /// Keep escape tokens in the output (BuildKit's `RawEscapes`).
    pub fn raw_escapes(mut self, on: bool) -> Self {
        self.raw_escapes = on;
        self
    }

    /// Treat quotes as ordinary characters (BuildKit's `SkipProcessQuotes`).
    pub fn skip_process_quotes(mut self, on: bool) -> Self {
        self.skip_process_quotes = on;
        self
    }

    /// Leave references to unset variables as written (BuildKit's
    /// `SkipUnsetEnv`), e.g. for expanding only what a stage defines.
    pub fn skip_unset_env(mut self, on: bool) -> Self {
        self.skip_unset_env = on;
        self
    }

    /// The escape token.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Expands `word` into one string; spaces between fields are kept.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ExpandError> {
        // Without `$`, quotes, escapes or a byte-order mark the walk would
        // copy the word unchanged.
        let special = |c: char| matches!(c, '$' | '\'' | '"' | '\u{FEFF}') || c == self.escape;
        if !word.contains(special) {
            return Ok(word.to_string());
        }
        self.run(word, env, word::Wants::WORD).map(|out| out.word)
    }

    /// Expands `word` and splits it into fields on unquoted whitespace,
    /// including whitespace that came from variable values.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ExpandError> {
        self.run(word, env, word::Wants::FIELDS)
            .map(|out| out.words)
    }

    /// Like process_word, also returning the names of variables that were
    /// referenced and which of those were unset (BuildKit's
    /// ProcessWordWithMatches), used for undefined-ARG checks.
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &dyn Env,
    ) -> Result<(String, Matches), ExpandError> {
        self.run(word, env, word::Wants::MATCHES)
            .map(|out| (out.word, out.matches))
    }

    fn run(
        &self,
        word: &str,
        env: &dyn Env,
        wants: word::Wants,
    ) -> Result<word::Output, ExpandError> {
        word::Walker::new(self, word, env, wants)
            .run()
            .map_err(|kind| ExpandError {
                word: word.to_string(),
                kind,
            })
    }
}

impl Default for Lexer {
    /// The Dockerfile default: `\` escapes.
    fn default() -> Self {
        Lexer::new('\\')
    }
}

#[cfg(test)]
mod tests;
