//! The parser's one error type. Every variant says where in the Dockerfile
//! the problem is; [`render_snippet`] shows the lines like BuildKit does.

use std::fmt;

/// A place in a Dockerfile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// The file as the user named it (`Dockerfile`, `-` for stdin).
    pub file: String,
    /// First line, 1-based.
    pub line: u32,
    /// Column on the first line, 1-based; 0 when unknown.
    pub column: u32,
    /// Last line, 1-based, inclusive (equal to `line` for one-line problems).
    pub end_line: u32,
}

impl Location {
    /// A location spanning `start..=end` lines of `file`.
    pub fn lines(file: &str, start: u32, end: u32) -> Self {
        Location {
            file: file.to_string(),
            line: start,
            column: 0,
            end_line: end.max(start),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Line 0: the problem is not on any line (an unknown --target).
        if self.line == 0 {
            return write!(f, "{}", self.file);
        }
        write!(f, "{}:{}", self.file, self.line)?;
        if self.column > 0 {
            write!(f, ":{}", self.column)?;
        }
        Ok(())
    }
}

/// Everything that can be wrong with a Dockerfile or a `.dockerignore`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not well-formed: unknown instruction, bad directive,
    /// unterminated heredoc, empty file, …
    #[error("{location}: {message}")]
    Syntax {
        /// Where.
        location: Location,
        /// What was expected.
        message: String,
    },
    /// An instruction's arguments or flags are invalid.
    #[error("{location}: {message}")]
    Instruction {
        /// Where.
        location: Location,
        /// What was expected.
        message: String,
    },
    /// A variable reference could not be expanded.
    #[error("{location}: {message}")]
    Expand {
        /// Where.
        location: Location,
        /// What was wrong with the word.
        message: String,
    },
    /// The stages do not form a valid build: unknown `--from` stage, cycle,
    /// missing target, blank base name.
    #[error("{location}: {message}")]
    Stage {
        /// Where.
        location: Location,
        /// What was wrong.
        message: String,
    },
    /// A `.dockerignore` pattern is invalid.
    #[error("{location}: invalid .dockerignore pattern {pattern:?}: {message}")]
    Dockerignore {
        /// Where.
        location: Location,
        /// The pattern as written.
        pattern: String,
        /// What was wrong with it.
        message: String,
    },
}

impl Error {
    /// Where the problem is.
    pub fn location(&self) -> &Location {
        match self {
            Error::Syntax { location, .. }
            | Error::Instruction { location, .. }
            | Error::Expand { location, .. }
            | Error::Stage { location, .. }
            | Error::Dockerignore { location, .. } => location,
        }
    }
}

/// Shows the lines of `source` around `location`, the offending ones marked
/// with `>>>`, in the frame BuildKit prints under a failed step.
pub fn render_snippet(source: &str, location: &Location) -> String {
    const CONTEXT: u32 = 2;
    let lines: Vec<&str> = source.lines().collect();
    let last = u32::try_from(lines.len()).unwrap_or(u32::MAX);
    if location.line == 0 || location.line > last {
        return String::new();
    }
    let from = location.line.saturating_sub(CONTEXT).max(1);
    let to = location
        .end_line
        .max(location.line)
        .saturating_add(CONTEXT)
        .min(last);
    let width = to.to_string().len().max(4);
    let rule = "-".repeat(20);
    let mut out = format!("{}:{}\n{rule}\n", location.file, location.line);
    for n in from..=to {
        let marker = if (location.line..=location.end_line.max(location.line)).contains(&n) {
            ">>>"
        } else {
            "   "
        };
        out.push_str(&format!(
            "{n:>width$} | {marker} {}\n",
            lines[(n - 1) as usize]
        ));
    }
    out.push_str(&rule);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippet_marks_the_offending_lines() {
        let src = "FROM a\nRUN x \\\n  y\nCMD z\nLABEL a=b\nUSER u\n";
        let loc = Location::lines("Dockerfile", 2, 3);
        let shown = render_snippet(src, &loc);
        let expected = "Dockerfile:2\n--------------------\n   1 |     FROM a\n   2 | >>> RUN x \\\n   3 | >>>   y\n   4 |     CMD z\n   5 |     LABEL a=b\n--------------------\n";
        assert_eq!(shown, expected);
    }

    #[test]
    fn snippet_outside_the_file_is_empty() {
        assert_eq!(
            render_snippet("FROM a\n", &Location::lines("Dockerfile", 9, 9)),
            ""
        );
    }

    #[test]
    fn errors_display_their_location() {
        let err = Error::Syntax {
            location: Location {
                file: "Dockerfile".into(),
                line: 3,
                column: 1,
                end_line: 3,
            },
            message: "unknown instruction: RUNN".into(),
        };
        assert_eq!(err.to_string(), "Dockerfile:3:1: unknown instruction: RUNN");
        assert_eq!(err.location().line, 3);
    }
}
