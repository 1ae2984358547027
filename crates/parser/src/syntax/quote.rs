//! Go's `strconv.Quote`, `%q` of a `[]string` and `strings.ToLower`, which
//! [`Node::dump`](super::Node::dump) needs to print exactly what BuildKit prints.

/// `strconv.Quote(s)`: a double-quoted Go string literal.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ if is_print(c) => out.push(c),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            _ if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            _ if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            _ => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// `fmt.Sprintf("%q", []string{...})`: `["a" "b"]`.
pub(crate) fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// `strings.ToLower`: Go maps rune by rune with the simple case mapping.
pub(crate) fn go_lower(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

/// `unicode.IsSpace` on the rune made from a single byte, as Go code does
/// when it indexes a string (`rune(line[pos])`).
pub(crate) fn is_space_byte(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0)
}

/// `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols
/// (general categories L, M, N, P, S) and U+0020. The tables are Unicode
/// 15.0, as in Go's `unicode` package.
fn is_print(c: char) -> bool {
    use unicode_general_category::{get_general_category, GeneralCategory as G};
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    !matches!(
        get_general_category(c),
        G::Control
            | G::Format
            | G::Surrogate
            | G::PrivateUse
            | G::Unassigned
            | G::SpaceSeparator
            | G::LineSeparator
            | G::ParagraphSeparator
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("abc"), r#""abc""#);
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            go_quote("\u{7}\u{8}\u{c}\n\r\t\u{b}"),
            r#""\a\b\f\n\r\t\v""#
        );
        assert_eq!(go_quote("\u{1}\u{7f}"), r#""\x01\x7f""#);
        assert_eq!(go_quote("héllo 世界 🎉"), "\"héllo 世界 🎉\"");
        assert_eq!(
            go_quote("\u{a0}\u{2028}\u{feff}"),
            r#""\u00a0\u2028\ufeff""#
        );
        assert_eq!(go_quote("\u{85}"), r#""\u0085""#);
        assert_eq!(go_quote("\u{f0000}"), r#""\U000f0000""#);
        assert_eq!(go_quote(""), r#""""#);
        // Unassigned (U+0378, U+E01F0), format (U+0605) and private-use
        // code points are escaped; marks and symbols are not.
        assert_eq!(
            go_quote("\u{378}\u{605}\u{e000}\u{e01f0}"),
            r#""\u0378\u0605\ue000\U000e01f0""#
        );
        assert_eq!(
            go_quote("e\u{301}\u{2603}\u{1f600}"),
            "\"e\u{301}\u{2603}\u{1f600}\""
        );
    }

    #[test]
    fn quotes_lists_like_go() {
        let flags = vec!["--from=a".to_string(), "--chown=1".to_string()];
        assert_eq!(go_quote_list(&flags), r#"["--from=a" "--chown=1"]"#);
    }

    #[test]
    fn lowers_like_go() {
        assert_eq!(go_lower("RUN"), "run");
        assert_eq!(go_lower("ONBU\u{130}LD"), "onbuild");
        assert_eq!(go_lower("WOR\u{212a}DIR"), "workdir");
    }
}
