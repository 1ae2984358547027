//! The line loop of BuildKit's `parser.Parse`: reads physical lines, joins
//! continuations, skips comments and blank lines, hands each logical line to
//! the instruction parsers and then reads the bodies of its heredocs.

use super::directives::{DirectiveParser, Directives};
use super::heredoc::heredocs_from_line;
use super::line_parsers::{is_known, node_from_line, split_command};
use super::node::{Heredoc, Node, Span};
use crate::error::{Error, Location};

/// The longest physical line accepted, in bytes without its newline
/// (BuildKit's `bufio.MaxScanTokenSize - 1`).
pub const MAX_LINE_LEN: usize = 64 * 1024 - 1;

/// A parsed Dockerfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ast {
    /// The root node: no value, one child per instruction.
    pub root: Node,
    /// The parser directives found at the top.
    pub directives: Directives,
    /// Things that parsed but that BuildKit warns about.
    pub warnings: Vec<Warning>,
}

/// A problem that does not stop parsing (an empty continuation line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Where.
    pub location: Location,
    /// What, in BuildKit's words.
    pub message: String,
}

impl Ast {
    /// Rejects what BuildKit's parser accepts but its next stage refuses:
    /// an unknown instruction (also as an ONBUILD trigger), reported as
    /// `unknown instruction: NAME` at its line and column.
    pub fn validate(&self, file: &str) -> Result<(), Error> {
        for node in &self.root.children {
            let triggers = node.next.iter().flat_map(|n| n.children.iter());
            for n in std::iter::once(node).chain(triggers) {
                if !is_known(&n.value) {
                    let (cmd, _, _) = split_command(&n.original, self.directives.escape);
                    let location = Location {
                        column: node.column,
                        ..Location::lines(file, n.span.start_line, n.span.end_line)
                    };
                    let message = format!("unknown instruction: {cmd}");
                    return Err(Error::Syntax { location, message });
                }
            }
        }
        Ok(())
    }
}

/// Physical lines, each with its `\n` kept, counted. Like Go's
/// `bufio.Scanner`, a line longer than [`MAX_LINE_LEN`] ends the input and
/// is remembered.
struct Lines<'a> {
    rest: &'a str,
    too_long: bool,
    /// Lines read so far (the 1-based number of the last one).
    number: u32,
}

impl<'a> Lines<'a> {
    fn next_line(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() || self.too_long {
            return None;
        }
        let end = self.rest.find('\n').map_or(self.rest.len(), |i| i + 1);
        let (line, rest) = self.rest.split_at(end);
        if line.strip_suffix('\n').unwrap_or(line).len() > MAX_LINE_LEN {
            self.too_long = true;
            return None;
        }
        self.rest = rest;
        self.number += 1;
        Some(line)
    }
}

fn syntax_error(file: &str, start: u32, end: u32, message: String) -> Error {
    Error::Syntax {
        location: Location::lines(file, start, end),
        message,
    }
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start().starts_with('#')
}

/// Strips a trailing escape token (plus spaces and tabs) unless it is itself
/// escaped. Returns the line and whether it ends the instruction.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    if let Some(before) = t.strip_suffix(escape) {
        if before.is_empty() || !before.ends_with(escape) {
            return (before, false);
        }
    }
    (line, true)
}

/// `processLine`: newline (and, for a first line, leading space) removed,
/// directive checked, a comment turned into an empty line.
fn process_line<'a>(
    d: &mut DirectiveParser,
    raw: &'a str,
    strip_left: bool,
) -> Result<&'a str, String> {
    let mut token = trim_newline(raw);
    if strip_left {
        token = token.trim_start();
    }
    d.parse_line(token)?;
    Ok(if is_comment(token) { "" } else { token })
}

/// Whether heredoc bodies follow this instruction (RUN, COPY, ADD in shell
/// form, also as an ONBUILD trigger).
fn can_contain_heredoc(node: &Node) -> bool {
    let mut node = node;
    if node.value == "onbuild" {
        if let Some(child) = node.next.first().and_then(|n| n.children.first()) {
            node = child;
        }
    }
    matches!(node.value.as_str(), "add" | "copy" | "run") && !node.json
}

/// Parses a Dockerfile. `file` names it in errors and warnings.
pub fn parse(text: &str, file: &str) -> Result<Ast, Error> {
    let mut lines = Lines {
        rest: text,
        too_long: false,
        number: 0,
    };
    let mut d = DirectiveParser::default();
    let mut root = Node::default();
    let mut warnings = Vec::new();
    while let Some(raw) = lines.next_line() {
        let raw = if lines.number == 1 {
            raw.strip_prefix('\u{feff}').unwrap_or(raw)
        } else {
            raw
        };
        let start = lines.number;
        let indent = raw.chars().take_while(|c| c.is_whitespace()).count();
        let first =
            process_line(&mut d, raw, true).map_err(|m| syntax_error(file, start, start, m))?;
        let (first, end_of_line) = trim_continuation(first, d.found.escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut line = first.to_string();
        if !end_of_line && join_continuation(&mut lines, &mut d, &mut line, file)? {
            warnings.push(Warning {
                location: Location::lines(file, lines.number, lines.number),
                message: format!("Empty continuation line found in: {line}"),
            });
        }
        let mut child = node_from_line(line, d.found.escape)
            .map_err(|message| syntax_error(file, start, lines.number, message))?;
        child.column = u32::try_from(indent + 1).unwrap_or(0);
        if can_contain_heredoc(&child) && child.original.contains("<<") {
            child.heredocs = read_heredocs(&mut lines, &child.original)
                .map_err(|message| syntax_error(file, start, lines.number, message))?;
        }
        set_span(&mut child, start, lines.number);
        root.children.push(child);
    }
    finish(root, &lines, d, warnings, file)
}

/// Appends the continuation lines of an instruction to `line`, skipping
/// comment lines and empty lines. Returns whether an empty line was seen.
fn join_continuation(
    lines: &mut Lines,
    d: &mut DirectiveParser,
    line: &mut String,
    file: &str,
) -> Result<bool, Error> {
    let mut has_empty = false;
    while let Some(raw) = lines.next_line() {
        // BuildKit counts the line only after it was processed.
        let previous = lines.number - 1;
        let token =
            process_line(d, raw, false).map_err(|m| syntax_error(file, previous, previous, m))?;
        if is_comment(raw) {
            continue;
        }
        if token.trim_start().is_empty() {
            has_empty = true;
            continue;
        }
        let (part, end_of_line) = trim_continuation(token, d.found.escape);
        line.push_str(part);
        if end_of_line {
            break;
        }
    }
    Ok(has_empty)
}

/// Reads the bodies of the heredocs opened on `line`, one after another.
fn read_heredocs(lines: &mut Lines, line: &str) -> Result<Vec<Heredoc>, String> {
    let mut heredocs = heredocs_from_line(line)?;
    for heredoc in &mut heredocs {
        let mut terminated = false;
        while let Some(raw) = lines.next_line() {
            let mut candidate = trim_newline(raw);
            if heredoc.chomp {
                candidate = candidate.trim_start_matches('\t');
            }
            if candidate == heredoc.name {
                terminated = true;
                break;
            }
            heredoc.content.push_str(raw);
        }
        if !terminated {
            return Err("unterminated heredoc".into());
        }
    }
    Ok(heredocs)
}

/// The instruction's lines, also given to an ONBUILD trigger.
fn set_span(child: &mut Node, start_line: u32, end_line: u32) {
    let span = Span {
        start_line,
        end_line,
    };
    child.span = span;
    for arg in &mut child.next {
        for trigger in &mut arg.children {
            trigger.span = span;
        }
    }
}

/// The checks BuildKit makes after its line loop. A too-long line is
/// reported there, at the last line read, unless the file had no
/// instruction before it.
fn finish(
    mut root: Node,
    lines: &Lines,
    d: DirectiveParser,
    warnings: Vec<Warning>,
    file: &str,
) -> Result<Ast, Error> {
    let line = lines.number.max(1);
    if root.children.is_empty() {
        let message = "file with no instructions".to_string();
        return Err(syntax_error(file, line, line, message));
    }
    if lines.too_long {
        let message = format!("dockerfile line greater than max allowed size of {MAX_LINE_LEN}");
        return Err(syntax_error(file, line, line, message));
    }
    root.span = Span {
        start_line: root.children[0].span.start_line,
        end_line: root.children.last().map_or(0, |c| c.span.end_line),
    };
    Ok(Ast {
        root,
        directives: d.found,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(text: &str) -> String {
        parse(text, "Dockerfile").unwrap().root.dump()
    }

    fn err(text: &str) -> String {
        parse(text, "Dockerfile").unwrap_err().to_string()
    }

    #[test]
    fn continuations_comments_and_blank_lines() {
        assert_eq!(dump("RUN a \\\n  b \\\n# c\n  d\n"), "(run \"a   b   d\")");
        assert_eq!(
            dump("FROM x\n\n   # c\nRUN y \\\n"),
            "(from \"x\")\n(run \"y\")"
        );
        assert_eq!(
            dump("RUN a \\\\\nRUN b"),
            "(run \"a \\\\\\\\\")\n(run \"b\")"
        );
        assert_eq!(dump("\\\nRUN x\n"), "(run \"x\")");
        let ast = parse("RUN a \\\n\n b\n", "Dockerfile").unwrap();
        assert_eq!(ast.root.dump(), "(run \"a  b\")");
        assert_eq!(ast.warnings.len(), 1);
        assert_eq!(ast.warnings[0].location.line, 3);
        assert_eq!(
            ast.warnings[0].message,
            "Empty continuation line found in: RUN a  b"
        );
    }

    #[test]
    fn directives_and_escape() {
        let ast = parse(
            "# syntax=docker/dockerfile:1\n# escape=`\nRUN a `\n b\n",
            "D",
        )
        .unwrap();
        assert_eq!(
            ast.directives.syntax.as_deref(),
            Some("docker/dockerfile:1")
        );
        assert_eq!(ast.directives.escape, '`');
        assert_eq!(ast.root.dump(), "(run \"a  b\")");
        let ast = parse("\n# escape=`\nRUN a \\\n b\n", "D").unwrap();
        assert_eq!(ast.directives.escape, '\\');
        assert_eq!(ast.root.dump(), "(run \"a  b\")");
        assert_eq!(
            err("# escape=x\nFROM a"),
            "Dockerfile:1: invalid escape token 'x' does not match ` or \\"
        );
    }

    #[test]
    fn heredocs_are_attached() {
        let ast = parse("RUN <<EOF <<-EOT\necho $x\nEOF\n\tls\n\tEOT\nCMD x\n", "D").unwrap();
        assert_eq!(ast.root.dump(), "(run \"<<EOF <<-EOT\")\n(cmd \"x\")");
        let run = &ast.root.children[0];
        assert_eq!(run.heredocs.len(), 2);
        assert_eq!(run.heredocs[0].content, "echo $x\n");
        assert_eq!(run.heredocs[1].content, "\tls\n");
        assert_eq!(
            run.span,
            Span {
                start_line: 1,
                end_line: 5
            }
        );
        assert_eq!(
            ast.root.children[1].span,
            Span {
                start_line: 6,
                end_line: 6
            }
        );
        assert_eq!(
            err("COPY <<EOF /x\nabc\n"),
            "Dockerfile:1: unterminated heredoc"
        );
        // Exec form and other instructions take no heredoc.
        assert_eq!(
            dump("RUN [\"<<EOF\"]\nCMD <<EOF\n"),
            "(run \"<<EOF\")\n(cmd \"<<EOF\")"
        );
    }

    #[test]
    fn errors_have_locations() {
        assert_eq!(err(""), "Dockerfile:1: file with no instructions");
        assert_eq!(
            err("# a\n\n# b\n"),
            "Dockerfile:3: file with no instructions"
        );
        let ast = parse("FROM a\n  FOO b\nONBUILD BAR\n", "Dockerfile").unwrap();
        assert_eq!(
            ast.root.dump(),
            "(from \"a\")\n(foo \"\")\n(onbuild (bar \"\"))"
        );
        let e = ast.validate("Dockerfile").unwrap_err().to_string();
        assert_eq!(e, "Dockerfile:2:3: unknown instruction: FOO");
        assert!(parse("FROM a\nONBUILD RUN x\n", "D")
            .unwrap()
            .validate("D")
            .is_ok());
        let long = format!("RUN {}\n", "a".repeat(MAX_LINE_LEN));
        assert_eq!(err(&long), "Dockerfile:1: file with no instructions");
        let long = format!(
            "FROM a\nRUN b \\\n c\nRUN {}\nRUN d\n",
            "a".repeat(MAX_LINE_LEN)
        );
        assert_eq!(
            err(&long),
            "Dockerfile:3: dockerfile line greater than max allowed size of 65535"
        );
        let long = format!("FROM a\nRUN <<EOF\n{}\nEOF\n", "a".repeat(MAX_LINE_LEN + 1));
        assert_eq!(err(&long), "Dockerfile:2: unterminated heredoc");
        let ok = format!("RUN {}\n", "a".repeat(MAX_LINE_LEN - 4));
        assert!(parse(&ok, "D").is_ok());
    }

    #[test]
    fn bom_crlf_and_spans() {
        let ast = parse("\u{feff}FROM a\r\nRUN b \\\r\n c\r\n", "D").unwrap();
        assert_eq!(ast.root.dump(), "(from \"a\")\n(run \"b  c\")");
        assert_eq!(
            ast.root.children[1].span,
            Span {
                start_line: 2,
                end_line: 3
            }
        );
        assert_eq!(ast.root.children[1].original, "RUN b  c");
    }
}
