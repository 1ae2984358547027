//! Small pieces of Go's standard library whose exact behaviour shows in
//! BuildKit's output: `%q` quoting and the `unicode` letter/digit tests.

/// Go's `unicode.IsDigit` (category Nd). Rust has no category tables, so
/// non-ASCII digits are approximated as numeric characters that are not
/// alphabetic.
pub(crate) fn is_go_digit(ch: char) -> bool {
    ch.is_ascii_digit() || (!ch.is_ascii() && ch.is_numeric() && !ch.is_alphabetic())
}

/// Go's `unicode.IsLetter` (category L), approximated by Unicode
/// `Alphabetic` minus numeric letters.
pub(crate) fn is_go_letter(ch: char) -> bool {
    ch.is_alphabetic() && !ch.is_numeric()
}

/// Quotes `s` like Go's `strconv.Quote` (`%q`), which BuildKit uses in its
/// `failed to process "…"` messages.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_print(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.IsPrint`, approximately: graphic characters and the ASCII
/// space, but no other spaces, controls, format characters, private-use or
/// non-characters.
fn is_go_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let n = c as u32;
    let format = matches!(n,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB);
    let private = matches!(n, 0xE000..=0xF8FF | 0xF0000..);
    let nonchar = (n & 0xFFFE) == 0xFFFE || (0xFDD0..=0xFDEF).contains(&n);
    !(format || private || nonchar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\t\n\u{1}"), r#""\t\n\x01""#);
        assert_eq!(go_quote("안녕"), "\"안녕\"");
        assert_eq!(go_quote("\u{a0}\u{feff}"), r#""\u00a0\ufeff""#);
    }

    #[test]
    fn letters_and_digits() {
        assert!(is_go_digit('7') && is_go_digit('٣'));
        assert!(!is_go_digit('a') && !is_go_digit('Ⅷ'));
        assert!(is_go_letter('한') && is_go_letter('x') && !is_go_letter('_'));
    }
}
