//! One `.dockerignore` pattern, compiled as `patternmatcher.Pattern` does:
//! plain text is compared exactly, `x/**` and `**x` use prefix and suffix
//! tests, and everything else becomes a Go regular expression, which is
//! translated here into the `regex` crate's syntax.

use std::sync::OnceLock;

use regex::Regex;

use super::go_regex;

/// Go's `filepath.ErrBadPattern`, the message Docker reports.
pub(super) const BAD: &str = "syntax error in pattern";

#[derive(Clone, Debug)]
enum Kind {
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// The regex, compiled when first used alone (matching goes through
    /// the `Dockerignore`'s set, so most never are), and its `regex`-crate
    /// source (for the set). A source that does not compile matches nothing;
    /// `Dockerignore` refuses such patterns when it builds its set.
    Regex(OnceLock<Option<Regex>>, String),
}

/// A compiled pattern.
#[derive(Clone, Debug)]
pub(super) struct Pattern {
    pub(super) exclusion: bool,
    /// The cleaned pattern without its `!`.
    text: String,
    kind: Kind,
}

impl Pattern {
    /// `cleaned` is already trimmed and cleaned; it may start with `!`.
    pub(super) fn new(cleaned: &str) -> Result<Self, String> {
        let (exclusion, text) = match cleaned.strip_prefix('!') {
            Some("") => return Err("illegal exclusion pattern: \"!\"".into()),
            Some(rest) => (true, rest),
            None => (false, cleaned),
        };
        validate_glob(text)?;
        let kind = compile(text)?;
        Ok(Pattern {
            exclusion,
            text: text.to_string(),
            kind,
        })
    }

    pub(super) fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact(s) => path == s,
            Kind::Prefix(s) => path.starts_with(s.as_str()),
            // `**/foo` also matches `foo` itself.
            Kind::Suffix(s) => path.ends_with(s.as_str()) || s.strip_prefix('/') == Some(path),
            Kind::Regex(re, source) => re
                .get_or_init(|| Regex::new(source).ok())
                .as_ref()
                .is_some_and(|re| re.is_match(path)),
        }
    }

    /// Whether this pattern's regex compiles on its own (what makes a
    /// pattern valid; only asked when the set of all of them failed).
    pub(super) fn compiles(&self) -> bool {
        match &self.kind {
            Kind::Regex(_, source) => Regex::new(source).is_ok(),
            _ => true,
        }
    }

    /// The `regex`-crate source of a regex pattern (`None` for the exact,
    /// prefix and suffix kinds, which are plain string tests).
    pub(super) fn regex_source(&self) -> Option<&str> {
        match &self.kind {
            Kind::Regex(_, source) => Some(source),
            _ => None,
        }
    }

    /// Could this pattern match `dirs/…` or one of `dirs`' ancestors (which,
    /// by the parent rule, covers everything under `dirs`)?
    pub(super) fn may_match_under(&self, dirs: &[&str]) -> bool {
        let parts: Vec<&str> = self.text.split('/').collect();
        for (i, dir) in dirs.iter().enumerate() {
            let Some(part) = parts.get(i) else {
                return true;
            };
            if part.contains("**") {
                return true;
            }
            // A component that does not compile on its own (a class
            // spanning a `/`) cannot be ruled out.
            let fits = Pattern::new(part).map_or(true, |p| p.matches(dir));
            if !fits {
                return false;
            }
        }
        true
    }
}

/// The type and Go regex of a pattern, as `Pattern.compile` picks them;
/// like Go, each construct overwrites the type chosen so far.
fn compile(pattern: &str) -> Result<Kind, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut detected = Hint::Exact;
    let mut i = 0;
    for step in 0.. {
        let Some(&ch) = chars.get(i) else { break };
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                // `**/` is treated as `**`.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i < chars.len() {
                    re.push_str("(.*/)?");
                    detected = Hint::Regex;
                } else if detected == Hint::Exact {
                    detected = Hint::Prefix;
                } else {
                    re.push_str(".*");
                    detected = Hint::Regex;
                }
                if step == 0 {
                    detected = Hint::Suffix;
                }
            }
            '*' | '?' => {
                re.push_str(if ch == '*' { "[^/]*" } else { "[^/]" });
                detected = Hint::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => {
                re.push('\\');
                if let Some(&next) = chars.get(i) {
                    i += 1;
                    re.push(next);
                    detected = Hint::Regex;
                }
            }
            '[' | ']' => {
                re.push(ch);
                detected = Hint::Regex;
            }
            c => re.push(c),
        }
    }
    finish(pattern, detected, re)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Hint {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

fn finish(pattern: &str, hint: Hint, mut re: String) -> Result<Kind, String> {
    Ok(match hint {
        Hint::Exact => Kind::Exact(pattern.to_string()),
        Hint::Prefix => Kind::Prefix(pattern[..pattern.len() - 2].to_string()),
        Hint::Suffix => Kind::Suffix(pattern[2..].to_string()),
        Hint::Regex => {
            re.push('$');
            let rust = go_regex::translate(&re).map_err(|_| BAD.to_string())?;
            Kind::Regex(OnceLock::new(), rust)
        }
    })
}

/// The syntax check of Go's `filepath.Match`: classes must be closed and
/// non-empty, range ends present, and `\` must escape something.
fn validate_glob(pattern: &str) -> Result<(), String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err(BAD.into());
                }
                i += 2;
            }
            '[' => i = validate_class(&chars, i + 1).ok_or(BAD)?,
            _ => i += 1,
        }
    }
    Ok(())
}

/// Checks a class starting after `[`; returns the index after its `]`.
fn validate_class(chars: &[char], mut i: usize) -> Option<usize> {
    if chars.get(i) == Some(&'^') {
        i += 1;
    }
    let mut ranges = 0;
    loop {
        if chars.get(i) == Some(&']') && ranges > 0 {
            return Some(i + 1);
        }
        i = class_end(chars, i)?;
        if chars.get(i) == Some(&'-') {
            i = class_end(chars, i + 1)?;
        }
        ranges += 1;
    }
}

/// Go's `getEsc`: one (possibly escaped) class character, which must be
/// followed by more pattern.
fn class_end(chars: &[char], mut i: usize) -> Option<usize> {
    match chars.get(i)? {
        '-' | ']' => return None,
        '\\' => i += 1,
        _ => {}
    }
    chars.get(i)?;
    (i + 1 < chars.len()).then_some(i + 1)
}
