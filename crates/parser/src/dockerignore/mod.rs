//! `.dockerignore` matching with Docker's rules (`moby/patternmatcher` and
//! its `ignorefile.ReadAll`).
//!
//! Reading a file ([`Dockerignore::parse`]): lines starting with `#` are
//! comments (only in the first column: ` #x` is a pattern), blank lines are
//! skipped, every line is trimmed, a UTF-8 BOM on the first line is dropped,
//! and each pattern is cleaned like Go's `filepath.Clean` (`./a//b/` is
//! `a/b`, `a/../b` is `b`) with one leading `/` removed.
//!
//! Matching ([`Dockerignore::is_excluded`]), like `MatchesOrParentMatches`:
//! patterns are tried in order and the **last** one that matches wins; a
//! pattern starting with `!` re-includes what it matches. A pattern matches
//! a path when it matches the path itself **or any of its parent
//! directories**, so `build` excludes `build/x/y`. `*` and `?` do not cross
//! `/`; `**` crosses any number of directories (`**/x`, `a/**/b`, `a/**`);
//! `[…]` is a character class and `\` escapes the next character.
//!
//! Re-including under an excluded directory: `!build/keep` after `build`
//! brings back `build/keep` (and, through the parent rule, everything under
//! it), while the rest of `build/` stays excluded. A walker therefore may
//! only skip an excluded directory wholesale when
//! [`Dockerignore::may_reinclude_under`] says no `!` pattern can match
//! anything beneath it; the check is conservative (it may say "maybe" for a
//! directory whose children end up excluded anyway).
//!
//! The verdict is the polarity of the *last* pattern that matches the path
//! or a parent (skipping patterns that cannot change the verdict, as
//! patternmatcher does, gives the same result). So rbk evaluates every
//! regex pattern in one pass of a [`regex::RegexSet`] per candidate (the
//! path and each parent, all slices of the path), and the plain exact,
//! prefix and suffix patterns by string tests: a 200-pattern file costs a
//! handful of set scans per path instead of a regex per pattern and parent
//! (issue 19: a 30,000-file monorepo spent most of a no-op rebuild here).
//! The verdict of a path's parents is the same for every file of a
//! directory, so it is remembered per directory: a walk matches each file's
//! own path once, and each directory once.
//!
//! Invalid patterns (an unterminated `[`, a reversed range such as
//! `[Local-Only]`, a trailing `\`, a lone `!`) are reported as
//! [`Error::Dockerignore`] naming the line, never a panic. Docker finds some
//! of these only when matching; rbk reports them all up front.
//!
//! ```
//! use rbk_parser::Dockerignore;
//!
//! let ignore = Dockerignore::parse("# build output\n/target\n*.log\n!keep.log\n", ".dockerignore").unwrap();
//! assert_eq!(ignore.patterns(), ["target", "*.log", "!keep.log"]);
//! assert!(ignore.is_excluded("target/debug/rbk"));
//! assert!(ignore.is_excluded("a.log") && !ignore.is_excluded("keep.log"));
//! assert!(!ignore.is_excluded("src/a.log"));
//! ```

mod go_regex;
mod pattern;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::{Error, Location};
use pattern::Pattern;

/// Go's `bufio.Scanner` refuses longer lines.
const MAX_LINE: usize = 64 * 1024;

/// Directories whose verdict is remembered, at most (a hostile context may
/// nest deep chains of long names; past this, verdicts are computed again).
const MAX_REMEMBERED: usize = 1 << 16;

/// A parsed `.dockerignore`.
#[derive(Debug)]
pub struct Dockerignore {
    patterns: Vec<String>,
    compiled: Vec<Pattern>,
    /// Every regex pattern, in one set.
    set: regex::RegexSet,
    /// The index in `compiled` of each member of `set`.
    set_index: Vec<usize>,
    /// The indices of the patterns that are not regexes.
    plain: Vec<usize>,
    /// By directory: the last pattern matching it or one of its parents.
    dirs: Mutex<HashMap<String, Option<usize>>>,
}

impl Clone for Dockerignore {
    fn clone(&self) -> Self {
        Dockerignore {
            patterns: self.patterns.clone(),
            compiled: self.compiled.clone(),
            set: self.set.clone(),
            set_index: self.set_index.clone(),
            plain: self.plain.clone(),
            dirs: Mutex::default(),
        }
    }
}

impl Dockerignore {
    /// Reads `.dockerignore` text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, Error> {
        let mut lines = Vec::new();
        for (i, line) in text.split('\n').enumerate() {
            let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
            if line.len() > MAX_LINE {
                return Err(bad(
                    file,
                    number,
                    "",
                    "error reading .dockerignore: bufio.Scanner: token too long",
                ));
            }
            let line = if i == 0 {
                line.strip_prefix('\u{FEFF}').unwrap_or(line)
            } else {
                line
            };
            if let Some(p) = normalise_line(line.strip_suffix('\r').unwrap_or(line)) {
                lines.push((number, line.trim().to_string(), p));
            }
        }
        Self::build(file, lines)
    }

    /// Uses patterns as given, like `patternmatcher.New` (no comment
    /// handling; each is trimmed and cleaned). Errors name the 1-based index.
    pub fn from_patterns(patterns: &[String]) -> Result<Self, Error> {
        let lines = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    u32::try_from(i + 1).unwrap_or(u32::MAX),
                    p.trim().to_string(),
                    p.clone(),
                )
            })
            .collect();
        Self::build("<patterns>", lines)
    }

    /// `lines` holds (line number, pattern as written, pattern to use).
    fn build(file: &str, lines: Vec<(u32, String, String)>) -> Result<Self, Error> {
        let mut patterns = Vec::new();
        let mut compiled = Vec::new();
        let mut written_at = Vec::new();
        for (number, written, text) in lines {
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let cleaned = clean(text);
            let p = Pattern::new(&cleaned).map_err(|m| bad(file, number, &written, &m))?;
            patterns.push(cleaned);
            compiled.push(p);
            written_at.push((number, written));
        }
        let (regexes, plain): (Vec<usize>, Vec<usize>) =
            (0..compiled.len()).partition(|&i| compiled[i].regex_source().is_some());
        let sources = regexes.iter().filter_map(|&i| compiled[i].regex_source());
        // Only the set is compiled (each regex alone cost three times the
        // set: issue 19). When it fails, the first pattern that does not
        // compile alone is the one to name.
        let set = regex::RegexSetBuilder::new(sources)
            .size_limit(256 << 20)
            .dfa_size_limit(64 << 20)
            .build()
            .map_err(|e| {
                let culprit = regexes.iter().find(|&&i| !compiled[i].compiles());
                match culprit {
                    Some(&i) => {
                        let (number, written) = &written_at[i];
                        bad(file, *number, written, pattern::BAD)
                    }
                    None => bad(file, 0, "", &format!("too many patterns: {e}")),
                }
            })?;
        Ok(Dockerignore {
            patterns,
            compiled,
            set,
            set_index: regexes,
            plain,
            dirs: Mutex::default(),
        })
    }

    /// The patterns, normalised as `ReadAll` returns them (with their `!`).
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `path` (relative to the context root, `/`-separated) is left
    /// out of the build context.
    pub fn is_excluded(&self, path: &str) -> bool {
        // A walker's paths are clean already; cleaning each one again was a
        // third of this function in a 300,000-file no-op (issue 19).
        let path = match is_clean(path) {
            true => Cow::Borrowed(path),
            false => Cow::Owned(clean(path)),
        };
        let path = path.trim_start_matches('/');
        if path.is_empty() || path == "." {
            // Docker never excludes the context root itself.
            return false;
        }
        // The last pattern matching the path or one of its parents.
        let last = match path.rfind('/') {
            Some(at) => self.last_match(path).max(self.dir_match(&path[..at])),
            None => self.last_match(path),
        };
        last.is_some_and(|i| !self.compiled[i].exclusion)
    }

    /// The last pattern matching `candidate` itself (not its parents).
    fn last_match(&self, candidate: &str) -> Option<usize> {
        let last = self
            .set
            .matches(candidate)
            .iter()
            .next_back()
            .map(|m| self.set_index[m]);
        for &i in self.plain.iter().rev() {
            if last > Some(i) {
                break;
            }
            if self.compiled[i].matches(candidate) {
                return Some(i);
            }
        }
        last
    }

    /// The last pattern matching directory `dir` or one of its parents,
    /// remembered per directory. Iterative, so a deep tree cannot exhaust
    /// the stack.
    fn dir_match(&self, dir: &str) -> Option<usize> {
        let mut dirs = self.dirs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = dirs.get(dir) {
            return *v;
        }
        // The nearest remembered ancestor-or-self, then down from there.
        let mut ends: Vec<usize> = dir.match_indices('/').map(|(at, _)| at).collect();
        ends.push(dir.len());
        let mut known = None;
        let mut from = 0;
        for (n, &end) in ends.iter().enumerate().rev() {
            if let Some(v) = dirs.get(&dir[..end]) {
                known = *v;
                from = n + 1;
                break;
            }
        }
        for &end in &ends[from..] {
            let prefix = &dir[..end];
            known = known.max(self.last_match(prefix));
            if dirs.len() < MAX_REMEMBERED {
                dirs.insert(prefix.to_string(), known);
            }
        }
        known
    }

    /// True when a directory's descendants might be re-included by a later
    /// `!` pattern, so a walker must not skip the directory wholesale.
    pub fn may_reinclude_under(&self, dir: &str) -> bool {
        let dir = clean(dir);
        let dir = dir.trim_start_matches('/');
        let dirs: Vec<&str> = dir
            .split('/')
            .filter(|d| !d.is_empty() && *d != ".")
            .collect();
        self.compiled
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| p.may_match_under(&dirs))
    }
}

/// One line as `ReadAll` turns it into a pattern, or `None` to skip it.
fn normalise_line(line: &str) -> Option<String> {
    if line.starts_with('#') {
        return None;
    }
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let (invert, body) = match line.strip_prefix('!') {
        Some(rest) => (true, rest.trim()),
        None => (false, line),
    };
    let mut body = if body.is_empty() {
        String::new()
    } else {
        clean(body)
    };
    if body.len() > 1 && body.starts_with('/') {
        body.remove(0);
    }
    Some(if invert { format!("!{body}") } else { body })
}

fn bad(file: &str, line: u32, pattern: &str, message: &str) -> Error {
    Error::Dockerignore {
        location: Location::lines(file, line, line),
        pattern: pattern.to_string(),
        message: message.to_string(),
    }
}

/// Whether `clean` would return `path` unchanged: relative, and no
/// component empty, `.` or `..`.
fn is_clean(path: &str) -> bool {
    !path.is_empty() && path.split('/').all(|c| !matches!(c, "" | "." | ".."))
}

/// Go's `filepath.Clean` on Unix.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match out.last() {
                Some(&last) if last != ".." => {
                    out.pop();
                }
                _ if rooted => {}
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests;
