//! One instruction line into a [`Node`]: the command word, its `--flags`, and
//! the arguments split by the rule of each instruction (BuildKit's
//! `split_command.go` and `line_parsers.go`).

use std::borrow::Cow;

use super::json::{parse_string_array, JsonError};
use super::node::Node;
use super::quote::{go_lower, is_space_byte};

/// BuildKit's message for a JSON array holding something else than strings.
pub(crate) const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// The instructions BuildKit knows, lower case.
const KNOWN: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// Whether `name` (lower case) is an instruction BuildKit knows.
pub(crate) fn is_known(name: &str) -> bool {
    KNOWN.contains(&name)
}

/// Parses one logical line (continuations joined) into an instruction node.
/// `line`, `span` and `heredocs` are left for the caller to fill.
/// Takes the line by value: it becomes the node's `original`.
pub(crate) fn node_from_line(line: String, escape: char) -> Result<Node, String> {
    let (cmd, flags, args) = split_command(&line, escape);
    let name = go_lower(cmd);
    let (next, json) = if is_known(&name) {
        dispatch(&name, &args, escape)?
    } else {
        // `parseIgnore`: BuildKit's parser keeps unknown instructions with
        // one empty argument; `Ast::validate` reports them.
        (vec![leaf("")], false)
    };
    Ok(Node {
        value: name,
        next,
        flags,
        json,
        original: line,
        ..Node::default()
    })
}

/// The argument nodes for instruction `name`, and whether they came from JSON.
fn dispatch(name: &str, args: &str, escape: char) -> Result<(Vec<Node>, bool), String> {
    match name {
        "add" | "copy" | "volume" => maybe_json_to_list(args),
        "arg" => Ok((name_or_name_val(args, escape), false)),
        "cmd" | "entrypoint" | "run" | "shell" => maybe_json(args),
        "env" => Ok((name_val(args, "ENV", escape)?, false)),
        "label" => Ok((name_val(args, "LABEL", escape)?, false)),
        "expose" | "from" => Ok((whitespace_delimited(args), false)),
        "healthcheck" => health_config(args),
        "onbuild" => Ok((sub_command(args, escape)?, false)),
        _ => Ok((string_node(args), false)),
    }
}

fn leaf(value: &str) -> Node {
    owned_leaf(value.to_string())
}

fn owned_leaf(value: String) -> Node {
    Node {
        value,
        ..Node::default()
    }
}

/// `splitCommand`: the command word, the flags, and the trimmed arguments
/// (borrowed from `line`: this runs for every instruction).
pub(crate) fn split_command(line: &str, escape: char) -> (&str, Vec<String>, Cow<'_, str>) {
    let trimmed = line.trim();
    match split_ws_once(trimmed) {
        Some((cmd, rest)) => {
            let (args, flags) = extract_builder_flags(rest, escape);
            let args = match args {
                Cow::Borrowed(a) => Cow::Borrowed(a.trim()),
                Cow::Owned(a) => Cow::Owned(a.trim().to_string()),
            };
            (cmd, flags, args)
        }
        None => (trimmed, Vec::new(), Cow::Borrowed("")),
    }
}

/// Go's `[\t\v\f\r ]+`.
fn is_re_ws(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// `reWhitespace.Split(s, 2)` when it gives two parts: the text before the
/// first run of whitespace and the text after it (no Vec: this runs for
/// every instruction).
fn split_ws_once(s: &str) -> Option<(&str, &str)> {
    let start = s.find(is_re_ws)?;
    let end = s[start..]
        .find(|c| !is_re_ws(c))
        .map_or(s.len(), |e| start + e);
    Some((&s[..start], &s[end..]))
}

/// `reWhitespace.Split(s, n)` with `n` = 2 or -1 (`usize::MAX`).
fn split_ws(s: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while out.len() + 1 < n {
        let Some(start) = rest.find(is_re_ws) else {
            break;
        };
        let end = rest[start..]
            .find(|c| !is_re_ws(c))
            .map_or(rest.len(), |e| start + e);
        out.push(&rest[..start]);
        rest = &rest[end..];
    }
    out.push(rest);
    out
}

/// `extractBuilderFlags`: leading `--name=value` words. Works on bytes like
/// the Go code, so a non-ASCII byte in a flag becomes the Latin-1 character
/// of the same number.
fn extract_builder_flags(line: &str, escape: char) -> (Cow<'_, str>, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let b = line.as_bytes();
    // A space byte may be 0x85 or 0xa0, inside a UTF-8 sequence: only
    // then is the rest not a slice of `line`.
    let rest_from = |pos: usize| match line.get(pos..) {
        Some(rest) => Cow::Borrowed(rest),
        None => Cow::Owned(String::from_utf8_lossy(&b[pos..]).into_owned()),
    };
    let esc = escape as u32;
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut ch = 0u8;
    let mut pos = 0usize;
    while pos <= b.len() {
        if pos != b.len() {
            ch = b[pos];
        }
        if phase == Phase::Spaces {
            if pos == b.len() {
                break;
            }
            if is_space_byte(ch) {
                pos += 1;
                continue;
            }
            if ch != b'-' || pos + 1 == b.len() || b[pos + 1] != b'-' {
                return (rest_from(pos), words);
            }
            phase = Phase::Word;
        }
        if pos == b.len() {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space_byte(ch) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (rest_from(pos), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
            } else if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            } else if u32::from(ch) == esc && pos + 1 == b.len() {
                // a trailing escape token is dropped
            } else {
                if u32::from(ch) == esc {
                    pos += 1;
                    ch = b[pos];
                }
                word.push(char::from(ch));
            }
        } else if ch == quote || (u32::from(ch) == esc && pos + 1 == b.len()) {
            // closing quote, or a trailing escape token (dropped)
            phase = Phase::Word;
        } else {
            if u32::from(ch) == esc {
                pos += 1;
                ch = b[pos];
            }
            word.push(char::from(ch));
        }
        pos += 1;
    }
    (Cow::Borrowed(""), words)
}

/// `parseWords`: words split on Unicode spaces, quotes kept, an escape token
/// kept together with the character it escapes.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut chars = rest.chars().peekable();
    loop {
        let Some(ch) = chars.next() else {
            if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        };
        let at_end = chars.peek().is_none();
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if at_end {
                    continue;
                }
                word.push(ch);
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                continue;
            }
            word.push(ch);
            continue;
        }
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if at_end {
                phase = Phase::Word;
                continue;
            }
            word.push(ch);
            if let Some(next) = chars.next() {
                word.push(next);
            }
            continue;
        }
        word.push(ch);
    }
    words
}

/// `newKeyValueNode`: key, value and the separator (`=` or empty for the
/// legacy `KEY value` form).
fn key_value(out: &mut Vec<Node>, key: &str, value: &str, sep: &str) {
    out.extend([leaf(key), leaf(value), leaf(sep)]);
}

/// `parseNameVal` for ENV and LABEL.
fn name_val(rest: &str, key: &str, escape: char) -> Result<Vec<Node>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    if !first.contains('=') {
        let Some((name, value)) = split_ws_once(rest) else {
            return Err(format!("{key} must have two arguments"));
        };
        key_value(&mut out, name, value, "");
        return Ok(out);
    }
    for mut word in words {
        let Some(eq) = word.find('=') else {
            return Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                super::quote::go_quote(&word)
            ));
        };
        // The key keeps the word's buffer.
        let value = word[eq + 1..].to_string();
        word.truncate(eq);
        out.extend([owned_leaf(word), owned_leaf(value), leaf("=")]);
    }
    Ok(out)
}

/// `parseNameOrNameVal` for ARG: one node per word.
fn name_or_name_val(rest: &str, escape: char) -> Vec<Node> {
    parse_words(rest, escape)
        .into_iter()
        .map(owned_leaf)
        .collect()
}

/// `parseStringsWhitespaceDelimited`.
fn whitespace_delimited(rest: &str) -> Vec<Node> {
    if rest.is_empty() {
        return Vec::new();
    }
    split_ws(rest, usize::MAX).into_iter().map(leaf).collect()
}

/// `parseString`: the whole rest as one node.
fn string_node(rest: &str) -> Vec<Node> {
    if rest.is_empty() {
        Vec::new()
    } else {
        vec![leaf(rest)]
    }
}

/// `parseJSON`.
fn json(rest: &str) -> Result<Vec<Node>, JsonError> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Err(JsonError::NotJson);
    }
    Ok(parse_string_array(rest)?
        .into_iter()
        .map(owned_leaf)
        .collect())
}

/// `parseMaybeJSON`: exec form, or the rest as one shell-form node.
fn maybe_json(rest: &str) -> Result<(Vec<Node>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match json(rest) {
        Ok(nodes) => Ok((nodes, true)),
        Err(JsonError::NotStringArray) => Err(NOT_STRING_ARRAY.to_string()),
        Err(JsonError::NotJson) => Ok((vec![leaf(rest)], false)),
    }
}

/// `parseMaybeJSONToList`: exec form, or whitespace-separated words.
fn maybe_json_to_list(rest: &str) -> Result<(Vec<Node>, bool), String> {
    match json(rest) {
        Ok(nodes) => Ok((nodes, true)),
        Err(JsonError::NotStringArray) => Err(NOT_STRING_ARRAY.to_string()),
        Err(JsonError::NotJson) => Ok((whitespace_delimited(rest), false)),
    }
}

/// `parseHealthConfig`: the type word (`CMD`, `NONE`) then a maybe-JSON command.
fn health_config(rest: &str) -> Result<(Vec<Node>, bool), String> {
    let b = rest.as_bytes();
    let sep = b.iter().position(|&c| is_space_byte(c)).unwrap_or(b.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let next = b[sep..]
        .iter()
        .position(|&c| !is_space_byte(c))
        .map_or(b.len(), |p| sep + p);
    let typ = String::from_utf8_lossy(&b[..sep]);
    let cmd = String::from_utf8_lossy(&b[next..]);
    let (mut nodes, json) = maybe_json(&cmd)?;
    nodes.insert(0, leaf(&typ));
    Ok((nodes, json))
}

/// `parseSubCommand` for ONBUILD: one argument node whose child is the trigger.
fn sub_command(rest: &str, escape: char) -> Result<Vec<Node>, String> {
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let (cmd, _, _) = split_command(rest, escape);
    match go_lower(cmd).as_str() {
        "onbuild" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        "from" | "maintainer" => {
            return Err(format!(
                "{} isn't allowed as an ONBUILD trigger",
                cmd.to_uppercase()
            ))
        }
        _ => {}
    }
    let child = node_from_line(rest.to_string(), escape)?;
    Ok(vec![Node {
        children: vec![child],
        ..Node::default()
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(nodes: &[Node]) -> Vec<&str> {
        nodes.iter().map(|n| n.value.as_str()).collect()
    }

    #[test]
    fn flags_are_extracted_before_arguments() {
        let (cmd, flags, args) = split_command("COPY --from=a --chown=1 src dst", '\\');
        assert_eq!((cmd, args.as_ref()), ("COPY", "src dst"));
        assert_eq!(flags, vec!["--from=a", "--chown=1"]);
        let (_, flags, args) = split_command("RUN --mount=type=cache,target=\"/a b\" -- --x", '\\');
        assert_eq!(flags, vec!["--mount=type=cache,target=/a b"]);
        assert_eq!(args, "--x");
        let (_, flags, args) = split_command("RUN --a=\\\"b --", '\\');
        assert_eq!((flags, args.as_ref()), (vec!["--a=\"b".to_string()], ""));
        let (_, flags, args) = split_command("RUN -x --y", '\\');
        assert_eq!((flags.len(), args.as_ref()), (0, "-x --y"));
        // U+20000 is F0 A0 80 80, and Go takes the byte A0 for a space: the
        // arguments start inside the character, read as Go reads them.
        let (_, flags, args) = split_command("RUN --x=\u{20000} y", '\\');
        assert_eq!(flags, vec!["--x=\u{f0}"]);
        assert_eq!(args, "\u{fffd}\u{fffd} y");
    }

    #[test]
    fn split_once_is_split_in_two() {
        for s in ["a b", "a \t b c", "a", "", "a ", " a", "a\u{b}b"] {
            let two = split_ws(s, 2);
            let once = split_ws_once(s);
            match two.as_slice() {
                [a, b] => assert_eq!(once, Some((*a, *b)), "{s:?}"),
                _ => assert_eq!(once, None, "{s:?}"),
            }
        }
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(
            parse_words(r#"a="b c" d\ e 'f\' g"#, '\\'),
            vec![r#"a="b c""#, r"d\ e", r"'f\'", "g"]
        );
        assert_eq!(parse_words("x=\"\" y", '\\'), vec!["x=\"\"", "y"]);
    }

    #[test]
    fn env_forms() {
        let n = name_val("A=1 B=\"2 3\"", "ENV", '\\').unwrap();
        assert_eq!(values(&n), vec!["A", "1", "=", "B", "\"2 3\"", "="]);
        let n = name_val("A b c", "ENV", '\\').unwrap();
        assert_eq!(values(&n), vec!["A", "b c", ""]);
        assert_eq!(
            name_val("A", "ENV", '\\').unwrap_err(),
            "ENV must have two arguments"
        );
        assert!(name_val("A=1 B", "LABEL", '\\')
            .unwrap_err()
            .contains("can't find = in \"B\""));
    }

    #[test]
    fn json_or_shell() {
        assert_eq!(
            maybe_json("[\"a\", \"b\"]").unwrap(),
            (vec![leaf("a"), leaf("b")], true)
        );
        assert_eq!(maybe_json("[\"a\"").unwrap(), (vec![leaf("[\"a\"")], false));
        assert_eq!(maybe_json("[1]").unwrap_err(), NOT_STRING_ARRAY);
        assert_eq!(
            values(&maybe_json_to_list("a  b\tc").unwrap().0),
            vec!["a", "b", "c"]
        );
    }

    #[test]
    fn healthcheck_and_onbuild() {
        let (n, json) = health_config("CMD [\"curl\", \"x\"]").unwrap();
        assert_eq!((values(&n), json), (vec!["CMD", "curl", "x"], true));
        assert_eq!(values(&health_config("NONE").unwrap().0), vec!["NONE"]);
        assert!(sub_command("ONBUILD RUN x", '\\').is_err());
        assert!(sub_command("from x", '\\')
            .unwrap_err()
            .contains("FROM isn't allowed"));
        let n = sub_command("RUN x", '\\').unwrap();
        assert_eq!(n[0].children[0].value, "run");
    }
}
