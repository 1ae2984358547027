//! Error rendering: Dockerfile errors get the offending lines, like BuildKit.

use std::fmt;

/// A Dockerfile error together with the text it refers to, so the renderer
/// can show the lines.
#[derive(Debug)]
pub(crate) struct DockerfileError {
    pub(crate) text: String,
    pub(crate) error: rbk_parser::Error,
}

impl fmt::Display for DockerfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)
    }
}

impl std::error::Error for DockerfileError {}

/// Prints a warning to stderr.
#[allow(clippy::print_stderr)] // the CLI is where warnings are shown
pub(crate) fn warning(message: &str) {
    eprintln!("warning: {message}");
}

/// Prints `err` to stderr: the snippet for Dockerfile errors, then the chain.
#[allow(clippy::print_stderr)] // the CLI is where errors are shown
pub(crate) fn error(err: &anyhow::Error) {
    if let Some(df) = err.downcast_ref::<DockerfileError>() {
        eprint!(
            "{}",
            rbk_parser::render_snippet(&df.text, df.error.location())
        );
    }
    match err.downcast_ref::<rbk_build::Error>() {
        Some(rbk_build::Error::Dockerfile { text, error }) => {
            eprint!("{}", rbk_parser::render_snippet(text, error.location()));
        }
        Some(rbk_build::Error::Step {
            text,
            location: Some(location),
            ..
        }) => eprint!("{}", rbk_parser::render_snippet(text, location)),
        _ => {}
    }
    eprintln!("ERROR: {}", chain(err.as_ref()));
}

/// `err` and its causes on one line, `a: b: c`. A cause whose text already
/// ends the line is left out: some errors of other crates repeat their
/// cause in their own message, and "X: X" tells the reader nothing more.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut next = Some(err);
    while let Some(cause) = next {
        next = cause.source();
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that repeats its cause in its message.
    #[derive(Debug)]
    struct Repeats(std::io::Error);

    impl fmt::Display for Repeats {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "reading x: {}", self.0)
        }
    }

    impl std::error::Error for Repeats {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn a_cause_is_shown_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(Repeats(io)).context("loading the image");
        assert_eq!(
            chain(err.as_ref()),
            "loading the image: reading x: no such file"
        );
    }

    #[test]
    fn a_build_step_error_keeps_its_cause_as_a_source() {
        let cause = std::io::Error::other("exit code: 3");
        let err = rbk_build::Error::Step {
            text: String::new(),
            location: None,
            context: Some("linux/arm64".into()),
            source: Box::new(cause),
            failed_run: None,
        };
        assert_eq!(chain(&err), "failed to solve: linux/arm64: exit code: 3");
        let source = std::error::Error::source(&err).expect("a source");
        assert_eq!(source.to_string(), "exit code: 3");
    }
}
