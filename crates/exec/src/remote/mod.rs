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
