//! Remote sources: `ADD https://…` (a file downloaded over HTTP(S)) and
//! `ADD <git url>` (a checkout), each solved into one layer.
//!
//! # Where the bytes go
//! Downloads and clones are cached in the store, under `remote/`, keyed by
//! URL (`remote/http/<key>/`) or by repository (`remote/git/<key>/`), with
//! a lock file per entry so that concurrent `rbk` processes share them.
//! What a build reads is then turned into a layer with the same packer as
//! every other step, so its digest depends only on the content: the cache
//! keys of the steps after an `ADD` change exactly when the remote content
//! (or its name, mode or time) changed.
//!
//! # Settings
//! The library reads no environment: proxies, timeouts, retries and the
//! size limit come in [`RemoteSettings`], which the CLI resolves from
//! `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` and its own variables.

mod git;
mod http;
mod solve;

pub(crate) use git::GitSource;

use std::path::PathBuf;
use std::time::Duration;

pub use http::HttpClient;

use std::collections::BTreeMap;

use rbk_store::{Store, WorkDir};

use crate::{Result, Secret};

/// Downloads `url` through the store's download cache (revalidated as
/// `ADD <url>` does) and opens the body: a remote build context.
pub fn fetch_url(store: &Store, settings: &RemoteSettings, url: &str) -> Result<std::fs::File> {
    let client = HttpClient::new(settings)?;
    let cache = store.root().join("remote/http");
    let download = http::fetch_http(&client, &cache, url, None, &mut |_, _| {})?;
    std::fs::File::open(&download.data).map_err(|e| crate::Error::io("opening", &download.data, e))
}

/// Checks out `url` (`<git url>[#ref[:subdir]]`) as `ADD <git url>` does,
/// into a work dir of the store: a remote build context. Returns the work
/// dir (the checkout goes to the trash when it is dropped) and the tree.
pub fn checkout_git_url(
    store: &Store,
    settings: &RemoteSettings,
    secrets: &BTreeMap<String, Secret>,
    ssh_agent: Option<PathBuf>,
    url: &str,
) -> Result<(WorkDir, PathBuf)> {
    let (remote, fragment) = url.split_once('#').unwrap_or((url, ""));
    let (reference, subdir) = fragment.split_once(':').unwrap_or((fragment, ""));
    let work = store.work_dir()?;
    let home = work.path().join("home");
    std::fs::create_dir(&home).map_err(|e| crate::Error::io("creating directory", &home, e))?;
    let env = git::GitEnv {
        settings,
        secrets: secrets
            .iter()
            .filter(|(id, _)| id.starts_with("GIT_AUTH_"))
            .map(|(id, s)| (id.clone(), s.bytes().to_vec()))
            .collect(),
        ssh_agent,
        home,
    };
    let source = GitSource {
        remote,
        reference,
        subdir,
        keep_git_dir: false,
    };
    let tree = work.path().join("tree");
    git::checkout(
        &env,
        &store.root().join("remote/git"),
        &source,
        work.path(),
        &tree,
    )?;
    Ok((work, tree))
}

/// How remote sources are fetched (resolved once by the caller).
#[derive(Clone, Debug)]
pub struct RemoteSettings {
    /// Proxy for `http://` URLs (`HTTP_PROXY`).
    pub http_proxy: Option<String>,
    /// Proxy for `https://` URLs (`HTTPS_PROXY`).
    pub https_proxy: Option<String>,
    /// Hosts reached without a proxy (`NO_PROXY`, comma-separated).
    pub no_proxy: Option<String>,
    /// Longest wait to connect.
    pub connect_timeout: Duration,
    /// Longest wait for the response headers, and then for each read of
    /// the body: a stalled server fails after this long without data.
    pub idle_timeout: Duration,
    /// Extra attempts after a failed connection, a timeout or a 5xx/429.
    pub retries: u32,
    /// The first wait between attempts; it doubles each time.
    pub backoff: Duration,
    /// The largest file a download may be; a longer body fails.
    pub max_size: u64,
    /// The `git` binary.
    pub git: PathBuf,
}

impl Default for RemoteSettings {
    fn default() -> Self {
        RemoteSettings {
            http_proxy: None,
            https_proxy: None,
            no_proxy: None,
            connect_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            retries: 3,
            backoff: Duration::from_millis(500),
            max_size: 16 << 30,
            git: PathBuf::from("git"),
        }
    }
}

/// Redacts the userinfo of a URL (`https://user:token@host/` → `https://xxxxx@host/`)
/// before it goes into an error or a log.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{scheme}://xxxxx@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn userinfo_is_redacted() {
        assert_eq!(
            redact("https://u:tok@example.com/a@b"),
            "https://xxxxx@example.com/a@b"
        );
        assert_eq!(redact("https://example.com/x"), "https://example.com/x");
        assert_eq!(redact("git@host:org/r.git"), "git@host:org/r.git");
    }
}
