//! `--change` instructions for `rbk import`, with `docker import --change`'s
//! forms: `CMD ["a","b"]` or `CMD a b` (run by `/bin/sh -c`), `ENV K=V …` or
//! `ENV K V`, `LABEL K=V …`, `EXPOSE 80 53/udp`, `WORKDIR`, `USER`, `VOLUME`,
//! `STOPSIGNAL`.

use rbk_store::image::ContainerConfig;

use crate::{Error, Result};

/// Applies one `--change` instruction to `config` (`rbk import`, `rbk
/// commit`).
pub fn apply_change(config: &mut ContainerConfig, change: &str) -> Result<()> {
    let change = change.trim();
    let (keyword, rest) = change
        .split_once(char::is_whitespace)
        .unwrap_or((change, ""));
    let rest = rest.trim();
    match keyword.to_ascii_uppercase().as_str() {
        "CMD" => config.cmd = Some(command(rest)?),
        "ENTRYPOINT" => config.entrypoint = Some(command(rest)?),
        "ENV" => {
            for (k, v) in pairs(rest, "ENV")? {
                config.env.retain(|e| e.split('=').next() != Some(k.as_str()));
                config.env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => config.labels.extend(pairs(rest, "LABEL")?),
        "EXPOSE" => {
            for port in words(rest)? {
                let port = if port.contains('/') { port } else { format!("{port}/tcp") };
                config.exposed_ports.insert(port, Default::default());
            }
        }
        "VOLUME" => {
            for v in list_or_words(rest)? {
                config.volumes.insert(v, Default::default());
            }
        }
        "WORKDIR" => config.working_dir = nonempty(rest, "WORKDIR")?,
        "USER" => config.user = nonempty(rest, "USER")?,
        "STOPSIGNAL" => config.stop_signal = nonempty(rest, "STOPSIGNAL")?,
        other => return Err(Error::Invalid(format!("--change {change:?}: {other} is not supported (use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME or WORKDIR)"))),
    }
    Ok(())
}

fn nonempty(rest: &str, what: &str) -> Result<String> {
    if rest.is_empty() {
        return Err(Error::Invalid(format!("--change {what} needs a value")));
    }
    Ok(rest.to_string())
}

/// Exec form (a JSON array of strings) or shell form.
fn command(rest: &str) -> Result<Vec<String>> {
    if rest.starts_with('[') {
        if let Ok(list) = serde_json::from_str::<Vec<String>>(rest) {
            return Ok(list);
        }
    }
    Ok(vec![
        "/bin/sh".into(),
        "-c".into(),
        nonempty(rest, "CMD/ENTRYPOINT")?,
    ])
}

fn list_or_words(rest: &str) -> Result<Vec<String>> {
    if rest.starts_with('[') {
        return serde_json::from_str(rest)
            .map_err(|e| Error::Invalid(format!("--change VOLUME: invalid JSON array: {e}")));
    }
    words(rest)
}

/// Splits on whitespace, honouring double and single quotes and `\` escapes.
fn words(text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => out.extend(cur.take()),
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.get_or_insert_with(String::new);
            }
            (Some(q), c) if c == q => quote = None,
            (q, '\\') if q != Some('\'') => {
                let next = chars
                    .next()
                    .ok_or_else(|| Error::Invalid("--change: trailing backslash".into()))?;
                cur.get_or_insert_with(String::new).push(next);
            }
            (_, c) => cur.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        return Err(Error::Invalid(format!(
            "--change: unterminated quote in {text:?}"
        )));
    }
    out.extend(cur);
    Ok(out)
}

/// `K=V K2="v 2"`, or the legacy `K V with spaces` (one pair).
fn pairs(rest: &str, what: &str) -> Result<Vec<(String, String)>> {
    let first = rest.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if k.is_empty() {
            return Err(Error::Invalid(format!("--change {what} needs KEY=VALUE")));
        }
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words(rest)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::Invalid(format!(
                "--change {what}: {w:?} is not KEY=VALUE"
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> ContainerConfig {
        let mut c = ContainerConfig::default();
        for ch in changes {
            apply_change(&mut c, ch).unwrap();
        }
        c
    }

    #[test]
    fn shell_and_exec_forms() {
        let c = applied(&[r#"CMD ["/bin/sh", "-l"]"#, "ENTRYPOINT echo hi"]);
        assert_eq!(c.cmd.unwrap(), ["/bin/sh", "-l"]);
        assert_eq!(c.entrypoint.unwrap(), ["/bin/sh", "-c", "echo hi"]);
    }

    #[test]
    fn env_label_expose_workdir_user() {
        let c = applied(&[
            r#"ENV A=1 B="two words""#,
            "ENV A 3",
            "LABEL org.x=y",
            "EXPOSE 80 53/udp",
            "WORKDIR /srv",
            "user nobody",
        ]);
        assert_eq!(c.env, ["B=two words", "A=3"]);
        assert_eq!(c.labels["org.x"], "y");
        assert!(c.exposed_ports.contains_key("80/tcp") && c.exposed_ports.contains_key("53/udp"));
        assert_eq!(c.working_dir, "/srv");
        assert_eq!(c.user, "nobody");
    }

    #[test]
    fn rejects_unknown_instructions_and_bad_quotes() {
        let mut c = ContainerConfig::default();
        assert!(apply_change(&mut c, "RUN rm -rf /").is_err());
        assert!(apply_change(&mut c, "ENV A=\"x").is_err());
        assert!(apply_change(&mut c, "WORKDIR").is_err());
    }
}
