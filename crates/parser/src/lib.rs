//! The Dockerfile language.
//!
//! Three stages, as in BuildKit's frontend: [`syntax`] turns text into a tree of
//! [`Node`]s with spans (directives, continuations, heredocs, JSON vs shell
//! form); [`instructions`] gives each node a typed meaning with its flags; and
//! [`lower()`] expands ARG/ENV words and produces a [`Plan`]: an
//! `rbk_graph::Definition` plus the image config each stage accumulates.
//! [`expand`] is the shell-like word expansion and [`dockerignore`] the
//! `.dockerignore` matcher.
//!
//! Errors: what leaves the crate is [`Error`], which names the file, line
//! and column, and [`ResolveError`] from an [`ImageResolver`]. Helpers
//! inside it (flag, mount, heredoc, duration and reference parsers, the
//! `# check=` parser) return `Result<_, String>` on purpose: the string is
//! BuildKit's or Docker's message text, and the caller, which knows the
//! location, wraps it (the lowering into an [`Error`] with the
//! instruction's span). The same holds for the two such helpers another
//! crate calls, [`normalize_image_reference`] and [`checks::Checks::new`]:
//! rbk-build wraps their text into its own error naming the
//! `--build-context` flag or the Dockerfile, which this crate cannot know.
//!
//! ```
//! use rbk_parser::{lower, parse, LowerOptions};
//!
//! let ast = parse("FROM busybox AS build\nRUN make\nFROM scratch\nCOPY --from=build /out /\n", "Dockerfile")?;
//! let plan = lower(&ast, &LowerOptions::default())?;
//! assert_eq!(plan.target, 1);
//! let roots = plan.roots(); // prune plan.definition to what these reach
//! assert_eq!(roots, vec![plan.stages[1].output]);
//! # Ok::<(), rbk_parser::Error>(())
//! ```
#![deny(missing_docs)]

pub mod checks;
pub mod dockerignore;
mod error;
pub mod expand;
pub mod instructions;
pub mod lower;
pub mod syntax;

pub use dockerignore::Dockerignore;
pub use error::{render_snippet, Error, Location};
pub use expand::{Env, ExpandError, Lexer};
pub use lower::{
    lower, lower_dockerfile, lower_node, normalize_image_reference, BaseRef, ImageResolver,
    LowerOptions, NamedContext, Plan, ResolveError, StagePlan, MAX_LOWERED_TEXT,
};
pub use syntax::{parse, Ast, Directives, Heredoc, Node, Span, Warning};
