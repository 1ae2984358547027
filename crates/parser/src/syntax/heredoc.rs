//! Finding the heredocs opened on an instruction line (`<<EOF`, `<<-EOF`,
//! `3<<"EOF"`), the way BuildKit's `heredocsFromLine` does: split the line
//! into shell words, keep the words shaped like `^\d*<<-?[^<]*$`.

use super::node::Heredoc;

/// Shell-word splitting as BuildKit's lexer does it with an empty
/// environment. With `raw`, quotes and escapes are kept in the words.
/// `None` on an unterminated quote.
fn shell_words(s: &str, raw: bool) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                if raw {
                    word.push('\\');
                }
                match chars.next() {
                    Some(n) => word.push(n),
                    None => break,
                }
            }
            '\'' => {
                in_word = true;
                if raw {
                    word.push('\'');
                }
                loop {
                    match chars.next()? {
                        '\'' => break,
                        n => word.push(n),
                    }
                }
                if raw {
                    word.push('\'');
                }
            }
            '"' => {
                in_word = true;
                if raw {
                    word.push('"');
                }
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => {
                            if raw {
                                word.push('\\');
                            }
                            match chars.peek() {
                                None => {}
                                Some('"' | '$' | '\\') => word.push(chars.next()?),
                                Some(_) if raw => {}
                                Some(_) => word.push('\\'),
                            }
                        }
                        n => word.push(n),
                    }
                }
                if raw {
                    word.push('"');
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// `ParseHeredoc`: a heredoc when `word` matches `^(\d*)<<(-?)([^<]*)$` with
/// a non-empty single-word name.
fn parse_heredoc(word: &str) -> Option<Heredoc> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let after = word[digits..].strip_prefix("<<")?;
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, after),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let words = shell_words(rest, false)?;
    let [name] = words.as_slice() else {
        return None;
    };
    let raw = shell_words(rest, true)?;
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    let expand = raw.first().map(|r| quotes(r)) == Some(quotes(name));
    let file_descriptor = (digits > 0).then(|| word[..digits].parse::<u32>().unwrap_or(u32::MAX));
    Some(Heredoc {
        name: name.clone(),
        content: String::new(),
        expand,
        chomp,
        file_descriptor,
    })
}

/// The heredocs opened on `line`, in order, bodies still empty.
pub(crate) fn heredocs_from_line(line: &str) -> Vec<Heredoc> {
    shell_words(line, true)
        .unwrap_or_default()
        .iter()
        .filter_map(|w| parse_heredoc(w))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<(String, bool, bool, Option<u32>)> {
        heredocs_from_line(line)
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
    }
}
