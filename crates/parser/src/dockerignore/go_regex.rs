//! Translates the Go (RE2) regular expressions that patternmatcher builds
//! into the `regex` crate's syntax. The two differ inside `[…]`: Go reads
//! `[` literally and `]` first as a literal, while Rust nests classes and
//! has `&&`/`--`/`~~` operators, so every class is re-emitted with escaped
//! code points. Go's Perl classes (`\d`, `\s`, `\w`) are ASCII-only and are
//! spelled out. `\x`, `\p`, octal and `\Q…\E` escapes are not supported
//! and report an error (Docker would accept some of them).

/// Go regex text to Rust regex text, or why it is invalid.
pub(super) fn translate(go: &str) -> Result<String, &'static str> {
    let chars: Vec<char> = go.chars().collect();
    let mut out = String::with_capacity(go.len() * 2);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\\' => {
                let e = *chars.get(i).ok_or("trailing backslash")?;
                i += 1;
                out.push_str(&top_escape(e)?);
            }
            '[' => i = class(&chars, i, &mut out)?,
            '.' | '*' | '?' | '+' | '(' | ')' | '|' | '^' | '$' => out.push(c),
            c => push_literal(&mut out, c),
        }
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c.is_alphanumeric() || c == '_' {
        out.push(c);
    } else {
        out.push_str(&format!("\\x{{{:X}}}", c as u32));
    }
}

/// `\c` outside a class.
fn top_escape(c: char) -> Result<String, &'static str> {
    if let Some(class) = perl_class(c) {
        return Ok(format!("[{class}]"));
    }
    Ok(match c {
        'b' => "(?-u:\\b)".into(),
        'B' => "(?-u:\\B)".into(),
        'A' => "\\A".into(),
        'z' => "\\z".into(),
        _ => {
            let mut s = String::new();
            push_literal(&mut s, escaped_char(c)?);
            s
        }
    })
}

/// A single character written `\c`: punctuation stands for itself, a few
/// letters for control characters.
fn escaped_char(c: char) -> Result<char, &'static str> {
    match c {
        'a' => Ok('\u{7}'),
        'f' => Ok('\u{c}'),
        't' => Ok('\t'),
        'n' => Ok('\n'),
        'r' => Ok('\r'),
        'v' => Ok('\u{b}'),
        c if c.is_ascii_punctuation() => Ok(c),
        _ => Err("invalid escape sequence"),
    }
}

/// Go's ASCII Perl classes, as the contents of a Rust class.
fn perl_class(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "0-9",
        'D' => "^0-9",
        's' => "\\x{9}\\x{A}\\x{C}\\x{D}\\x{20}",
        'S' => "^\\x{9}\\x{A}\\x{C}\\x{D}\\x{20}",
        'w' => "0-9A-Za-z_",
        'W' => "^0-9A-Za-z_",
        _ => return None,
    })
}

const POSIX: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// A class whose `[` is just before `i`; appends it and returns the index
/// after its `]`, following Go's `parseClass`.
fn class(chars: &[char], mut i: usize, out: &mut String) -> Result<usize, &'static str> {
    let mut items = String::new();
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut first = true;
    loop {
        let c = *chars.get(i).ok_or("missing closing ]")?;
        if c == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        if let Some(next) = named_class(chars, i, &mut items)? {
            i = next;
            continue;
        }
        if c == '\\' {
            if let Some(class) = chars.get(i + 1).and_then(|&e| perl_class(e)) {
                items.push_str(&format!("[{class}]"));
                i += 2;
                continue;
            }
        }
        let (lo, next) = class_char(chars, i)?;
        i = next;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&c| c != ']') {
            (hi, i) = class_char(chars, i + 1)?;
            if hi < lo {
                return Err("invalid character class range");
            }
        }
        items.push_str(&format!("\\x{{{:X}}}-\\x{{{:X}}}", lo as u32, hi as u32));
    }
    out.push('[');
    if negated {
        out.push('^');
    }
    out.push_str(&items);
    out.push(']');
    Ok(i)
}

/// `[:name:]` at `i`: Some(next index) when it is one.
fn named_class(
    chars: &[char],
    i: usize,
    items: &mut String,
) -> Result<Option<usize>, &'static str> {
    if chars.get(i) != Some(&'[') || chars.get(i + 1) != Some(&':') {
        return Ok(None);
    }
    let rest: String = chars[i + 2..].iter().collect();
    let Some(end) = rest.find(":]") else {
        return Ok(None);
    };
    let name = &rest[..end];
    let bare = name.strip_prefix('^').unwrap_or(name);
    if !POSIX.contains(&bare) {
        return Err("invalid character class range");
    }
    items.push_str(&format!("[[:{name}:]]"));
    Ok(Some(i + 2 + rest[..end].chars().count() + 2))
}

/// One class character at `i` (possibly escaped) and the index after it.
fn class_char(chars: &[char], i: usize) -> Result<(char, usize), &'static str> {
    match chars.get(i) {
        None => Err("missing closing ]"),
        Some('\\') => {
            let e = *chars.get(i + 1).ok_or("trailing backslash")?;
            Ok((escaped_char(e)?, i + 2))
        }
        Some(&c) => Ok((c, i + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_match(go: &str, s: &str) -> bool {
        regex::Regex::new(&translate(go).unwrap())
            .unwrap()
            .is_match(s)
    }

    #[test]
    fn classes_follow_go() {
        assert!(is_match("^[[]$", "["));
        assert!(is_match("^[]a]$", "]"));
        assert!(is_match("^[^a]$", "b") && !is_match("^[^a]$", "a"));
        assert!(is_match("^[a-c&&]$", "&"));
        assert!(is_match("^[[:digit:]x]$", "7"));
        assert!(is_match("^[\\d]$", "7") && !is_match("^[\\d]$", "٣"));
        assert!(is_match("^[[^/]*]$", "]") && is_match("^[[^/]*]$", "^^]"));
        assert!(translate("^[l-O]$").is_err());
        assert!(translate("^[a").is_err());
        assert!(translate("^[[:nope:]]$").is_err());
    }

    #[test]
    fn escapes_follow_go() {
        assert!(is_match("^a\\.b$", "a.b") && !is_match("^a\\.b$", "axb"));
        assert!(is_match("^\\<$", "<"));
        assert!(is_match("^\\d$", "1") && !is_match("^\\d$", "١"));
        assert!(translate("\\x41").is_err());
        assert!(translate("a\\").is_err());
    }
}
