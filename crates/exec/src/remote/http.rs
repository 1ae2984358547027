//! `ADD https://…`: a download, cached by URL in the store and revalidated.
//!
//! BuildKit's semantics, which rbk follows:
//! - the file gets mode 0600 (unless the ADD has `--chmod`) and the mtime
//!   of `Last-Modified` (0, or `SOURCE_DATE_EPOCH`, without one);
//! - its name is the one the Dockerfile lowering chose from the URL path;
//!   when the URL path names nothing and the destination is a directory,
//!   `Content-Disposition`'s `filename` is used (else `download`);
//! - `--checksum=sha256:…` is checked before the file reaches the build,
//!   and a mismatch names both digests; with a checksum that matches the
//!   cached file, the server is not asked at all;
//! - a URL is never unpacked.
//!
//! # The cache
//! `remote/http/<sha256 of the URL>/` holds `data` (the body) and
//! `meta.json` (ETag, Last-Modified, digest, size). A second fetch sends
//! `If-None-Match`/`If-Modified-Since`; a `304` reuses `data` without
//! downloading. A new body is written to a temporary file beside `data`,
//! hashed while it streams, checked, and only then renamed over `data`:
//! a failed or interrupted download leaves the previous entry intact.
//! Each entry has a lock file, so two processes never write one entry.
//!
//! # Limits (docs/security.md rule 5)
//! Every body is bounded by [`RemoteSettings::max_size`], also when it has no
//! `Content-Length`; a body of another length than its `Content-Length`
//! fails. Connects and reads have timeouts, redirects are followed up to 10
//! times (a loop fails), and failed connections, timeouts and 5xx/429
//! answers are retried with a doubling backoff. reqwest drops the
//! `Authorization` header on a redirect to another host, and rbk sends none.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::SystemTime;

use reqwest::blocking::{Client, Response};
use reqwest::header::{
    HeaderMap, HeaderValue, CONTENT_DISPOSITION, CONTENT_LENGTH, ETAG, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED,
};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use rbk_store::{Digest, FileLock, Sha256Writer};

use super::{redact, RemoteSettings};
use crate::{Error, Result};

/// An HTTP client with rbk's settings (proxies, timeouts, redirects).
pub struct HttpClient {
    client: Client,
    settings: RemoteSettings,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client over `settings`; system proxies are used only as given there.
    pub fn new(settings: &RemoteSettings) -> Result<HttpClient> {
        let no_proxy = settings
            .no_proxy
            .as_deref()
            .and_then(reqwest::NoProxy::from_string);
        let mut builder = Client::builder()
            .no_proxy()
            .user_agent(concat!("rbk/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.idle_timeout)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS));
        let proxies = [
            (&settings.http_proxy, "HTTP_PROXY", false),
            (&settings.https_proxy, "HTTPS_PROXY", true),
        ];
        for (proxy, name, https) in proxies {
            let Some(url) = proxy.as_deref().filter(|p| !p.is_empty()) else {
                continue;
            };
            let bad = |e: reqwest::Error| Error::Invalid(format!("invalid {name} {url:?}: {e}"));
            let proxy = if https {
                reqwest::Proxy::https(url).map_err(bad)?
            } else {
                reqwest::Proxy::http(url).map_err(bad)?
            };
            builder = builder.proxy(proxy.no_proxy(no_proxy.clone()));
        }
        let client = builder
            .build()
            .map_err(|e| Error::Invalid(format!("cannot make an HTTP client: {}", chain(&e))))?;
        Ok(HttpClient {
            client,
            settings: settings.clone(),
        })
    }
}

const MAX_REDIRECTS: usize = 10;

/// A body in the download cache, locked for as long as this lives.
pub(crate) struct Download {
    /// The body.
    pub(crate) data: PathBuf,
    /// `Content-Disposition`'s file name, if the server gave one.
    pub(crate) disposition: Option<String>,
    /// `Last-Modified`, in seconds since the epoch.
    pub(crate) mtime: Option<i64>,
    _lock: FileLock,
}

/// What `meta.json` records about `data`.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Meta {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    disposition: Option<String>,
    digest: Digest,
    size: u64,
}

/// Downloads `url` into the cache under `cache_root`, revalidating what is
/// there, and checks `checksum` (`sha256:…`). `progress` gets (bytes so
/// far, total if known).
pub(crate) fn fetch_http(
    client: &HttpClient,
    cache_root: &Path,
    url: &str,
    checksum: Option<&str>,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<Download> {
    let expected = checksum.map(|c| parse_checksum(url, c)).transpose()?;
    let dir = cache_root.join(Digest::sha256_of(url.as_bytes()).hex());
    fs::create_dir_all(&dir).map_err(|e| Error::io("creating directory", &dir, e))?;
    let lock = FileLock::exclusive(&dir.join("lock"))?;
    remove_partials(&dir);
    let cached = read_meta(&dir, url);
    let fetcher = Fetcher {
        client,
        dir: &dir,
        url,
        cached: cached.as_ref(),
    };
    let meta = match (&cached, expected) {
        // The pinned content is already here: no request at all.
        (Some(meta), Some(want)) if meta.digest == want => meta.clone(),
        _ => fetcher.fetch(progress)?,
    };
    if let Some(want) = expected {
        if meta.digest != want {
            // The body never reached `data` (see `Fetcher::download`).
            return Err(checksum_mismatch(url, &want, &meta.digest));
        }
    }
    Ok(Download {
        data: dir.join("data"),
        mtime: meta
            .last_modified
            .as_deref()
            .and_then(|t| httpdate::parse_http_date(t).ok())
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64),
        disposition: meta.disposition,
        _lock: lock,
    })
}

fn parse_checksum(url: &str, checksum: &str) -> Result<Digest> {
    Digest::from_str(checksum).map_err(|_| {
        Error::Invalid(format!(
            "invalid checksum {checksum:?} for {}: expected sha256:<64 hex digits>",
            redact(url)
        ))
    })
}

fn checksum_mismatch(url: &str, want: &Digest, got: &Digest) -> Error {
    Error::Remote {
        url: redact(url),
        reason: format!("checksum mismatch: expected {want}, got {got}"),
    }
}

/// Leftovers of a download that was killed (the caller holds the lock).
fn remove_partials(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with("partial-") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The cache entry, if it is complete and for this URL.
fn read_meta(dir: &Path, url: &str) -> Option<Meta> {
    let meta: Meta = serde_json::from_slice(&fs::read(dir.join("meta.json")).ok()?).ok()?;
    let size = fs::metadata(dir.join("data")).ok()?.len();
    (meta.url == url && meta.size == size).then_some(meta)
}

/// One download with its retries.
struct Fetcher<'a> {
    client: &'a HttpClient,
    dir: &'a Path,
    url: &'a str,
    cached: Option<&'a Meta>,
}

/// Why one attempt failed: worth another try, or not.
enum Failure {
    Retry(String),
    Fatal(Error),
}

impl Fetcher<'_> {
    fn fetch(&self, progress: &mut dyn FnMut(u64, Option<u64>)) -> Result<Meta> {
        let settings = &self.client.settings;
        let mut attempt = 0;
        loop {
            match self.attempt(progress) {
                Ok(meta) => return Ok(meta),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(reason)) if attempt >= settings.retries => {
                    return Err(
                        self.error(format!("{reason} (gave up after {} attempts)", attempt + 1))
                    )
                }
                Err(Failure::Retry(_)) => {
                    std::thread::sleep(settings.backoff * 2u32.saturating_pow(attempt));
                    attempt += 1;
                }
            }
        }
    }

    fn error(&self, reason: String) -> Error {
        Error::Remote {
            url: redact(self.url),
            reason,
        }
    }

    fn attempt(&self, progress: &mut dyn FnMut(u64, Option<u64>)) -> Result<Meta, Failure> {
        let mut request = self.client.client.get(self.url);
        if let Some(meta) = self.cached {
            if let Some(etag) = header_value(meta.etag.as_deref()) {
                request = request.header(IF_NONE_MATCH, etag);
            }
            if let Some(time) = header_value(meta.last_modified.as_deref()) {
                request = request.header(IF_MODIFIED_SINCE, time);
            }
        }
        let response = request.send().map_err(|e| self.request_failure(&e))?;
        let status = response.status();
        match (status, self.cached) {
            (StatusCode::NOT_MODIFIED, Some(meta)) => Ok(meta.clone()),
            (s, _) if s.is_success() => self.download(response, progress),
            (s, _) if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
                Err(Failure::Retry(format!("HTTP {s}")))
            }
            (s, _) => Err(Failure::Fatal(
                self.error(format!("bad response status: HTTP {s}")),
            )),
        }
    }

    fn request_failure(&self, e: &reqwest::Error) -> Failure {
        let timeout = self.client.settings.idle_timeout;
        if e.is_redirect() {
            Failure::Fatal(self.error(format!(
                "stopped after {MAX_REDIRECTS} redirects (a redirect loop?): {}",
                chain(e)
            )))
        } else if e.is_builder() {
            Failure::Fatal(self.error(format!("invalid URL: {}", chain(e))))
        } else if e.is_timeout() {
            Failure::Retry(format!("timed out after {timeout:?} without a response"))
        } else {
            Failure::Retry(chain(e))
        }
    }

    /// Streams the body into a temporary file, hashing and counting it, and
    /// commits it as the entry's `data` only when it is complete.
    fn download(
        &self,
        mut response: Response,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<Meta, Failure> {
        let settings = &self.client.settings;
        let headers = response.headers().clone();
        let declared = header(&headers, CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = declared.filter(|len| *len > settings.max_size) {
            return Err(Failure::Fatal(self.too_large(len)));
        }
        let partial = self.dir.join(format!("partial-{}", std::process::id()));
        let fatal = |e: Error| Failure::Fatal(e);
        let mut file =
            File::create(&partial).map_err(|e| fatal(Error::io("creating", &partial, e)))?;
        let mut hasher = Sha256Writer::new();
        let mut total: u64 = 0;
        let mut buf = vec![0u8; 256 << 10];
        let mut reported = 0;
        loop {
            let n = match response.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = fs::remove_file(&partial);
                    return Err(self.body_failure(&e, total));
                }
            };
            total += n as u64;
            if total > settings.max_size {
                let _ = fs::remove_file(&partial);
                return Err(Failure::Fatal(self.too_large(total)));
            }
            hasher.update(&buf[..n]);
            if let Err(e) = file.write_all(&buf[..n]) {
                let _ = fs::remove_file(&partial);
                return Err(fatal(Error::io("writing", &partial, e)));
            }
            if total - reported >= 1 << 20 {
                progress(total, declared);
                reported = total;
            }
        }
        progress(total, declared);
        if let Some(len) = declared.filter(|len| *len != total) {
            let _ = fs::remove_file(&partial);
            return Err(Failure::Fatal(self.error(format!(
                "the body is {total} bytes but Content-Length said {len}"
            ))));
        }
        let meta = Meta {
            url: self.url.to_string(),
            etag: header(&headers, ETAG),
            last_modified: header(&headers, LAST_MODIFIED),
            disposition: header(&headers, CONTENT_DISPOSITION)
                .as_deref()
                .and_then(disposition_filename),
            digest: hasher.finish(),
            size: total,
        };
        self.commit(file, &partial, &meta).map_err(fatal)?;
        Ok(meta)
    }

    fn commit(&self, file: File, partial: &Path, meta: &Meta) -> Result<()> {
        file.sync_all()
            .map_err(|e| Error::io("syncing", partial, e))?;
        drop(file);
        // meta.json goes first: should rbk die between the two, the size
        // check in `read_meta` sees that `data` does not match it.
        let bytes = serde_json::to_vec(meta).map_err(|e| {
            Error::Invalid(format!(
                "cannot record the download of {}: {e}",
                redact(self.url)
            ))
        })?;
        rbk_store::write_atomic(self.dir, "meta.json", &bytes)?;
        let data = self.dir.join("data");
        fs::rename(partial, &data).map_err(|e| Error::io("renaming into", &data, e))
    }

    fn body_failure(&self, e: &std::io::Error, total: u64) -> Failure {
        let timeout = self.client.settings.idle_timeout;
        let timed_out = e.kind() == std::io::ErrorKind::TimedOut
            || chain(e).to_ascii_lowercase().contains("timed out");
        if timed_out {
            Failure::Retry(format!(
                "no data for {timeout:?} after {total} bytes of the body"
            ))
        } else {
            Failure::Retry(format!(
                "reading the body after {total} bytes: {}",
                chain(e)
            ))
        }
    }

    fn too_large(&self, size: u64) -> Error {
        self.error(format!(
            "the body is larger than the limit of {} bytes ({size} bytes so far or declared)",
            self.client.settings.max_size
        ))
    }
}

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn header_value(value: Option<&str>) -> Option<HeaderValue> {
    value.and_then(|v| HeaderValue::from_str(v).ok())
}

/// `attachment; filename="name.tar.gz"` → `name.tar.gz` (its base name;
/// nothing for an empty name, `.` or `..`).
fn disposition_filename(value: &str) -> Option<String> {
    let param = value.split(';').map(str::trim).find_map(|p| {
        let (key, v) = p.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("filename")
            .then_some(v.trim())
    })?;
    let name = param.trim_matches('"');
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    (!base.is_empty() && base != "." && base != "..").then(|| base.to_string())
}

/// An error and its causes, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::disposition_filename;

    #[test]
    fn disposition_names_are_base_names() {
        assert_eq!(
            disposition_filename("attachment; filename=\"a.tar.gz\"").as_deref(),
            Some("a.tar.gz")
        );
        assert_eq!(
            disposition_filename("attachment; filename=../../etc/x").as_deref(),
            Some("x")
        );
        assert_eq!(disposition_filename("attachment; filename=\"..\""), None);
        assert_eq!(disposition_filename("inline"), None);
    }
}
