//! Wildcards in COPY/ADD sources, with Go's `path.Match` rules (what
//! BuildKit uses): `*` is any run of characters except `/`, `?` one
//! character except `/`, `[a-z]` / `[^a-z]` a class, `\` escapes the next
//! character. A pattern is matched one path component at a time.

/// A malformed pattern (an unclosed `[`, a trailing `\`, a bad range).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadPattern(pub String);

impl std::fmt::Display for BadPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "syntax error in pattern {:?}", self.0)
    }
}

/// Whether `s` contains any wildcard metacharacter.
pub fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

/// Whether `path` matches `pattern` as a whole, component by component
/// (both `/`-separated; leading and repeated `/` are ignored). A `**`
/// component matches any number of components, none included, as in Go's
/// patternmatcher (what BuildKit's `--exclude` and `**` sources use).
pub fn match_path(pattern: &str, path: &str) -> Result<bool, BadPattern> {
    for component in components(pattern) {
        let chars: Vec<char> = component.chars().collect();
        validate(&chars).ok_or_else(|| BadPattern(pattern.to_string()))?;
    }
    let pat: Vec<&str> = components(pattern).collect();
    let name: Vec<&str> = components(path).collect();
    // The component-level twin of `match_component`: one backtrack point,
    // the last `**`, which takes one more component on each retry.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pat.len() && pat[p] == "**" {
            star = Some((p, n));
            p += 1;
            continue;
        }
        if p < pat.len() && match_component(pat[p], name[n])? {
            p += 1;
            n += 1;
            continue;
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return Ok(false),
        }
    }
    Ok(pat[p..].iter().all(|c| *c == "**"))
}

fn components(s: &str) -> impl Iterator<Item = &str> {
    s.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// Whether one path component `name` matches the single-component `pattern`.
pub fn match_component(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let bad = || BadPattern(pattern.to_string());
    let pat: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = name.chars().collect();
    // Iterative matcher with one backtrack point for the last `*`.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pat.len() {
            match pat[p] {
                '*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                '?' if text[t] != '/' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                '[' => {
                    let (matched, next) = match_class(&pat, p, text[t]).ok_or_else(bad)?;
                    if matched {
                        p = next;
                        t += 1;
                        continue;
                    }
                }
                '\\' => {
                    let c = *pat.get(p + 1).ok_or_else(bad)?;
                    if c == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c if c == text[t] && c != '?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) if text[st] != '/' => {
                star = Some((sp, st + 1));
                p = sp + 1;
                t = st + 1;
            }
            _ => {
                validate(&pat).ok_or_else(bad)?;
                return Ok(false);
            }
        }
    }
    while p < pat.len() && pat[p] == '*' {
        p += 1;
    }
    validate(&pat).ok_or_else(bad)?;
    Ok(p == pat.len())
}

/// Matches `c` against the class starting at `pat[start] == '['`; returns
/// whether it matched and the index after the closing `]`, or `None` for a
/// malformed class.
fn match_class(pat: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negated = pat.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let lo = *pat.get(i)?;
        if lo == ']' && !first {
            return Some((matched != negated, i + 1));
        }
        first = false;
        let (lo, next) = class_char(pat, i)?;
        i = next;
        let mut hi = lo;
        if pat.get(i) == Some(&'-') && pat.get(i + 1).is_some_and(|c| *c != ']') {
            let (h, next) = class_char(pat, i + 1)?;
            if h < lo {
                return None;
            }
            hi = h;
            i = next;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
}

fn class_char(pat: &[char], i: usize) -> Option<(char, usize)> {
    match *pat.get(i)? {
        '\\' => Some((*pat.get(i + 1)?, i + 2)),
        '-' | ']' => None,
        c => Some((c, i + 1)),
    }
}

/// Checks the whole pattern's syntax, as Go does once a match fails, so a
/// malformed pattern is an error whatever the name.
fn validate(pat: &[char]) -> Option<()> {
    let mut i = 0;
    while i < pat.len() {
        match pat[i] {
            '\\' => {
                pat.get(i + 1)?;
                i += 2;
            }
            '[' => {
                let (_, next) = match_class(pat, i, '\0')?;
                i = next;
            }
            _ => i += 1,
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_star_matches_any_number_of_directories() {
        for (pattern, path, want) in [
            ("**/*.txt", "a.txt", true),
            ("**/*.txt", "x/y/c.txt", true),
            ("**/*.txt", "x/keep.md", false),
            ("src/**/*.txt", "src/a.txt", true),
            ("src/**/*.txt", "src/x/y/c.txt", true),
            ("src/**/*.txt", "other/a.txt", false),
            ("src/**", "src", true),
            ("src/**", "src/x/y", true),
            ("a/**/b/**/c", "a/b/c", true),
            ("a/**/b/**/c", "a/x/b/y/z/c", true),
            ("a/**/b/**/c", "a/x/c", false),
            ("**", "anything/at/all", true),
        ] {
            assert_eq!(match_path(pattern, path), Ok(want), "{pattern} vs {path}");
        }
    }

    #[test]
    fn go_path_match_cases() {
        // (pattern, name, matches) — the cases of Go's path.Match documentation
        // and tests that apply to single components.
        let cases = [
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*/b", "abc/b", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "x", true),
            ("*x", "xxx", true),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(match_path(pattern, name), Ok(want), "{pattern} vs {name}");
        }
    }

    #[test]
    fn malformed_patterns_are_errors() {
        for (pattern, name) in [
            ("[]a]", "]"),
            ("[-]", "-"),
            ("[x-]", "x"),
            ("[a-b-c]", "a"),
            ("[", "a"),
            ("[^", "a"),
            ("[^bc", "a"),
            ("a[", "a"),
            ("a[", "ab"),
            ("a[", "x"),
            ("a/b[", "x"),
            ("*x\\", "xxx"),
        ] {
            assert!(match_path(pattern, name).is_err(), "{pattern} vs {name}");
        }
        assert!(!has_wildcard("plain/file.txt"));
        assert!(has_wildcard("src/*.rs"));
    }
}
