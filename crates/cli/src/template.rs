//! `--format`: Go templates, as the docker CLI takes them.
//!
//! Templates run on [`gtmpl`] (Go's `text/template` language: pipelines,
//! `if`/`else`/`with`/`range`, variables, `index`, `len`, `printf`,
//! comparisons) over rows given as JSON values. As docker does:
//!
//! - `table TEMPLATE` prints a header row (the template run over the column
//!   names) then one row per item, aligned on `\t` like Go's tabwriter
//!   (minimum width 10, padding 3); `table` alone is the command's default
//!   table;
//! - `json` prints each item as one line of JSON (`{{json .}}`);
//! - anything else is run once per item, each followed by a newline;
//! - the two-character sequences `\t` and `\n` in the template become a tab
//!   and a newline.
//!
//! docker's extra functions are registered: `json`, `join`, `split`,
//! `upper`, `lower`, `title`, `pad`, `truncate`; `len` also takes maps.
//! gtmpl prints lists and maps in Rust's debug form, so every printing
//! action gets a final `| _print` stage that prints values as Go's `fmt`
//! does (`[a b]`, `map[k:v]`, `<nil>`, `<no value>`).
//!
//! JSON objects become Go structs (a missing field is an error, as in
//! docker), except the values of `Labels`, `ExposedPorts`, `Volumes` and
//! `Data`, which are maps in docker's types (a missing key prints
//! `<no value>`).

use std::collections::HashMap;
use std::io::Write;

use anyhow::{anyhow, Context as _};
use gtmpl::{Context, Func, FuncError, Template, Value};
use serde_json::Value as Json;

/// Keys whose object values are Go maps in docker's types.
const MAP_KEYS: &[&str] = &["Labels", "ExposedPorts", "Volumes", "Data"];

/// A parsed `--format` value.
pub(crate) enum Format {
    /// `table` alone: the command's own table.
    DefaultTable,
    /// `json`: one JSON line per item.
    Json,
    /// `table TEMPLATE`.
    Table { rows: Template, header: Template },
    /// Any other template.
    Raw(Template),
}

impl Format {
    /// Parses `format` (see the module docs).
    pub(crate) fn parse(format: &str) -> anyhow::Result<Format> {
        let trimmed = format.trim();
        if trimmed == "table" {
            return Ok(Format::DefaultTable);
        }
        if trimmed == "json" {
            return Ok(Format::Json);
        }
        let (is_table, text) = match trimmed.strip_prefix("table") {
            Some(rest) if rest.starts_with([' ', '\t']) || rest.starts_with("\\t") => (true, rest),
            _ => (false, format),
        };
        let text = text
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        let text = add_print_stages(&text);
        let compile = |funcs: &[(&str, Func)]| -> anyhow::Result<Template> {
            let mut template = Template::default();
            template.add_funcs(funcs);
            template
                .parse(text.as_str())
                .map_err(|e| anyhow!("template parsing error: {e}"))
                .with_context(|| format!("invalid --format {format:?}"))?;
            Ok(template)
        };
        let rows = compile(FUNCTIONS)?;
        Ok(match is_table {
            true => Format::Table {
                rows,
                header: compile(HEADER_FUNCTIONS)?,
            },
            false => Format::Raw(rows),
        })
    }

    /// Writes `items` with this format; `headers` maps field names to
    /// column titles (for `table`). `DefaultTable` writes nothing: the
    /// caller prints its own table.
    pub(crate) fn write(
        &self,
        out: &mut impl Write,
        items: &[Json],
        headers: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        match self {
            Format::DefaultTable => {}
            Format::Json => {
                for item in items {
                    writeln!(out, "{}", serde_json::to_string(item)?)?;
                }
            }
            Format::Raw(template) => {
                for item in items {
                    writeln!(out, "{}", render(template, item)?)?;
                }
            }
            Format::Table { rows, header } => {
                let names: serde_json::Map<String, Json> = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), Json::String(v.to_string())))
                    .collect();
                let mut lines = vec![render(header, &Json::Object(names))?];
                for item in items {
                    lines.push(render(rows, item)?);
                }
                write_tabbed(out, &lines.join("\n"))?;
            }
        }
        Ok(())
    }
}

/// Runs `template` over `data`.
pub(crate) fn render(template: &Template, data: &Json) -> anyhow::Result<String> {
    template
        .render(&Context::from(to_value(data, false)))
        .map_err(|e| anyhow!("template: {e}"))
}

/// Go's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)` over `text`: every
/// tab-terminated cell is padded to its column's width.
pub(crate) fn write_tabbed(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for cells in &lines {
        for (c, cell) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
            if widths.len() <= c {
                widths.push(10);
            }
            widths[c] = widths[c].max(cell.chars().count() + 3);
        }
    }
    for cells in &lines {
        let mut line = String::new();
        for (c, cell) in cells.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < cells.len() {
                line.push_str(&" ".repeat(widths[c] - cell.chars().count()));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// A JSON value as a template value (see the module docs for maps).
fn to_value(json: &Json, map: bool) -> Value {
    match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => Value::from(u),
            (_, Some(i), _) => Value::from(i),
            (_, _, f) => Value::from(f.unwrap_or(0.0)),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(|i| to_value(i, false)).collect()),
        Json::Object(fields) => {
            let fields: HashMap<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), to_value(v, MAP_KEYS.contains(&k.as_str()))))
                .collect();
            match map {
                true => Value::Map(fields),
                false => Value::Object(fields),
            }
        }
    }
}

/// A template value as JSON (for the `json` function).
fn to_json(value: &Value) -> Json {
    match value {
        Value::NoValue | Value::Nil | Value::Function(_) => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.clone()),
        Value::Number(n) => serde_json::from_str(&n.to_string()).unwrap_or(Json::Null),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Object(fields) | Value::Map(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
    }
}

/// A value printed as Go's `fmt.Print` prints the decoded Go value.
fn go_fmt(value: &Value) -> String {
    match value {
        Value::NoValue => "<no value>".into(),
        Value::Nil => "<nil>".into(),
        Value::Function(_) => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_fmt).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(fields) | Value::Map(fields) => {
            let mut items: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_fmt(v)))
                .collect();
            items.sort();
            format!("map[{}]", items.join(" "))
        }
    }
}

/// Appends `| _print` to every action that prints (see the module docs).
fn add_print_stages(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let body = &rest[start + 2..];
        let Some(end) = action_end(body) else {
            out.push_str(&rest[start..]); // unclosed: gtmpl reports it
            return out;
        };
        out.push_str("{{");
        out.push_str(&with_print_stage(&body[..end]));
        out.push_str("}}");
        rest = &body[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The offset of the `}}` closing an action, skipping quoted text.
fn action_end(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'"' | b'\'' | b'`') => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    i += if bytes[i] == b'\\' && q != b'`' { 2 } else { 1 };
                }
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn with_print_stage(action: &str) -> String {
    let lead = if action.starts_with("- ") { 2 } else { 0 };
    let trail = if action.len() >= lead + 2 && action.ends_with(" -") {
        2
    } else {
        0
    };
    let inner = action[lead..action.len() - trail].trim();
    let first = inner
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("");
    const KEYWORDS: &[&str] = &[
        "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
    ];
    let assigns = first.starts_with('$') && {
        let after = inner.trim_start_matches(|c: char| c != ':' && c != '=' && c != '|');
        after.starts_with(":=") || (after.starts_with('=') && !after.starts_with("=="))
    };
    if inner.is_empty() || inner.starts_with("/*") || KEYWORDS.contains(&first) || assigns {
        return action.to_string();
    }
    format!(
        "{}{inner} | _print{}",
        &action[..lead],
        &action[action.len() - trail..]
    )
}

fn string_arg(args: &[Value], i: usize, name: &str) -> Result<String, FuncError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Ok(go_fmt(other)),
        None => Err(FuncError::AtLeastXArgs(name.into(), i + 1)),
    }
}

fn int_arg(args: &[Value], i: usize, name: &str) -> Result<usize, FuncError> {
    match args.get(i) {
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| FuncError::Generic(format!("{name}: expected a count, got {n}"))),
        _ => Err(FuncError::Generic(format!(
            "{name}: argument {} must be a number",
            i + 1
        ))),
    }
}

fn f_print(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(args.iter().map(go_fmt).collect()))
}

fn f_json(args: &[Value]) -> Result<Value, FuncError> {
    let value = args
        .first()
        .ok_or_else(|| FuncError::ExactlyXArgs("json".into(), 1))?;
    serde_json::to_string(&to_json(value))
        .map(Value::String)
        .map_err(|e| FuncError::Generic(e.to_string()))
}

fn f_join(args: &[Value]) -> Result<Value, FuncError> {
    let sep = string_arg(args, 1, "join")?;
    match &args[0] {
        Value::Array(items) => Ok(Value::String(
            items.iter().map(go_fmt).collect::<Vec<_>>().join(&sep),
        )),
        other => Ok(Value::String(go_fmt(other))),
    }
}

fn f_split(args: &[Value]) -> Result<Value, FuncError> {
    let (s, sep) = (string_arg(args, 0, "split")?, string_arg(args, 1, "split")?);
    let parts = s.split(sep.as_str()).map(|p| Value::String(p.into()));
    Ok(Value::Array(parts.collect()))
}

fn f_upper(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(string_arg(args, 0, "upper")?.to_uppercase()))
}

fn f_lower(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(string_arg(args, 0, "lower")?.to_lowercase()))
}

/// Go's `strings.Title`: the first letter of each word in upper case.
fn f_title(args: &[Value]) -> Result<Value, FuncError> {
    let s = string_arg(args, 0, "title")?;
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    Ok(Value::String(out))
}

fn f_pad(args: &[Value]) -> Result<Value, FuncError> {
    let s = string_arg(args, 0, "pad")?;
    let (left, right) = (int_arg(args, 1, "pad")?, int_arg(args, 2, "pad")?);
    Ok(Value::String(format!(
        "{}{s}{}",
        " ".repeat(left),
        " ".repeat(right)
    )))
}

fn f_truncate(args: &[Value]) -> Result<Value, FuncError> {
    let s = string_arg(args, 0, "truncate")?;
    let n = int_arg(args, 1, "truncate")?;
    Ok(Value::String(s.chars().take(n).collect()))
}

fn f_len(args: &[Value]) -> Result<Value, FuncError> {
    match args {
        [Value::String(s)] => Ok(Value::from(s.len() as u64)),
        [Value::Array(a)] => Ok(Value::from(a.len() as u64)),
        [Value::Object(m)] | [Value::Map(m)] => Ok(Value::from(m.len() as u64)),
        [other] => Err(FuncError::Generic(format!(
            "len of {} is not defined",
            go_fmt(other)
        ))),
        _ => Err(FuncError::ExactlyXArgs("len".into(), 1)),
    }
}

/// docker's header functions: each returns its first argument unchanged.
fn f_first(args: &[Value]) -> Result<Value, FuncError> {
    Ok(args.first().cloned().unwrap_or(Value::NoValue))
}

const FUNCTIONS: &[(&str, Func)] = &[
    ("_print", f_print),
    ("json", f_json),
    ("join", f_join),
    ("split", f_split),
    ("upper", f_upper),
    ("lower", f_lower),
    ("title", f_title),
    ("pad", f_pad),
    ("truncate", f_truncate),
    ("len", f_len),
];

const HEADER_FUNCTIONS: &[(&str, Func)] = &[
    ("_print", f_print),
    ("json", f_first),
    ("join", f_first),
    ("split", f_first),
    ("upper", f_first),
    ("lower", f_first),
    ("title", f_first),
    ("pad", f_first),
    ("truncate", f_first),
    ("len", f_len),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(format: &str, data: &Json) -> String {
        let mut out = Vec::new();
        Format::parse(format)
            .unwrap()
            .write(&mut out, std::slice::from_ref(data), &[("ID", "IMAGE ID")])
            .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_print_like_go() {
        let data = json!({"ID": "ab", "Config": {"Env": ["A=1", "B=2"], "Cmd": null,
            "Labels": {"b": "2", "a": "1"}}, "Size": 12});
        assert_eq!(run("{{.ID}}", &data), "ab\n");
        assert_eq!(run("{{.Config.Env}} {{ .Size }}", &data), "[A=1 B=2] 12\n");
        assert_eq!(run("{{json .Config.Env}}", &data), "[\"A=1\",\"B=2\"]\n");
        assert_eq!(run("{{.Config.Cmd}}", &data), "<nil>\n");
        assert_eq!(run("{{.Config.Labels}}", &data), "map[a:1 b:2]\n");
        assert_eq!(run("{{.Config.Labels.zz}}", &data), "<no value>\n");
        assert_eq!(run("{{index .Config.Labels \"a\"}}", &data), "1\n");
        assert_eq!(run("{{join .Config.Env \",\"}}", &data), "A=1,B=2\n");
        assert_eq!(
            run("{{len .Config.Env}} {{len .Config.Labels}}", &data),
            "2 2\n"
        );
        assert_eq!(
            run("{{range .Config.Env}}[{{.}}]{{end}}", &data),
            "[A=1][B=2]\n"
        );
        assert_eq!(
            run("{{if .Config.Env}}yes{{else}}no{{end}}", &data),
            "yes\n"
        );
        assert_eq!(run("{{printf \"%s-%d\" .ID .Size}}", &data), "ab-12\n");
        assert_eq!(
            run("{{upper .ID}} {{lower \"X\"}} {{title \"a b\"}}", &data),
            "AB x A B\n"
        );
        assert_eq!(run("{{$x := .ID}}{{$x}}", &data), "ab\n");
        assert_eq!(run("{{.ID | printf \"%s}}\"}}", &data), "ab}}\n");
        assert!(Format::parse("{{if .ID}}").is_err());
    }

    #[test]
    fn table_and_json_formats() {
        let data = json!({"ID": "abc", "Size": "1MB"});
        assert_eq!(
            run("table {{.ID}}\\t{{.ID}}", &data),
            "IMAGE ID   IMAGE ID\nabc        abc\n"
        );
        assert_eq!(run("json", &data), "{\"ID\":\"abc\",\"Size\":\"1MB\"}\n");
        assert_eq!(
            run("{{json .}}", &data),
            "{\"ID\":\"abc\",\"Size\":\"1MB\"}\n"
        );
        assert!(matches!(
            Format::parse("table").unwrap(),
            Format::DefaultTable
        ));
    }
}
