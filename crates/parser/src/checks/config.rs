//! Which findings are shown and whether they fail the build: BuildKit's
//! `# check=skip=A,B;error=true;experimental=C` syntax, from the parser
//! directive, the `BUILDKIT_DOCKERFILE_CHECK` build arg (which replaces it),
//! and `# check=` comments right above one instruction (which add to it
//! for that instruction only).

use std::collections::{BTreeMap, BTreeSet};

use super::rules::{self, Rule};
use super::Finding;

/// One `check=` value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// `skip=all`.
    pub skip_all: bool,
    /// `skip=A,B`.
    pub skip: BTreeSet<String>,
    /// `experimental=all`.
    pub experimental_all: bool,
    /// `experimental=A,B`.
    pub experimental: BTreeSet<String>,
    /// `error=true`: any finding fails the build.
    pub error: bool,
}

impl CheckConfig {
    /// Parses `skip=…;error=…;experimental=…` as BuildKit's
    /// `ParseLintOptions` does; the error is BuildKit's message.
    pub fn parse(value: &str) -> Result<CheckConfig, String> {
        let mut out = CheckConfig::default();
        let value = value.trim();
        if value.is_empty() {
            return Ok(out);
        }
        for part in value.splitn(3, ';') {
            let Some((key, v)) = part.split_once('=') else {
                return Err(format!("invalid check option {part:?}"));
            };
            let v = v.trim();
            let names = || v.split(',').map(|s| s.trim().to_string()).collect();
            match key.trim() {
                "skip" if v == "all" => out.skip_all = true,
                "skip" => out.skip = names(),
                "experimental" if v == "all" => out.experimental_all = true,
                "experimental" => out.experimental = names(),
                "error" => {
                    out.error = parse_go_bool(v)
                        .ok_or_else(|| format!("failed to parse check option {part:?}"))?
                }
                other => return Err(format!("invalid check option {other:?}")),
            }
        }
        Ok(out)
    }

    /// `self` with `other`'s skips and experiments added.
    fn merged(&self, other: &CheckConfig) -> CheckConfig {
        let mut out = self.clone();
        out.skip_all |= other.skip_all;
        out.experimental_all |= other.experimental_all;
        out.skip.extend(other.skip.iter().cloned());
        out.experimental.extend(other.experimental.iter().cloned());
        out
    }

    /// Whether `rule` runs (BuildKit: experimental rules only when named,
    /// and then even under `skip=all`).
    pub fn enabled(&self, rule: &Rule) -> bool {
        if rule.experimental {
            return self.experimental_all || self.experimental.contains(rule.name);
        }
        !self.skip_all && !self.skip.contains(rule.name)
    }

    /// Names that are no rule: a misspelt skip silently does nothing in
    /// BuildKit, rbk says so.
    fn unknown_names(&self) -> Vec<&str> {
        self.skip
            .iter()
            .chain(&self.experimental)
            .map(String::as_str)
            .filter(|n| !n.is_empty() && rules::find(n).is_none())
            .collect()
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The check configuration of one Dockerfile.
#[derive(Clone, Debug, Default)]
pub struct Checks {
    /// The file-wide configuration.
    pub config: CheckConfig,
    /// Extra configuration from `# check=` comments, by instruction line.
    by_line: BTreeMap<u32, CheckConfig>,
    /// Messages about names in `skip=`/`experimental=` that are no rule.
    pub notes: Vec<String>,
}

impl Checks {
    /// Reads the configuration: `directive` is the `# check=` directive,
    /// `build_arg` the `BUILDKIT_DOCKERFILE_CHECK` build arg (which wins),
    /// `text` the Dockerfile (for per-instruction comments). The error is
    /// BuildKit's text, prefixed with the setting it came from; the caller
    /// names the Dockerfile (see the crate docs on `Result<_, String>`).
    pub fn new(
        directive: Option<&str>,
        build_arg: Option<&str>,
        text: &str,
    ) -> Result<Checks, String> {
        let (source, value) = match (build_arg, directive) {
            (Some(v), _) => ("the BUILDKIT_DOCKERFILE_CHECK build arg", v),
            (None, Some(v)) => ("the # check= directive", v),
            (None, None) => ("", ""),
        };
        let config = CheckConfig::parse(value).map_err(|e| format!("{source}: {e}"))?;
        let mut notes = unknown_notes(&config, source);
        let mut by_line = BTreeMap::new();
        for (line, comments) in comments_above(text) {
            let Some(extra) = comments.iter().find_map(|c| comment_config(c)) else {
                continue;
            };
            // BuildKit ignores a comment it cannot parse.
            if let Ok(extra) = extra {
                notes.extend(unknown_notes(
                    &extra,
                    &format!("the # check= comment above line {line}"),
                ));
                by_line.insert(line, extra);
            }
        }
        Ok(Checks {
            config,
            by_line,
            notes,
        })
    }

    /// Whether `finding` is shown.
    pub fn keep(&self, finding: &Finding) -> bool {
        match self.by_line.get(&finding.line) {
            Some(extra) => self.config.merged(extra).enabled(finding.rule),
            None => self.config.enabled(finding.rule),
        }
    }

    /// The findings shown, in order.
    pub fn filter(&self, findings: impl IntoIterator<Item = Finding>) -> Vec<Finding> {
        findings.into_iter().filter(|f| self.keep(f)).collect()
    }

    /// Under `error=true`, BuildKit's error for the shown findings.
    pub fn violation(&self, shown: &[Finding]) -> Option<String> {
        if !self.config.error {
            return None;
        }
        let names: BTreeSet<&str> = shown
            .iter()
            .filter(|f| f.rule.level == rules::Level::Warn)
            .map(|f| f.rule.name)
            .collect();
        (!names.is_empty()).then(|| {
            let names: Vec<&str> = names.into_iter().collect();
            format!("lint violation found for rules: {}", names.join(", "))
        })
    }
}

fn unknown_notes(config: &CheckConfig, source: &str) -> Vec<String> {
    config
        .unknown_names()
        .into_iter()
        .map(|name| {
            let hint = suggest(name, rules::ALL.iter().map(|r| r.name))
                .map(|m| format!(" (did you mean {m}?)"))
                .unwrap_or_default();
            format!("{source} names {name:?}, which is no build check{hint}; it has no effect")
        })
        .collect()
}

/// A `check=VALUE` comment (the `#` already removed): its value up to the
/// first space, parsed.
fn comment_config(comment: &str) -> Option<Result<CheckConfig, String>> {
    let (key, value) = comment.split_once('=')?;
    if !key.trim().eq_ignore_ascii_case("check") {
        return None;
    }
    let value = value.trim_start();
    let value = value.split(' ').next().unwrap_or_default();
    Some(CheckConfig::parse(value))
}

/// For each line that starts an instruction, the comments gathered since
/// the previous instruction, as BuildKit's parser keeps them
/// (`PrevComment`): `#` and surrounding space removed, reset by an empty
/// `#` line, leading parser directives left out.
pub(crate) fn comments_above(text: &str) -> BTreeMap<u32, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut comments: Vec<String> = Vec::new();
    let mut in_directives = true;
    let mut continuing = false;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if let Some(comment) = trimmed.strip_prefix('#') {
            let is_directive = in_directives && is_directive(comment);
            in_directives &= is_directive;
            if continuing || is_directive {
                continue;
            }
            let comment = comment.trim();
            match comment.is_empty() {
                true => comments.clear(),
                false => comments.push(comment.to_string()),
            }
            continue;
        }
        in_directives = false;
        if trimmed.is_empty() {
            continue;
        }
        if !continuing {
            out.insert(i as u32 + 1, std::mem::take(&mut comments));
        }
        let t = trimmed.trim_end();
        continuing = t.ends_with('\\') || t.ends_with('`');
    }
    out
}

fn is_directive(comment: &str) -> bool {
    comment.split_once('=').is_some_and(|(k, _)| {
        matches!(
            k.trim().to_ascii_lowercase().as_str(),
            "syntax" | "escape" | "check"
        )
    })
}

/// BuildKit's `suggest.Search`: the closest option within Levenshtein
/// distance 2, `None` for an exact match.
pub(crate) fn suggest<'a>(
    value: &str,
    options: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best = None;
    let mut min = 3;
    let len = value.chars().count();
    for option in options {
        if option == value {
            return None;
        }
        // The distance is at least the difference in length: an option
        // that cannot come closer than `min` is not worth the comparison
        // (lowering asks this for every unset name of every instruction).
        if option.chars().count().abs_diff(len) >= min {
            continue;
        }
        let d = strsim::levenshtein(value, option);
        if d < min {
            min = d;
            best = Some(option);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_buildkit() {
        let c = CheckConfig::parse("skip=A, B;error=true").unwrap();
        assert!(c.error && c.skip.contains("A") && c.skip.contains("B"));
        assert!(CheckConfig::parse("skip=all").unwrap().skip_all);
        assert_eq!(
            CheckConfig::parse("bogus=1").unwrap_err(),
            "invalid check option \"bogus\""
        );
        assert_eq!(
            CheckConfig::parse("error=maybe").unwrap_err(),
            "failed to parse check option \"error=maybe\""
        );
    }

    #[test]
    fn comments_are_gathered_per_instruction() {
        let text = "# check=skip=A\n# hello\nFROM x \\\n  # inner\n  AS y\n#\n# check=skip=B // why\nRUN z\n";
        let c = comments_above(text);
        assert_eq!(c[&3], vec!["hello".to_string()]);
        assert_eq!(c[&8], vec!["check=skip=B // why".to_string()]);
        let checks = Checks::new(Some("skip=A"), None, text).unwrap();
        assert!(checks.by_line[&8].skip.contains("B"));
        assert!(
            checks.notes.iter().any(|n| n.contains("\"A\"")),
            "{:?}",
            checks.notes
        );
    }
}
