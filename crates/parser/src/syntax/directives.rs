//! Parser directives (`# syntax=`, `# escape=`, `# check=`): lines at the
//! very top of the file, before any other line, each name at most once.

/// The directives found at the top of a Dockerfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=` (the frontend image reference), verbatim.
    pub syntax: Option<String>,
    /// `# escape=`: `\` (default) or `` ` ``.
    pub escape: char,
    /// `# check=` (lint configuration), verbatim.
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// Go's `\s` in RE2: `[\t\n\f\r ]`.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ')
}

/// Matches `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`.
fn match_directive(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?.trim_start_matches(is_re_space);
    if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let key_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let (key, rest) = rest.split_at(key_len);
    let rest = rest.trim_start_matches(is_re_space).strip_prefix('=')?;
    let trimmed = rest.trim_start_matches(is_re_space);
    let value = if trimmed.is_empty() {
        // `\s*` gives back its last character so that `.+?` matches it.
        rest.chars().last()?.to_string()
    } else {
        trimmed.trim_end_matches(is_re_space).to_string()
    };
    Some((key.to_ascii_lowercase(), value))
}

/// The state of directive parsing while lines are read.
#[derive(Default)]
pub(crate) struct DirectiveParser {
    pub(crate) found: Directives,
    seen: Vec<String>,
    done: bool,
}

impl DirectiveParser {
    /// Looks at one line (newline and leading space removed). Errors say
    /// what was wrong; the caller adds the location.
    pub(crate) fn parse_line(&mut self, line: &str) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some((key, value)) = match_directive(line) else {
            self.done = true;
            return Ok(());
        };
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(());
        }
        if self.seen.contains(&key) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        self.seen.push(key.clone());
        match key.as_str() {
            "escape" => {
                if value != "`" && value != "\\" {
                    return Err(format!(
                        "invalid escape token '{value}' does not match ` or \\"
                    ));
                }
                self.found.escape = if value == "`" { '`' } else { '\\' };
            }
            "syntax" => self.found.syntax = Some(value),
            _ => self.found.check = Some(value),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_the_go_regexp() {
        let m = |s: &str| match_directive(s).map(|(k, v)| format!("{k}={v}"));
        assert_eq!(
            m("# syntax=docker/dockerfile:1"),
            Some("syntax=docker/dockerfile:1".into())
        );
        assert_eq!(m("#ESCAPE = ` "), Some("escape=`".into()));
        assert_eq!(m("# escape=  "), Some("escape= ".into()));
        assert_eq!(m("# escape="), None);
        assert_eq!(m("# es-cape=x"), None);
        assert_eq!(m("# 1x=y"), None);
        assert_eq!(m("  # x=y"), None);
    }

    #[test]
    fn stops_at_the_first_other_line_and_rejects_repeats() {
        let mut p = DirectiveParser::default();
        p.parse_line("# check=skip=all").unwrap();
        p.parse_line("# escape=`").unwrap();
        assert_eq!(
            p.parse_line("# escape=`").unwrap_err(),
            "only one escape parser directive can be used"
        );
        let mut p = DirectiveParser::default();
        p.parse_line("").unwrap();
        p.parse_line("# escape=`").unwrap();
        assert_eq!(p.found.escape, '\\');
        let mut p = DirectiveParser::default();
        assert!(p
            .parse_line("# escape=x")
            .unwrap_err()
            .contains("invalid escape token 'x'"));
    }
}
