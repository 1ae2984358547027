//! Dockerfile text into a tree of [`Node`]s, exactly as BuildKit's
//! `frontend/dockerfile/parser` builds it: directives at the top, escape
//! token and line continuations, comments, heredoc bodies, `--flags`, and
//! each instruction's argument rule (JSON exec form or shell form,
//! `KEY=value` pairs, whitespace-separated words, ONBUILD's nested
//! instruction).
//!
//! ```
//! let ast = rbk_parser::syntax::parse("FROM alpine\nRUN echo hi\n", "Dockerfile").unwrap();
//! assert_eq!(ast.root.dump(), "(from \"alpine\")\n(run \"echo hi\")");
//! ```

mod directives;
mod heredoc;
mod json;
mod line_parsers;
mod node;
mod parser;
mod quote;

pub use directives::Directives;
pub use node::{Heredoc, Node, Span};
pub use parser::{parse, Ast, Warning, MAX_LINE_LEN};
