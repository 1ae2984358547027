//! The parse tree, shaped like BuildKit's `parser.Node` so that
//! [`Node::dump`] prints the s-expressions of BuildKit's parser test suite.

/// A range of lines (1-based, inclusive) in the Dockerfile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// First line of the instruction (after any leading comments).
    pub start_line: u32,
    /// Last line, including continuation lines and heredoc bodies.
    pub end_line: u32,
}

/// A heredoc attached to an instruction (`RUN <<EOF`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, without quotes.
    pub name: String,
    /// The body, every line ending in `\n`, without the terminator line.
    pub content: String,
    /// Variables expand in the body (the delimiter was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from body lines.
    pub chomp: bool,
    /// The heredoc's fd prefix, when written as `3<<EOF`; `None` otherwise.
    pub file_descriptor: Option<u32>,
}

/// One node of the parse tree.
///
/// The root node has no value and one child per instruction. An instruction
/// node has the lower-cased instruction name as `value` and its arguments in
/// `next`. ONBUILD's trigger is an argument node with an empty `value` whose
/// single child is the trigger instruction, exactly as BuildKit nests it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// Instruction name (lower case) or argument word.
    pub value: String,
    /// The arguments, in order (BuildKit's `Next` chain).
    pub next: Vec<Node>,
    /// Child instructions (the root's instructions; ONBUILD's trigger).
    pub children: Vec<Node>,
    /// `--flag[=value]` words that preceded the arguments, verbatim.
    pub flags: Vec<String>,
    /// The arguments came from a JSON array (exec form).
    pub json: bool,
    /// The instruction as written, continuation lines joined, heredoc bodies excluded.
    pub original: String,
    /// Heredocs opened on the instruction line, in order.
    pub heredocs: Vec<Heredoc>,
    /// Where the instruction is.
    pub span: Span,
    /// 1-based column of the instruction word on its first line; 0 for
    /// argument nodes.
    pub column: u32,
}

impl Node {
    /// The s-expression BuildKit's `Node.Dump()` prints: the lower-cased
    /// value, the flags as Go's `%q` of a `[]string`, each child as
    /// `(dump)\n`, then each argument Go-quoted (or dumped when it has
    /// children, as ONBUILD's trigger has), all trimmed. The parser test
    /// suite's `result` files are `root.dump()` plus a newline.
    pub fn dump(&self) -> String {
        let mut out = super::quote::go_lower(&self.value);
        if !self.flags.is_empty() {
            out.push(' ');
            out.push_str(&super::quote::go_quote_list(&self.flags));
        }
        for child in &self.children {
            out.push('(');
            out.push_str(&child.dump());
            out.push_str(")\n");
        }
        for next in &self.next {
            out.push(' ');
            if next.children.is_empty() {
                out.push_str(&super::quote::go_quote(&next.value));
            } else {
                out.push_str(&next.dump());
            }
        }
        out.trim().to_string()
    }
}
