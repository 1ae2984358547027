//! Dockerfile text into a tree of [`Node`]s.

mod node;

pub use node::{Heredoc, Node, Span};
