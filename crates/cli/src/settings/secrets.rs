//! `rbk build --secret` and `--ssh`, with buildx's syntax:
//! `--secret id=ID,src=FILE` (or `source=`), `--secret id=ID,env=VAR`,
//! `--secret id=ID` (the variable `ID` if set, as buildx does);
//! `--ssh default` (`$SSH_AUTH_SOCK`), `--ssh ID=SOCKET`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use rbk_exec::{Secret, MAX_SECRET_SIZE};

/// Reads every `--secret` value now, so that a missing file or variable is
/// reported before anything runs.
pub(crate) fn parse_secrets(specs: &[String]) -> anyhow::Result<BTreeMap<String, Secret>> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let (id, secret) = parse_secret(spec).with_context(|| format!("--secret {spec:?}"))?;
        out.insert(id, secret);
    }
    Ok(out)
}

fn parse_secret(spec: &str) -> anyhow::Result<(String, Secret)> {
    let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
    for field in spec.split(',') {
        let (key, value) = field
            .split_once('=')
            .with_context(|| format!("{field:?} is not KEY=VALUE"))?;
        match key.to_ascii_lowercase().as_str() {
            "id" => id = Some(value.to_string()),
            "src" | "source" => src = Some(value.to_string()),
            "env" => env = Some(value.to_string()),
            "type" => kind = Some(value.to_string()),
            other => bail!("unknown key {other:?} (expected id, src, env or type)"),
        }
    }
    let id = id
        .or_else(|| src.clone())
        .filter(|i| !i.is_empty())
        .context("no id= given")?;
    let value = match (kind.as_deref(), src, env) {
        (Some("env"), Some(var), None) | (_, None, Some(var)) => env_value(&var)?,
        (Some("file") | None, Some(path), None) => read_file(&path)?,
        (Some("env"), None, None) => env_value(&id)?,
        (None, None, None) => match std::env::var_os(&id) {
            Some(_) => env_value(&id)?,
            None => bail!("no src= or env= given, and no variable {id} is set"),
        },
        (Some(other), ..) if other != "env" && other != "file" => {
            bail!("unknown type {other:?} (expected file or env)")
        }
        _ => bail!("give either src= or env=, not both"),
    };
    if value.len() > MAX_SECRET_SIZE {
        bail!(
            "the secret is {} bytes, over the {MAX_SECRET_SIZE}-byte limit",
            value.len()
        );
    }
    Ok((id, Secret::new(value)))
}

fn env_value(var: &str) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::ffi::OsStringExt;
    std::env::var_os(var)
        .map(OsStringExt::into_vec)
        .with_context(|| format!("the variable {var} is not set"))
}

fn read_file(path: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {path}"))
}

/// `--ssh` specs by id; `default` alone means `$SSH_AUTH_SOCK`.
pub(crate) fn parse_ssh(specs: &[String]) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let (id, path) = match spec.split_once('=') {
            Some((id, path)) => (id.to_string(), path.to_string()),
            None => {
                let sock = std::env::var("SSH_AUTH_SOCK").with_context(|| {
                    format!("--ssh {spec}: no path given and SSH_AUTH_SOCK is not set")
                })?;
                (spec.clone(), sock)
            }
        };
        if id.is_empty() || path.is_empty() || path.contains(',') {
            bail!("--ssh {spec:?}: expected ID=SOCKET (one agent socket per id)");
        }
        out.insert(id, PathBuf::from(path));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_specs() {
        let dir = std::env::temp_dir().join(format!("rbk-secret-{}", std::process::id()));
        std::fs::write(&dir, "v1").unwrap();
        let src = format!("id=a,src={}", dir.display());
        let (id, s) = parse_secret(&src).unwrap();
        assert_eq!((id.as_str(), s.bytes()), ("a", &b"v1"[..]));
        std::fs::remove_file(&dir).unwrap();
        assert!(parse_secret("id=a,src=/nonexistent/x")
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/x"));
        assert!(parse_secret("id=a,bogus=1").is_err());
        assert!(parse_secret("src=").is_err());
        assert!(parse_secret("id=a,env=RBK_SURELY_UNSET_VAR").is_err());
    }

    #[test]
    fn ssh_specs() {
        let m = parse_ssh(&["x=/tmp/a.sock".into()]).unwrap();
        assert_eq!(m["x"], PathBuf::from("/tmp/a.sock"));
        assert!(parse_ssh(&["x=".into()]).is_err());
        assert!(parse_ssh(&["x=/a,/b".into()]).is_err());
    }
}
