//! Build checks: BuildKit's Dockerfile rules (the same names, messages and
//! documentation links as BuildKit's linter) and rbk's own advice.
//!
//! Pure functions of the parsed Dockerfile and what the caller hands in
//! (build args, platforms, `.dockerignore` patterns): no I/O. [`run`]
//! returns every finding; [`CheckConfig`] (from `# check=`, the
//! `BUILDKIT_DOCKERFILE_CHECK` build arg, and `# check=` comments right above
//! an instruction) decides which are shown and whether they fail the build.
//! `UndefinedVar` needs the stage's environment and comes from lowering
//! ([`crate::Plan::findings`]).
//!
//! ```
//! use rbk_parser::{checks, parse, LowerOptions};
//!
//! let text = "FROM busybox AS Build\nMAINTAINER me\n";
//! let ast = parse(text, "Dockerfile").unwrap();
//! let found = checks::run(&ast, text, &LowerOptions::default());
//! let shown: Vec<String> = found.iter().map(|f| f.to_string()).collect();
//! assert_eq!(shown, [
//!     "StageNameCasing: Stage name 'Build' should be lowercase (line 1)",
//!     "MaintainerDeprecated: Maintainer instruction is deprecated in favor of using label (line 2)",
//! ]);
//! ```

mod advice;
mod config;
mod dockerfile;
mod from;
pub mod rules;

pub use advice::{context_advice, ContextUse};
pub(crate) use config::suggest;
pub use config::{CheckConfig, Checks};
pub use rules::{Level, Origin, Rule};

use crate::instructions::{parse_node, Parsed};
use crate::{Ast, LowerOptions};

/// One thing a rule found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: &'static Rule,
    /// What, in the rule's words (BuildKit's `Detail`).
    pub message: String,
    /// The first line of the instruction (0: not tied to a line).
    pub line: u32,
    /// The last line of the instruction.
    pub end_line: u32,
}

impl Finding {
    pub(crate) fn new(rule: &'static Rule, message: String, span: crate::Span) -> Finding {
        Finding {
            rule,
            message,
            line: span.start_line,
            end_line: span.end_line,
        }
    }
}

/// BuildKit's short form: `Rule: message (line N)`.
impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.rule.name, self.message)?;
        if self.line > 0 {
            write!(f, " (line {})", self.line)?;
        }
        Ok(())
    }
}

/// Every rule that needs only the Dockerfile (and the `.dockerignore`
/// patterns in `opts`), in file order, unfiltered. Instructions that do not
/// parse are skipped: lowering reports them.
pub fn run(ast: &Ast, text: &str, opts: &LowerOptions<'_>) -> Vec<Finding> {
    let mut nodes = Vec::new();
    for node in &ast.root.children {
        if let Ok(parsed) = parse_node(node, &opts.file) {
            nodes.push((node, parsed));
        }
    }
    let mut out: Vec<Finding> = ast
        .warnings
        .iter()
        .filter(|w| w.message.starts_with("Empty continuation line"))
        .map(|w| Finding {
            rule: &rules::NO_EMPTY_CONTINUATION,
            message: "Empty continuation line".into(),
            line: w.location.line,
            end_line: w.location.end_line,
        })
        .collect();
    let comments = config::comments_above(text);
    dockerfile::per_instruction(&nodes, &comments, &mut out);
    dockerfile::whole_file(&nodes, &mut out);
    from::from_lines(&nodes, ast.directives.escape, opts, &mut out);
    from::copy_ignored(&nodes, &opts.context_excludes, &mut out);
    advice::dockerfile_advice(&nodes, &mut out);
    out.sort_by_key(|f| f.line);
    out
}

/// Instructions and their typed meaning, as the rules see them.
pub(crate) type Nodes<'a> = [(&'a crate::Node, Parsed)];
