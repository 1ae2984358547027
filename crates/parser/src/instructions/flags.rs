//! `--flag[=value]` words, with BuildKit's `BFlags` rules: every flag must be
//! declared by the instruction, booleans accept `--x`, `--x=true|false`,
//! strings need `=`, and only list flags may repeat.

use std::collections::BTreeMap;

/// What a declared flag accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FlagKind {
    /// `--x`, `--x=true`, `--x=false`.
    Bool,
    /// `--x=value`, at most once.
    String,
    /// `--x=value`, any number of times.
    Strings,
}

/// The flags an instruction was given, after validation.
#[derive(Clone, Debug, Default)]
pub(crate) struct Flags {
    values: BTreeMap<String, Vec<String>>,
}

impl Flags {
    /// Checks `words` against the declared `spec`; the error is BuildKit's message.
    pub(crate) fn parse(words: &[String], spec: &[(&str, FlagKind)]) -> Result<Flags, String> {
        let mut flags = Flags::default();
        for word in words {
            let Some(arg) = word.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {word}"));
            };
            if arg.is_empty() {
                break;
            }
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg, None),
            };
            let Some(&(_, kind)) = spec.iter().find(|(n, _)| *n == name) else {
                return Err(format!("unknown flag: {name}"));
            };
            if kind != FlagKind::Strings && flags.values.contains_key(name) {
                return Err(format!("duplicate flag specified: {name}"));
            }
            let value = check_value(name, kind, value)?;
            flags
                .values
                .entry(name.to_string())
                .or_default()
                .push(value);
        }
        Ok(flags)
    }

    /// The value of a string flag, if given.
    pub(crate) fn string(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    /// A boolean flag (false when absent).
    pub(crate) fn bool(&self, name: &str) -> bool {
        self.string(name) == Some("true")
    }

    /// Whether the flag was given at all.
    pub(crate) fn used(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// Every value of a list flag, in order.
    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }
}

fn check_value(name: &str, kind: FlagKind, value: Option<&str>) -> Result<String, String> {
    match (kind, value) {
        (FlagKind::Bool, None) => Ok("true".to_string()),
        (FlagKind::Bool, Some("")) => Err(format!("missing a value on flag: {name}")),
        (FlagKind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
            b @ ("true" | "false") => Ok(b.to_string()),
            _ => Err(format!("expecting boolean value for flag {name}, not: {v}")),
        },
        (_, None) => Err(format!("missing a value on flag: {name}")),
        (_, Some(v)) => Ok(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &[(&str, FlagKind)] = &[
        ("link", FlagKind::Bool),
        ("from", FlagKind::String),
        ("exclude", FlagKind::Strings),
    ];

    fn parse(words: &[&str]) -> Result<Flags, String> {
        let words: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        Flags::parse(&words, SPEC)
    }

    #[test]
    fn booleans_take_bare_or_explicit_values() {
        assert!(parse(&["--link"]).unwrap().bool("link"));
        assert!(parse(&["--link=TRUE"]).unwrap().bool("link"));
        assert!(!parse(&["--link=false"]).unwrap().bool("link"));
        assert!(parse(&["--link=false"]).unwrap().used("link"));
        assert!(!parse(&[]).unwrap().bool("link"));
        assert_eq!(
            parse(&["--link="]).unwrap_err(),
            "missing a value on flag: link"
        );
        assert_eq!(
            parse(&["--link=yes"]).unwrap_err(),
            "expecting boolean value for flag link, not: yes"
        );
    }

    #[test]
    fn strings_need_a_value_and_appear_once() {
        assert_eq!(parse(&["--from=a"]).unwrap().string("from"), Some("a"));
        assert_eq!(parse(&["--from="]).unwrap().string("from"), Some(""));
        assert_eq!(
            parse(&["--from"]).unwrap_err(),
            "missing a value on flag: from"
        );
        assert_eq!(
            parse(&["--from=a", "--from=b"]).unwrap_err(),
            "duplicate flag specified: from"
        );
        assert_eq!(
            parse(&["--link", "--link"]).unwrap_err(),
            "duplicate flag specified: link"
        );
    }

    #[test]
    fn lists_repeat_and_unknown_flags_fail() {
        let f = parse(&["--exclude=a", "--exclude=b"]).unwrap();
        assert_eq!(f.strings("exclude"), vec!["a", "b"]);
        assert_eq!(parse(&["--mont=x"]).unwrap_err(), "unknown flag: mont");
        assert_eq!(parse(&["-x"]).unwrap_err(), "arg should start with -- : -x");
        assert!(parse(&["--", "--whatever"]).is_ok());
    }
}
