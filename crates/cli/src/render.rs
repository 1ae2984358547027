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
    eprintln!("ERROR: {err:#}");
}
