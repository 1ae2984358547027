//! Finding the heredocs opened on an instruction line (`<<EOF`, `<<-EOF`,
//! `3<<"EOF"`), the way BuildKit's `heredocsFromLine` does: split the line
//! into shell words, keep the words shaped like `^\d*<<-?[^<]*$`.

use super::node::Heredoc;
use super::shlex::{process_words, Options};

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
    let words = process_words(rest, Options::default())?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    let raw_quotes = Options {
        raw_quotes: true,
        raw_escapes: false,
    };
    let raw = process_words(rest, raw_quotes)?;
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
    let raw = Options {
        raw_quotes: true,
        raw_escapes: true,
    };
    let words = process_words(line, raw).unwrap_or_default();
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
