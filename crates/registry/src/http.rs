//! Bounded requests to registries (docs/security.md rule 5): the GETs of
//! pulls, and the HEAD/POST/PUT requests of pushes.
//!
//! oci-client reads whole response bodies into memory — manifests, error
//! bodies, token bodies — however long they are, so a registry that sends
//! an endless chunked manifest or a 100 MB 404 grows rbk without limit (the
//! 2026-12 probe). Pulls and pushes therefore speak HTTP here, through reqwest with
//! connect and idle-read timeouts, reading every body against a cap as it
//! arrives: documents at [`rbk_store::MAX_DOCUMENT_SIZE`], error and token bodies at
//! [`MAX_ERROR_BODY`] (and cut to [`MAX_MESSAGE`] in messages); a push reads
//! no success body at all. The bearer
//! flow is the distribution spec's: a 401 with a `WWW-Authenticate` challenge
//! names a realm, whose token (asked for with the user's credentials, if
//! any, for the request's scope) is sent on the retried request and kept per
//! repository and scope.
//!
//! Errors are oci-client's error type, so the client's mapping and retry
//! rules ([`crate::client`]) apply to both paths.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use oci_client::errors::{OciDistributionError, OciEnvelope};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, RANGE, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};

type OciResult<T> = std::result::Result<T, OciDistributionError>;

/// Most bytes read of an error or token body.
pub(crate) const MAX_ERROR_BODY: usize = 64 * 1024;
/// Most bytes of a body quoted in an error message.
pub(crate) const MAX_MESSAGE: usize = 512;

/// Default time to wait for a connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time to wait for the next bytes of a response.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The HTTP side of the client for pulls: one reqwest client, the
/// credentials per registry host, and the tokens got per repository.
pub(crate) struct Http {
    client: reqwest::Client,
    tokens: Mutex<HashMap<String, HeaderValue>>,
    /// The `Retry-After` of the last 429 or 503, taken by the retry loop
    /// for its next sleep (the registry's wish, not a per-request fact:
    /// one hint slows every request of this client, as it should).
    retry_after: Mutex<Option<Duration>>,
}

/// What a GET asks for.
pub(crate) struct Get<'a> {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The host oci-client would talk to (`registry-1.docker.io` for Docker Hub).
    pub host: &'a str,
    /// The repository path.
    pub repository: &'a str,
    /// `manifests/<ref>` or `blobs/<digest>`.
    pub object: String,
    /// Accepted media types (for manifests).
    pub accept: &'a [&'a str],
    /// First byte wanted (a `Range` header when non-zero).
    pub offset: u64,
    /// `(user, password)` for this host, if any.
    pub credentials: Option<(String, String)>,
}

impl Get<'_> {
    fn url(&self) -> String {
        format!(
            "{}://{}/v2/{}/{}",
            self.scheme, self.host, self.repository, self.object
        )
    }
}

/// A request of a push (or any request that is not a pull's GET).
pub(crate) struct Call<'a> {
    pub method: Method,
    /// The whole URL.
    pub url: String,
    /// The host the token is for.
    pub host: &'a str,
    /// The repository pushed to.
    pub repository: &'a str,
    /// Other repositories read from (a cross-repository mount's source).
    pub also_pull: Option<&'a str>,
    pub headers: HeaderMap,
    /// The body: bytes are sent again after a 401; a stream is sent once,
    /// so a stream is only sent where an earlier request got the token.
    pub body: CallBody,
    /// `(user, password)` for this host, if any.
    pub credentials: Option<(String, String)>,
}

/// The body of a [`Call`].
pub(crate) enum CallBody {
    Empty,
    Bytes(bytes::Bytes),
    Stream(Mutex<Option<reqwest::Body>>),
}

/// What a token is asked for: the repository and the actions on it.
struct Scope<'a> {
    host: &'a str,
    repository: &'a str,
    push: bool,
    also_pull: Option<&'a str>,
}

impl Scope<'_> {
    fn token_key(&self) -> String {
        let actions = if self.push { "pull,push" } else { "pull" };
        let extra = self.also_pull.unwrap_or("");
        format!("{}/{}:{actions}+{extra}", self.host, self.repository)
    }

    fn params(&self) -> Vec<(&'static str, String)> {
        let actions = if self.push { "pull,push" } else { "pull" };
        let mut out = vec![("scope", format!("repository:{}:{actions}", self.repository))];
        if let Some(other) = self.also_pull {
            out.push(("scope", format!("repository:{other}:pull")));
        }
        out
    }
}

impl Http {
    pub(crate) fn new(connect: Duration, read: Duration) -> OciResult<Http> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect)
            .read_timeout(read)
            .user_agent(concat!("rbk/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Http {
            client,
            tokens: Mutex::new(HashMap::new()),
            retry_after: Mutex::new(None),
        })
    }

    /// The error a non-success response stands for ([`error_from`]),
    /// keeping the `Retry-After` of a 429 or 503 for the retry loop.
    pub(crate) async fn error_from(&self, response: Response, url: &str) -> OciDistributionError {
        let status = response.status();
        if matches!(status.as_u16(), 429 | 503) {
            if let Some(wait) = retry_after(response.headers(), std::time::SystemTime::now()) {
                *self.retry_after.lock().expect("poisoned") = Some(wait);
            }
        }
        error_from(response, url).await
    }

    /// The last `Retry-After` hint not yet used, if any.
    pub(crate) fn take_retry_after(&self) -> Option<Duration> {
        self.retry_after.lock().expect("poisoned").take()
    }

    /// Sends the GET (authenticating on a 401 challenge) and returns a
    /// response whose status is 200 or 206; anything else is an error
    /// built from at most [`MAX_ERROR_BODY`] bytes of its body.
    pub(crate) async fn get(&self, get: &Get<'_>) -> OciResult<Response> {
        let url = get.url();
        let scope = Scope {
            host: get.host,
            repository: get.repository,
            push: false,
            also_pull: None,
        };
        let key = scope.token_key();
        let cached = self.tokens.lock().expect("poisoned").get(&key).cloned();
        let mut response = self.send(get, &url, cached.as_ref()).await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            let challenge = response.headers().get(WWW_AUTHENTICATE).cloned();
            drop(response);
            let auth = self
                .authorize(&scope, get.credentials.as_ref(), challenge.as_ref())
                .await?;
            response = self.send(get, &url, auth.as_ref()).await?;
            if let Some(auth) = auth {
                self.tokens.lock().expect("poisoned").insert(key, auth);
            }
        }
        match response.status() {
            StatusCode::OK | StatusCode::PARTIAL_CONTENT => Ok(response),
            _ => Err(self.error_from(response, &url).await),
        }
    }

    async fn send(
        &self,
        get: &Get<'_>,
        url: &str,
        auth: Option<&HeaderValue>,
    ) -> OciResult<Response> {
        let mut headers = HeaderMap::new();
        if !get.accept.is_empty() {
            let accept = HeaderValue::from_str(&get.accept.join(", "))
                .map_err(|e| OciDistributionError::GenericError(Some(e.to_string())))?;
            headers.insert(ACCEPT, accept);
        }
        if get.offset > 0 {
            let range = HeaderValue::from_str(&format!("bytes={}-", get.offset))
                .map_err(|e| OciDistributionError::GenericError(Some(e.to_string())))?;
            headers.insert(RANGE, range);
        }
        if let Some(auth) = auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        Ok(self.client.get(url).headers(headers).send().await?)
    }

    /// Sends a push's request (authenticating on a 401 challenge when the
    /// body can be sent again) and returns the response whatever its
    /// status: the caller reads no body but through [`read_capped`] or
    /// [`error_from`].
    pub(crate) async fn call(&self, call: &Call<'_>) -> OciResult<Response> {
        let scope = Scope {
            host: call.host,
            repository: call.repository,
            push: true,
            also_pull: call.also_pull,
        };
        let key = scope.token_key();
        let cached = self.tokens.lock().expect("poisoned").get(&key).cloned();
        let response = self.send_call(call, cached.as_ref()).await?;
        let resendable = !matches!(call.body, CallBody::Stream(_));
        if response.status() != StatusCode::UNAUTHORIZED || !resendable {
            return Ok(response);
        }
        let challenge = response.headers().get(WWW_AUTHENTICATE).cloned();
        drop(response);
        let auth = self
            .authorize(&scope, call.credentials.as_ref(), challenge.as_ref())
            .await?;
        let response = self.send_call(call, auth.as_ref()).await?;
        if let Some(auth) = auth {
            self.tokens.lock().expect("poisoned").insert(key, auth);
        }
        Ok(response)
    }

    async fn send_call(&self, call: &Call<'_>, auth: Option<&HeaderValue>) -> OciResult<Response> {
        let mut request = self
            .client
            .request(call.method.clone(), call.url.as_str())
            .headers(call.headers.clone());
        if let Some(auth) = auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        request = match &call.body {
            CallBody::Empty => request,
            CallBody::Bytes(b) => request.body(b.clone()),
            CallBody::Stream(s) => match s.lock().expect("poisoned").take() {
                Some(body) => request.body(body),
                None => {
                    return Err(OciDistributionError::GenericError(Some(
                        "a streamed body cannot be sent twice".into(),
                    )))
                }
            },
        };
        Ok(request.send().await?)
    }

    /// The `Authorization` value a 401's challenge asks for: basic
    /// credentials, or a bearer token from the realm for `scope`; `None`
    /// when there is nothing to send (the retried request then fails as
    /// unauthorized).
    async fn authorize(
        &self,
        scope: &Scope<'_>,
        credentials: Option<&(String, String)>,
        challenge: Option<&HeaderValue>,
    ) -> OciResult<Option<HeaderValue>> {
        let Some(challenge) = challenge.and_then(|c| c.to_str().ok()) else {
            return Ok(None);
        };
        let (scheme, params) = parse_challenge(challenge);
        if scheme.eq_ignore_ascii_case("basic") {
            return Ok(credentials.map(|(u, p)| basic(u, p)));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Ok(None);
        }
        let Some(realm) = params.get("realm") else {
            return Ok(None);
        };
        let mut query = scope.params();
        if let Some(service) = params.get("service") {
            query.push(("service", service.clone()));
        }
        let mut request = self.client.get(realm.as_str()).query(&query);
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await?;
        if !response.status().is_success() {
            let (body, _) = read_capped(response, MAX_ERROR_BODY).await?;
            return Err(OciDistributionError::AuthenticationFailure(cut(&body)));
        }
        let (body, complete) = read_capped(response, MAX_ERROR_BODY).await?;
        if !complete {
            return Err(OciDistributionError::AuthenticationFailure(format!(
                "the token body from {realm} is larger than {MAX_ERROR_BODY} bytes"
            )));
        }
        bearer(&body).map(Some)
    }
}

/// The `Authorization` value for a token realm's answer: its `token` (or
/// `access_token`) as a bearer token.
pub(crate) fn bearer(body: &[u8]) -> OciResult<HeaderValue> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| OciDistributionError::RegistryTokenDecodeError(e.to_string()))?;
    let token = value
        .get("token")
        .or_else(|| value.get("access_token"))
        .and_then(|t| t.as_str())
        .ok_or_else(|| {
            OciDistributionError::RegistryTokenDecodeError("no token in the answer".into())
        })?;
    HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|e| OciDistributionError::RegistryTokenDecodeError(e.to_string()))
}

fn basic(user: &str, password: &str) -> HeaderValue {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

/// `Bearer realm="…",service="…"` → `("Bearer", {realm, service})`.
pub(crate) fn parse_challenge(text: &str) -> (String, HashMap<String, String>) {
    let text = text.trim();
    let (scheme, mut rest) = text.split_once(' ').unwrap_or((text, ""));
    let mut params = HashMap::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().to_ascii_lowercase();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end.min(quoted.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(key, value);
        rest = next;
    }
    (scheme.to_string(), params)
}

/// How long a `Retry-After` header asks to wait: delay-seconds, or an
/// HTTP-date (a date already past is no wait). `None` when absent or
/// malformed (the usual back-off applies).
fn retry_after(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Reads at most `limit` bytes of the body; `true` when that was all of it.
/// Reading stops at the cap: the rest is never read.
pub(crate) async fn read_capped(
    mut response: Response,
    limit: usize,
) -> OciResult<(Vec<u8>, bool)> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

/// At most [`MAX_MESSAGE`] bytes of `body`, as text.
fn cut(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_MESSAGE)]).into_owned();
    match body.len() > MAX_MESSAGE {
        true => format!("{text}… (cut)"),
        false => text,
    }
}

/// The error a non-success response stands for, from a bounded read of its
/// body (an OCI error envelope when it parses).
pub(crate) async fn error_from(response: Response, url: &str) -> OciDistributionError {
    let status = response.status();
    let url = url.to_string();
    if status == StatusCode::UNAUTHORIZED {
        return OciDistributionError::UnauthorizedError { url };
    }
    let body = match read_capped(response, MAX_ERROR_BODY).await {
        Ok((body, _)) => body,
        Err(e) => return e,
    };
    error_from_body(status, &body, url)
}

/// The error a non-success, non-401 response with `body` stands for.
pub(crate) fn error_from_body(
    status: StatusCode,
    body: &[u8],
    url: String,
) -> OciDistributionError {
    if status.is_client_error() {
        if let Ok(envelope) = serde_json::from_slice::<OciEnvelope>(body) {
            return OciDistributionError::RegistryError { envelope, url };
        }
    }
    OciDistributionError::ServerError {
        code: status.as_u16(),
        url,
        message: cut(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="reg \"x\"",scope="repository:a:pull""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(params["realm"], "https://auth.example/token");
        assert_eq!(params["service"], "reg \"x\"");
        assert_eq!(params["scope"], "repository:a:pull");
        let (scheme, params) = parse_challenge(r#"Basic realm=Registry"#);
        assert_eq!(scheme, "Basic");
        assert_eq!(params["realm"], "Registry");
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                reqwest::header::RETRY_AFTER,
                HeaderValue::from_str(v).unwrap(),
            );
            retry_after(&h, now)
        };
        assert_eq!(with("7"), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(with(&later), Some(Duration::from_secs(90)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(with(&past), Some(Duration::ZERO));
        assert_eq!(with("soon"), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn messages_are_cut() {
        let long = vec![b'x'; 100_000];
        assert!(cut(&long).len() < MAX_MESSAGE + 20);
        assert_eq!(cut(b"short"), "short");
    }
}
