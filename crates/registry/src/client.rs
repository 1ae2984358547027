//! The [`Client`]: one `oci_client::Client` per registry host, a tokio
//! runtime that drives them, credentials, retries and error mapping.

use std::path::PathBuf;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use rbk_store::Reference;

use crate::config::credentials_for;
use crate::http::{Get, Http, CONNECT_TIMEOUT, READ_TIMEOUT};
use crate::platform::Platform;
use crate::{Error, Result};

/// How a [`Client`] reaches registries.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Hosts (`HOST` or `HOST:PORT`) spoken to over plain HTTP, besides
    /// `localhost` and loopback addresses, which always are.
    pub insecure_registries: Vec<String>,
    /// Where Docker's `config.json` (credentials) lives; `None`: nowhere,
    /// every registry is reached anonymously. (The caller resolves
    /// `$DOCKER_CONFIG` or `~/.docker`: libraries read no environment.)
    pub docker_config_dir: Option<PathBuf>,
    /// `os/arch[/variant]` to pick from indexes; default the host's.
    pub platform: Option<String>,
    /// Most blobs moved at once by one pull or push; default 4.
    pub parallel_blobs: Option<usize>,
    /// Longest wait for a connection; default 30 s. A timeout is retried
    /// like other transient errors.
    pub connect_timeout: Option<Duration>,
    /// Longest wait for the next bytes of a response (a stalled sender);
    /// default 60 s, retried like other transient errors.
    pub read_timeout: Option<Duration>,
}

impl ClientOptions {
    fn connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(CONNECT_TIMEOUT)
    }

    fn read_timeout(&self) -> Duration {
        self.read_timeout.unwrap_or(READ_TIMEOUT)
    }
}

/// Attempts per request before giving up (connect errors, 5xx, 429, cut
/// bodies), and the first back-off delay (doubled each time, capped).
const ATTEMPTS: u32 = 5;
const FIRST_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(4);
/// The longest `Retry-After` (of a 429 or 503) rbk waits before retrying;
/// a registry asking for more gets a clear error at once, not a hang.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A synchronous registry client. See the crate docs.
pub struct Client {
    pub(crate) options: ClientOptions,
    pub(crate) platform: Platform,
    pub(crate) runtime: tokio::runtime::Runtime,
    config_dir: Option<PathBuf>,
    pub(crate) http: Http,
}

impl Client {
    /// A client with `options`. Starts the runtime; contacts nothing yet.
    pub fn new(options: ClientOptions) -> Result<Client> {
        let platform = match &options.platform {
            Some(p) => Platform::parse(p)?,
            None => Platform::host(),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let config_dir = options.docker_config_dir.clone();
        let http = Http::new(options.connect_timeout(), options.read_timeout()).map_err(|e| {
            Error::Registry {
                what: "starting the HTTP client".into(),
                registry: String::new(),
                source: Box::new(e),
            }
        })?;
        Ok(Client {
            http,
            options,
            platform,
            runtime,
            config_dir,
        })
    }

    /// Checks `username`/`password` against `registry` with one
    /// authenticated request; `Err(Error::Unauthorized)` when refused.
    pub fn verify_credentials(&self, registry: &str, username: &str, password: &str) -> Result<()> {
        let auth = RegistryAuth::Basic(username.to_string(), password.to_string());
        let oci = self.make_client(registry, auth);
        // A HEAD of a blob nobody has: 404 with good credentials, 401 with bad.
        let probe: Reference = format!("{registry}/rbk/login-check:latest")
            .parse()
            .map_err(|e| Error::store(format!("registry name {registry:?}"), e))?;
        let image = oci_ref(&probe);
        let empty = rbk_store::Digest::sha256_of(b"").to_string();
        self.retry("checking the credentials", registry, || {
            self.runtime
                .block_on(oci.blob_exists(&image, &empty))
                .map_err(|e| map_oci("checking the credentials", registry, e))
        })?;
        Ok(())
    }

    /// How many blobs one pull or push moves at once (at least 1).
    pub fn parallel_blobs(&self) -> usize {
        self.options
            .parallel_blobs
            .unwrap_or(crate::pull::PARALLEL_BLOBS)
            .max(1)
    }

    /// The credentials `config.json` has for `domain`, if any.
    pub(crate) fn credentials(&self, domain: &str) -> Result<Option<(String, String)>> {
        Ok(match &self.config_dir {
            Some(dir) => credentials_for(dir, domain)?.map(|c| (c.username, c.password)),
            None => None,
        })
    }

    /// A bounded GET of `object` (`manifests/REF`, `blobs/DIGEST`) in
    /// `reference`'s repository: see [`crate::http`].
    pub(crate) async fn get(
        &self,
        reference: &Reference,
        object: String,
        accept: &[&str],
        offset: u64,
        credentials: Option<(String, String)>,
    ) -> std::result::Result<reqwest::Response, OciDistributionError> {
        let domain = reference.domain();
        let host = oci_ref_registry(domain);
        let get = Get {
            scheme: if self.is_insecure(domain) {
                "http"
            } else {
                "https"
            },
            host: &host,
            repository: reference.path(),
            object,
            accept,
            offset,
            credentials,
        };
        self.http.get(&get).await
    }

    /// Whether `domain` is spoken to over plain HTTP.
    pub fn is_insecure(&self, domain: &str) -> bool {
        let host = host_of(domain);
        let loopback = host == "localhost"
            || host == "::1"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback());
        loopback
            || self
                .options
                .insecure_registries
                .iter()
                .any(|entry| entry == domain || (!entry.contains(':') && entry == host))
    }

    fn make_client(&self, domain: &str, auth: RegistryAuth) -> oci_client::Client {
        let protocol = if self.is_insecure(domain) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let config = ClientConfig {
            protocol,
            use_monolithic_push: true,
            connect_timeout: Some(self.options.connect_timeout()),
            read_timeout: Some(self.options.read_timeout()),
            max_concurrent_download: self.parallel_blobs(),
            max_concurrent_upload: self.parallel_blobs(),
            ..Default::default()
        };
        let client = oci_client::Client::new(config);
        let registry = oci_ref_registry(domain);
        self.runtime
            .block_on(client.store_auth_if_needed(&registry, &auth));
        client
    }

    /// Runs `attempt` until it succeeds, fails for good, or the attempts run
    /// out, sleeping with exponential back-off between transient failures.
    pub(crate) fn retry<T>(
        &self,
        what: &str,
        registry: &str,
        mut attempt: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        let mut delay = FIRST_DELAY;
        for n in 1..=ATTEMPTS {
            match attempt() {
                Ok(v) => return Ok(v),
                Err(e) if !is_transient(&e) => return Err(e),
                Err(e) if n == ATTEMPTS => {
                    return Err(match e {
                        e @ Error::Unreachable { .. } => e,
                        e => Error::GaveUp {
                            what: what.to_string(),
                            registry: registry.to_string(),
                            attempts: ATTEMPTS,
                            source: Box::new(e),
                        },
                    })
                }
                Err(e) => {
                    let asked = self.http.take_retry_after();
                    if let Some(asked) = asked.filter(|a| *a > MAX_RETRY_AFTER) {
                        return Err(Error::Throttled {
                            what: what.to_string(),
                            registry: registry.to_string(),
                            seconds: asked.as_secs(),
                            limit: MAX_RETRY_AFTER.as_secs(),
                            source: Box::new(e),
                        });
                    }
                    std::thread::sleep(asked.map_or(delay, |a| a.max(delay)));
                    delay = (delay * 2).min(MAX_DELAY);
                }
            }
        }
        unreachable!("the loop returns on its last attempt")
    }
}

fn is_transient(e: &Error) -> bool {
    match e {
        Error::Unreachable { .. } | Error::Transfer { .. } | Error::UploadLost { .. } => true,
        Error::Registry { source, .. } => is_transient_oci(source),
        _ => false,
    }
}

fn is_transient_oci(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ServerError { code, .. } => *code >= 500 || *code == 429,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == OciErrorCode::Toomanyrequests),
        OciDistributionError::RequestError(r) if r.status().is_some() => r
            .status()
            .is_some_and(|s| s.is_server_error() || s.as_u16() == 429),
        OciDistributionError::RequestError(r) => {
            r.is_timeout() || r.is_body() || r.is_decode() || r.is_request()
        }
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

/// Maps a protocol error to this crate's, naming what was being done.
pub(crate) fn map_oci(what: &str, registry: &str, e: OciDistributionError) -> Error {
    let what = what.to_string();
    let registry = registry.to_string();
    match &e {
        OciDistributionError::RequestError(r) if r.is_connect() => {
            return Error::Unreachable {
                registry,
                source: Box::new(e),
            }
        }
        OciDistributionError::RequestError(r) if r.is_timeout() => {
            return Error::Transfer {
                what,
                registry,
                source: std::io::Error::new(std::io::ErrorKind::TimedOut, e),
            }
        }
        OciDistributionError::RequestError(r)
            if r.status()
                .is_some_and(|s| s.as_u16() == 401 || s.as_u16() == 403) =>
        {
            return Error::Unauthorized { what, registry }
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => {
            return Error::Unauthorized { what, registry }
        }
        OciDistributionError::ImageManifestNotFoundError(_)
        | OciDistributionError::ServerError { code: 404, .. } => {
            return Error::NotFound { what, registry }
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                return Error::Unauthorized { what, registry };
            }
            if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NameUnknown
                )
            }) {
                return Error::NotFound { what, registry };
            }
        }
        _ => {}
    }
    Error::Registry {
        what,
        registry,
        source: Box::new(e),
    }
}

/// `host` of `host:port`, `::1` of `[::1]:5000`.
fn host_of(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    domain.split(':').next().unwrap_or(domain)
}

/// The registry string oci-client files credentials under for `domain`.
pub(crate) fn oci_ref_registry(domain: &str) -> String {
    let probe = oci_client::Reference::with_tag(domain.to_string(), "x".into(), "latest".into());
    probe.resolve_registry().to_string()
}

/// The oci-client reference for `reference` (digest wins over tag).
pub(crate) fn oci_ref(reference: &Reference) -> oci_client::Reference {
    let (domain, path) = (reference.domain().to_string(), reference.path().to_string());
    match reference.digest() {
        Some(d) => oci_client::Reference::with_digest(domain, path, d.to_string()),
        None => oci_client::Reference::with_tag(
            domain,
            path,
            reference.tag().unwrap_or("latest").to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_hosts_are_plain_http() {
        let c = Client::new(ClientOptions {
            insecure_registries: vec!["reg.lan".into(), "other.lan:5000".into()],
            ..Default::default()
        })
        .unwrap();
        for host in [
            "localhost:5000",
            "127.0.0.1:1234",
            "127.3.4.5",
            "[::1]:5000",
        ] {
            assert!(c.is_insecure(host), "{host}");
        }
        assert!(c.is_insecure("reg.lan:443"));
        assert!(c.is_insecure("other.lan:5000"));
        assert!(!c.is_insecure("other.lan:5001"));
        assert!(!c.is_insecure("docker.io"));
        assert!(!c.is_insecure("10.0.0.1:5000"));
    }
}
