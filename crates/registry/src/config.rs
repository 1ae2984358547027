//! Credentials in Docker's `config.json`, read and written the way the
//! `docker` client does.
//!
//! Lookup order for a registry: `credHelpers[registry]`, then `credsStore`,
//! then `auths[registry].auth` (base64 `user:password`). Docker Hub's key is
//! `https://index.docker.io/v1/`; other keys may carry a scheme or a path
//! (`https://host:5000/v1/`), which are ignored when matching. A helper
//! whose program is not installed is skipped (the file may come from another
//! machine); one that runs and fails is an error, unless it says it has no
//! credentials. `login` writes `auths` only (not helpers) and keeps every
//! other field of the file as it was.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine;
use serde_json::{Map, Value};

use crate::{Error, Result};

/// Docker Hub's key in `config.json`.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ****)", self.username)
    }
}

/// The key `registry` is filed under.
fn key_for(registry: &str) -> String {
    if registry == rbk_store::DEFAULT_DOMAIN {
        DOCKER_HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// `https://host:5000/v1/` → `host:5000`; `index.docker.io` → `docker.io`.
fn normalise_key(key: &str) -> String {
    let rest = key.split_once("://").map_or(key, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    match host {
        "index.docker.io" | "registry-1.docker.io" => rbk_store::DEFAULT_DOMAIN.to_string(),
        other => other.to_string(),
    }
}

fn read_config(dir: &Path) -> Result<Map<String, Value>> {
    let path = dir.join("config.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(config_err("reading", &path, e)),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(config_err("parsing", &path, "not a JSON object")),
        Err(e) => Err(config_err("parsing", &path, e)),
    }
}

fn config_err(
    op: &'static str,
    path: &Path,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::Config {
        op,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// The credentials `config.json` in `dir` holds for `registry`, if any.
pub fn credentials_for(dir: &Path, registry: &str) -> Result<Option<Credentials>> {
    let config = read_config(dir)?;
    let helper = config
        .get("credHelpers")
        .and_then(Value::as_object)
        .and_then(|helpers| {
            helpers
                .iter()
                .find(|(k, _)| normalise_key(k) == registry)
                .and_then(|(_, v)| v.as_str())
        })
        .or_else(|| config.get("credsStore").and_then(Value::as_str))
        .filter(|h| !h.is_empty());
    if let Some(helper) = helper {
        if let Some(found) = from_helper(helper, registry)? {
            return Ok(Some(found));
        }
    }
    let Some(auths) = config.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    let entry = auths.iter().find(|(k, _)| normalise_key(k) == registry);
    let Some(encoded) = entry
        .and_then(|(_, v)| v.get("auth"))
        .and_then(Value::as_str)
    else {
        return Ok(None);
    };
    let path = dir.join("config.json");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| config_err("decoding the auth of a registry in", &path, e))?;
    let text = String::from_utf8(decoded)
        .map_err(|e| config_err("decoding the auth of a registry in", &path, e))?;
    let Some((user, pass)) = text.split_once(':') else {
        return Err(config_err(
            "decoding the auth of a registry in",
            &path,
            "expected base64 of USER:PASSWORD",
        ));
    };
    Ok(Some(Credentials {
        username: user.to_string(),
        password: pass.to_string(),
    }))
}

/// Asks `docker-credential-NAME get` for `registry`'s credentials.
fn from_helper(helper: &str, registry: &str) -> Result<Option<Credentials>> {
    let fail = |reason: String| Error::CredentialHelper {
        helper: helper.to_string(),
        registry: registry.to_string(),
        reason,
    };
    let program = format!("docker-credential-{helper}");
    let child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(format!("cannot run it: {e}"))),
    };
    if let Some(mut stdin) = child.stdin.take() {
        // The helper protocol: the server URL on stdin.
        let _ = stdin.write_all(key_for(registry).as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("waiting for it: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // The helpers' documented "nothing stored" answer.
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(fail(format!("{} {}", stdout.trim(), stderr.trim())));
    }
    let value: BTreeMap<String, Value> =
        serde_json::from_str(&stdout).map_err(|e| fail(format!("unreadable answer: {e}")))?;
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_string);
    match (field("Username"), field("Secret")) {
        (Some(username), Some(password)) => Ok(Some(Credentials { username, password })),
        _ => Err(fail("answer lacks Username or Secret".into())),
    }
}

/// Records `username`/`password` for `registry` in `dir/config.json`
/// (created 0600 if missing), like `docker login`.
pub fn login(dir: &Path, registry: &str, username: &str, password: &str) -> Result<()> {
    let mut config = read_config(dir)?;
    let auths = config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()));
    if !auths.is_object() {
        *auths = Value::Object(Map::new());
    }
    let auths = auths.as_object_mut().expect("made an object above");
    auths.retain(|k, _| normalise_key(k) != registry);
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    auths.insert(key_for(registry), serde_json::json!({ "auth": encoded }));
    write_config(dir, &config)
}

/// Removes `registry`'s entry from `dir/config.json`. Returns whether there
/// was one.
pub fn logout(dir: &Path, registry: &str) -> Result<bool> {
    let mut config = read_config(dir)?;
    let Some(auths) = config.get_mut("auths").and_then(Value::as_object_mut) else {
        return Ok(false);
    };
    let before = auths.len();
    auths.retain(|k, _| normalise_key(k) != registry);
    if auths.len() == before {
        return Ok(false);
    }
    write_config(dir, &config)?;
    Ok(true)
}

/// Writes the file atomically with mode 0600 (it holds secrets).
fn write_config(dir: &Path, config: &Map<String, Value>) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = dir.join("config.json");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| config_err("creating the directory of", &path, e))?;
    let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut bytes = serde_json::to_vec_pretty(config)?;
        bytes.push(b'\n');
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(config_err("writing", &path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_then_lookup_then_logout() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), r#"{"psFormat":"x"}"#).unwrap();
        login(dir.path(), "127.0.0.1:5000", "u", "p:w").unwrap();
        let found = credentials_for(dir.path(), "127.0.0.1:5000")
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.username.as_str(), found.password.as_str()),
            ("u", "p:w")
        );
        assert!(credentials_for(dir.path(), "other:1").unwrap().is_none());
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        assert!(text.contains("psFormat"), "other fields kept: {text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("config.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(logout(dir.path(), "127.0.0.1:5000").unwrap());
        assert!(!logout(dir.path(), "127.0.0.1:5000").unwrap());
        assert!(credentials_for(dir.path(), "127.0.0.1:5000")
            .unwrap()
            .is_none());
    }

    #[test]
    fn keys_with_scheme_and_docker_hub() {
        let dir = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("a:b");
        let text = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{auth}"}},"https://r.example:5000/v2/":{{"auth":"{auth}"}}}}}}"#
        );
        std::fs::write(dir.path().join("config.json"), text).unwrap();
        assert!(credentials_for(dir.path(), "docker.io").unwrap().is_some());
        assert!(credentials_for(dir.path(), "r.example:5000")
            .unwrap()
            .is_some());
    }

    #[test]
    fn missing_helper_program_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"credsStore":"rbk-no-such-helper"}"#,
        )
        .unwrap();
        assert!(credentials_for(dir.path(), "x.example").unwrap().is_none());
    }
}
