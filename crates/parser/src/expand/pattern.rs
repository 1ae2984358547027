//! Shell patterns in `${V#p}`, `${V%p}` and `${V/p/r}`, as BuildKit
//! implements them: translated to a regular expression with `*` and `?`
//! as wildcards and every other character literal (no `[…]` classes).

use regex::Regex;

use super::go::{is_go_digit, is_go_letter};
use super::word::too_long;
use super::{ExpandErrorKind as Fault, MAX_PATTERN_LEN, MAX_PATTERN_WORK};

/// Translates `pattern`; `greedy` picks `.*` over `.*?` for `*`, and
/// `anchored` matches only at the start.
fn to_regex(pattern: &str, greedy: bool, anchored: bool) -> Result<Regex, Fault> {
    let mut out = String::with_capacity(pattern.len() + 4);
    if anchored {
        out.push('^');
    }
    // Go's text/scanner drops a leading byte-order mark here too.
    let body = pattern.strip_prefix('\u{FEFF}').unwrap_or(pattern);
    let mut chars = body.chars().peekable();
    while let Some(tok) = chars.next() {
        match tok {
            '*' => out.push_str(if greedy { ".*" } else { ".*?" }),
            '?' => out.push('.'),
            '\\' => {
                // `\}` and `\/` only protect the delimiters of `${…}`; the
                // backslash is not part of the pattern.
                if matches!(chars.peek(), Some('}' | '/')) {
                    continue;
                }
                let next = chars.next();
                match next {
                    Some(c @ ('*' | '?' | '\\')) => {
                        out.push('\\');
                        out.push(c);
                    }
                    other => {
                        let c = other.unwrap_or('\u{FFFD}');
                        return Err(invalid(pattern, format!("invalid escape '\\{c}'")));
                    }
                }
            }
            '[' | ']' | '{' | '}' | '.' | '+' | '(' | ')' | '|' | '^' | '$' => {
                out.push('\\');
                out.push(tok);
            }
            c => out.push(c),
        }
    }
    Regex::new(&out).map_err(|e| invalid(pattern, e.to_string()))
}

fn invalid(pattern: &str, reason: String) -> Fault {
    Fault::InvalidPattern {
        pattern: pattern.to_string(),
        reason,
    }
}

/// Refuses a match whose cost could run away (see [`MAX_PATTERN_WORK`]).
fn check_cost(pattern: &str, value: &str) -> Result<(), Fault> {
    let (len, value_len) = (pattern.len(), value.len());
    match len > MAX_PATTERN_LEN || len.saturating_mul(value_len) > MAX_PATTERN_WORK {
        true => Err(Fault::PatternTooCostly {
            len,
            value_len,
            max_len: MAX_PATTERN_LEN,
            max_work: MAX_PATTERN_WORK,
        }),
        false => Ok(()),
    }
}

/// `${V#p}` (shortest) and `${V##p}` (longest, `greedy`).
pub(super) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, Fault> {
    check_cost(pattern, value)?;
    let re = to_regex(pattern, greedy, true)?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_string(),
        None => value.to_string(),
    })
}

/// `${V%p}` and `${V%%p}`. A regex cannot find the shortest rightmost
/// match, so, like BuildKit, both the pattern and the value are reversed
/// and a prefix is trimmed instead.
pub(super) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, Fault> {
    let reversed: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

/// Reverses a pattern but keeps each `\x` escape pair in order.
fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; chars.len()];
    let last = chars.len().saturating_sub(1);
    let mut i = 0;
    while i < chars.len() {
        let at = last - i;
        if chars[i] == '\\' && i != last {
            out[at - 1] = '\\';
            out[at] = chars[i + 1];
            i += 2;
        } else {
            out[at] = chars[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// `${V/p/r}` replaces the first match literally; `${V//p/r}` replaces every
/// match and, because BuildKit uses Go's `ReplaceAllString`, expands `$0`
/// (the match), `$$` and other `$name` references (to nothing) in `r`.
pub(super) fn replace(
    pattern: &str,
    value: &str,
    replacement: &str,
    all: bool,
) -> Result<String, Fault> {
    check_cost(pattern, value)?;
    let re = to_regex(pattern, true, false)?;
    if !all {
        return Ok(match re.find(value) {
            Some(m) => {
                too_long(value.len() - m.len() + replacement.len())?;
                format!("{}{replacement}{}", &value[..m.start()], &value[m.end()..])
            }
            None => value.to_string(),
        });
    }
    let mut out = String::with_capacity(value.len());
    let mut last = 0;
    for m in re.find_iter(value) {
        out.push_str(&value[last..m.start()]);
        go_expand(&mut out, replacement, m.as_str());
        // Checked as it grows: every match (an empty pattern matches
        // between all characters) adds a whole replacement.
        too_long(out.len())?;
        last = m.end();
    }
    out.push_str(&value[last..]);
    too_long(out.len())?;
    Ok(out)
}

/// Go's `Regexp.Expand` for a regex without capture groups.
fn go_expand(out: &mut String, template: &str, whole: &str) {
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match extract_name(rest) {
            Some((name, after)) => {
                if name == "0" {
                    out.push_str(whole);
                }
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// A `name` or `{name}` reference at the start of `s`, and what follows.
fn extract_name(s: &str) -> Option<(&str, &str)> {
    let (brace, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let len = body
        .char_indices()
        .find(|&(_, c)| !is_go_letter(c) && !is_go_digit(c) && c != '_')
        .map_or(body.len(), |(i, _)| i);
    if len == 0 {
        return None;
    }
    let (name, after) = body.split_at(len);
    if !brace {
        return Some((name, after));
    }
    after.strip_prefix('}').map(|after| (name, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_translation() {
        let cases = [
            ("*", "^.*"),
            ("?", "^."),
            ("\\*", "^\\*"),
            (
                "(()[]{\\}^$.\\*\\?|\\\\",
                "^\\(\\(\\)\\[\\]\\{\\}\\^\\$\\.\\*\\?\\|\\\\",
            ),
        ];
        for (pattern, expected) in cases {
            assert_eq!(to_regex(pattern, true, true).unwrap().as_str(), expected);
        }
        for bad in ["\\", "\\x", "\\\\\\"] {
            assert!(to_regex(bad, true, true).is_err(), "{bad}");
        }
        assert_eq!(
            to_regex("\\", true, true).unwrap_err().to_string(),
            "invalid pattern (\\) in substitution: invalid escape '\\\u{FFFD}'"
        );
    }

    #[test]
    fn pattern_reversal_keeps_escapes() {
        let cases = [
            ("a\\*c", "c\\*a"),
            ("\\\\\\ab", "b\\a\\\\"),
            ("ab\\", "\\ba"),
            ("\\\\b", "b\\\\"),
        ];
        for (pattern, expected) in cases {
            assert_eq!(reverse_pattern(pattern), expected);
        }
        assert_eq!(reverse_pattern("👽\\🚀🖖"), "🖖\\🚀👽");
        assert_eq!(reverse_pattern(""), "");
    }

    #[test]
    fn replace_all_expands_like_go() {
        let r = |p, v, t| replace(p, v, t, true).unwrap();
        assert_eq!(r("b", "abcb", "[$0]"), "a[b]c[b]");
        assert_eq!(r("b", "abc", "$$x"), "a$xc");
        assert_eq!(r("b", "abc", "$1${x}"), "ac");
        assert_eq!(r("b", "abc", "${x"), "a${xc");
        assert_eq!(r("b", "abc", "$-"), "a$-c");
        assert_eq!(r("", "ab", "-"), "-a-b-");
        assert_eq!(replace("b", "abcb", "$0", false).unwrap(), "a$0cb");
    }
}
