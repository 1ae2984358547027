//! Finding the heredocs opened on an instruction line (`<<EOF`, `<<-EOF`,
//! `3<<"EOF"`), the way BuildKit's `heredocsFromLine` does: split the line
//! into shell words, keep the words shaped like `^\d*<<-?[^<]*$`.

use super::node::Heredoc;
use crate::expand::Lexer;

/// BuildKit runs its shell lexer with no variables and `SkipUnsetEnv`, so
/// `$x` and `${x…}` come back as written.
fn process_words(src: &str, raw_quotes: bool, raw_escapes: bool) -> Result<Vec<String>, String> {
    let no_vars: Vec<(String, String)> = Vec::new();
    Lexer::new('\\')
        .raw_quotes(raw_quotes)
        .raw_escapes(raw_escapes)
        .skip_unset_env(true)
        .process_words(src, &no_vars)
        .map_err(|e| e.to_string())
}

/// `heredocFromMatch`: a heredoc when `word` matches
/// `^(\d*)<<(-?)([^<]*)$` and its name lexes to exactly one word. The body
/// expands unless some part of the name was quoted.
fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, after),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let words = process_words(rest, false, false)?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    let raw = process_words(rest, true, false)?;
    if raw.len() != words.len() {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    let file_descriptor = (digits > 0).then(|| word[..digits].parse::<u32>().unwrap_or(u32::MAX));
    Ok(Some(Heredoc {
        name: name.clone(),
        content: String::new(),
        expand: quotes(&raw[0]) == quotes(name),
        chomp,
        file_descriptor,
    }))
}

/// `heredocsFromLine`: the heredocs opened on `line`, in order, bodies
/// still empty. A line the shell lexer rejects opens none.
pub(crate) fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let words = process_words(line, true, true).unwrap_or_default();
    let mut docs = Vec::new();
    for word in &words {
        docs.extend(parse_heredoc(word)?);
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<(String, bool, bool, Option<u32>)> {
        heredocs_from_line(line)
            .unwrap()
            .into_iter()
            .map(|h| (h.name, h.expand, h.chomp, h.file_descriptor))
            .collect()
    }

    #[test]
    fn finds_heredoc_words() {
        assert_eq!(names("RUN <<EOF"), vec![("EOF".into(), true, false, None)]);
        assert_eq!(
            names("RUN cat <<-EOT > /x"),
            vec![("EOT".into(), true, true, None)]
        );
        assert_eq!(
            names("COPY <<\"A\" 3<<'B' /dst/"),
            vec![
                ("A".into(), false, false, None),
                ("B".into(), false, false, Some(3)),
            ]
        );
        assert_eq!(names("RUN E<<X \"<<Y\" <<"), vec![]);
        assert_eq!(names("RUN echo 'unterminated <<EOF"), vec![]);
        assert_eq!(
            names("RUN <<E\"O\"F"),
            vec![("EOF".into(), false, false, None)]
        );
        // Variables are not expanded in the name; a bad substitution
        // anywhere on the line means no heredoc at all.
        assert_eq!(
            names("RUN <<$EOF"),
            vec![("$EOF".into(), true, false, None)]
        );
        assert_eq!(
            names("RUN <<\"A\\$B\""),
            vec![("A$B".into(), false, false, None)]
        );
        assert_eq!(names("RUN <<EOF ${x^^}"), vec![]);
        assert_eq!(names("RUN <<'' <<\"\""), vec![]);
    }
}

#[cfg(test)]
mod lexer_tests {
    use super::process_words;

    fn words(src: &str, raw: bool) -> Result<Vec<String>, String> {
        process_words(src, raw, raw)
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
            // BuildKit writes a replace-all back with one slash.
            ["${x#*/}", "${x%%.*}", "${x/a/b}", "$", "$1"]
        );
        // With raw escapes a backslash before an ordinary character in
        // double quotes is doubled.
        assert_eq!(words("\"a\\b\\\"c\"", true).unwrap(), ["\"a\\\\b\\\"c\""]);
        assert_eq!(words("\"a\\b\\\"c\"", false).unwrap(), ["a\\b\"c"]);
    }

    #[test]
    fn reports_errors_like_buildkit() {
        let e = |s: &str| words(s, true).unwrap_err();
        assert!(e("'x").ends_with("matching single-quote"), "{}", e("'x"));
        assert!(e("\"x").ends_with("matching double-quote"), "{}", e("\"x"));
        assert!(e("${}").ends_with("bad substitution"), "{}", e("${}"));
        assert!(e("${x:-a").ends_with("missing '}'"), "{}", e("${x:-a"));
        assert!(
            e("${x^^}").ends_with("unsupported modifier (^) in substitution"),
            "{}",
            e("${x^^}")
        );
    }
}
