//! Pushing: every blob a manifest names (skipped when the registry has it,
//! mounted when another repository of the same registry does), then the
//! manifest. Blobs are read from the store only through `BlobRead`.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use oci_client::errors::{OciDistributionError, OciErrorCode};
use rbk_store::{BlobRead, Descriptor, Digest, Reference, Store, MAX_DOCUMENT_SIZE};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;

type OciResult<T> = std::result::Result<T, OciDistributionError>;

use crate::client::{map_oci, oci_ref_registry, Client};
use crate::http::{Call, CallBody};
use crate::progress::{silent, BlobProgress, Outcome, Reporter};
use crate::pull::{document_type, is_index};
use crate::staged::Settled;
use crate::{Error, Result};

/// What a push did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Blobs sent to the registry.
    pub uploaded: u64,
    /// Blobs the registry already had in the repository (not sent).
    pub skipped: u64,
    /// Blobs mounted from another repository of the same registry (not sent).
    pub mounted: u64,
    /// Bytes of blob content sent.
    pub bytes: u64,
}

/// Bytes per chunk of an upload's body.
const CHUNK: usize = 1 << 20;

/// What every blob of one push shares.
pub(crate) struct Job<'a> {
    pub(crate) store: &'a Store,
    pub(crate) reference: &'a Reference,
    pub(crate) counters: &'a Counters,
    pub(crate) sources: &'a MountSources,
    pub(crate) report: Reporter<'a>,
    /// The blobs a staged push sent ahead of the manifest: not asked about
    /// again.
    pub(crate) settled: Option<&'a Settled>,
}

#[derive(Default)]
pub(crate) struct Counters {
    uploaded: AtomicU64,
    skipped: AtomicU64,
    mounted: AtomicU64,
    bytes: AtomicU64,
}

impl Counters {
    pub(crate) fn report(self) -> PushReport {
        PushReport {
            uploaded: self.uploaded.into_inner(),
            skipped: self.skipped.into_inner(),
            mounted: self.mounted.into_inner(),
            bytes: self.bytes.into_inner(),
        }
    }
}

/// The parts of a manifest or index that name other content; lenient about
/// media types, so build-cache manifests push like images.
#[derive(Deserialize)]
struct Refs {
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

impl Client {
    /// Pushes `manifest` (a manifest or an index in the store) with every
    /// blob it names to `reference`, skipping blobs the registry has.
    pub fn push(
        &self,
        store: &Store,
        manifest: &Descriptor,
        reference: &Reference,
    ) -> Result<PushReport> {
        self.push_reporting(store, manifest, reference, &silent)
    }

    /// [`push`](Client::push), telling `report` what became of each blob
    /// as it happens (from several threads).
    pub fn push_reporting(
        &self,
        store: &Store,
        manifest: &Descriptor,
        reference: &Reference,
        report: Reporter<'_>,
    ) -> Result<PushReport> {
        let counters = Counters::default();
        let sources = mount_sources(store, reference);
        let job = Job {
            store,
            reference,
            counters: &counters,
            sources: &sources,
            report,
            settled: None,
        };
        self.push_tree(&job, manifest, true)?;
        Ok(counters.report())
    }

    /// Pushes a document and what it names; the top one goes under the
    /// reference's tag, those below it by digest.
    pub(crate) fn push_tree(&self, job: &Job<'_>, desc: &Descriptor, top: bool) -> Result<()> {
        let (store, reference) = (job.store, job.reference);
        let what = format!("manifest {}", desc.digest);
        let bytes = store
            .read_bounded(&desc.digest, MAX_DOCUMENT_SIZE)
            .map_err(|e| Error::store(format!("reading {what} from the store"), e))?;
        let media_type = document_type(&bytes, Some(&desc.media_type), &what)?;
        let refs: Refs = serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
            what: what.clone(),
            reason: e.to_string(),
        })?;
        if is_index(&media_type) {
            for child in &refs.manifests {
                self.push_tree(job, child, false)?;
            }
        }
        let mut blobs: Vec<(Descriptor, bool)> =
            refs.config.into_iter().map(|c| (c, true)).collect();
        blobs.extend(refs.layers.into_iter().map(|l| (l, false)));
        if !is_index(&media_type) {
            blobs.extend(refs.manifests.into_iter().map(|m| (m, false)));
        }
        if let Some(settled) = job.settled {
            blobs.retain(|(blob, _)| !settled.has(&blob.digest));
        }
        self.parallel(&blobs, |(blob, is_config)| {
            let outcome = self.push_blob(job, blob)?;
            (job.report)(&BlobProgress {
                blob: blob.clone(),
                is_config: *is_config,
                outcome,
            });
            Ok(())
        })?;
        let target = match (top, reference.tag()) {
            (true, Some(tag)) => tag.to_string(),
            _ => desc.digest.to_string(),
        };
        let registry = reference.domain();
        let content_type =
            reqwest::header::HeaderValue::from_str(&media_type).map_err(|e| Error::Invalid {
                what: what.clone(),
                reason: format!("media type {media_type:?}: {e}"),
            })?;
        let what = format!("pushing {what}");
        let bytes = bytes::Bytes::from(bytes);
        self.retry(&what, registry, || {
            self.runtime
                .block_on(self.put_manifest(reference, &target, &bytes, &content_type))
                .map_err(|e| map_oci(&what, registry, e))
        })
    }

    pub(crate) fn push_blob(&self, job: &Job<'_>, blob: &Descriptor) -> Result<Outcome> {
        let (store, reference, counters) = (job.store, job.reference, job.counters);
        let registry = reference.domain();
        let what = format!("blob {}", blob.digest);
        let exists = self.retry(&what, registry, || {
            self.runtime
                .block_on(self.blob_exists(reference, &blob.digest))
                .map_err(|e| map_oci(&format!("checking {what}"), registry, e))
        })?;
        if exists {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(Outcome::AlreadyInRegistry);
        }
        for from in job.sources.candidates(&blob.digest) {
            // A refused mount (202, 401 on the source) just means "try the
            // next, then upload".
            let mounted = self
                .runtime
                .block_on(self.mount_blob(reference, from, &blob.digest))
                .unwrap_or(false);
            if mounted {
                counters.mounted.fetch_add(1, Ordering::Relaxed);
                return Ok(Outcome::Mounted(from.to_string()));
            }
        }
        self.retry(&format!("uploading {what}"), registry, || {
            self.upload(store, reference, blob, &what, registry)
        })?;
        counters.uploaded.fetch_add(1, Ordering::Relaxed);
        counters.bytes.fetch_add(blob.size, Ordering::Relaxed);
        Ok(Outcome::Pushed)
    }

    /// One upload attempt: a thread reads the blob from the store into a
    /// channel that is the request body's stream. The read is not re-hashed
    /// here: the store verified the blob when it was committed, and the
    /// registry checks the digest of what it receives before accepting it.
    fn upload(
        &self,
        store: &Store,
        reference: &Reference,
        blob: &Descriptor,
        what: &str,
        registry: &str,
    ) -> Result<()> {
        type Chunk = std::result::Result<bytes::Bytes, OciDistributionError>;
        let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(8);
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        std::thread::scope(|s| {
            let reader = s.spawn(move || -> Result<()> {
                let fail = |e| Error::store(format!("reading {what} from the store"), e);
                // Verified as it streams: a corrupt store blob is never sent.
                let mut r = store.open_verified(&blob.digest).map_err(fail)?;
                loop {
                    // A fresh buffer per chunk, frozen without a copy.
                    let mut buf = bytes::BytesMut::zeroed(CHUNK);
                    let n = match r.read(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(n) => n,
                        Err(e) => {
                            let stop = std::io::Error::other("the store failed to read the blob");
                            let _ = tx.blocking_send(Err(OciDistributionError::IoError(stop)));
                            return Err(fail(rbk_store::Error::Io {
                                op: "reading",
                                path: what.into(),
                                source: e,
                            }));
                        }
                    };
                    buf.truncate(n);
                    let chunk = buf.freeze();
                    if tx.blocking_send(Ok(chunk)).is_err() {
                        return Ok(()); // the request ended; its result says why
                    }
                }
            });
            let sent = self.runtime.block_on(self.put_blob(
                reference,
                blob,
                reqwest::Body::wrap_stream(body),
            ));
            reader.join().expect("blob reader panicked")?;
            sent.map(drop).map_err(|e| match upload_session_lost(&e) {
                true => Error::UploadLost {
                    what: what.to_string(),
                    registry: registry.to_string(),
                    source: Box::new(e),
                },
                false => map_oci(what, registry, e),
            })
        })
    }
}

/// The push's requests, through [`crate::http`]: every response body that
/// is read at all is read against a cap (errors at 64 KiB), and connect and
/// idle-read timeouts apply, as for pulls.
impl Client {
    /// `http(s)://HOST/v2/REPOSITORY`.
    fn repository_url(&self, reference: &Reference) -> String {
        let domain = reference.domain();
        let scheme = if self.is_insecure(domain) {
            "http"
        } else {
            "https"
        };
        format!(
            "{scheme}://{}/v2/{}",
            oci_ref_registry(domain),
            reference.path()
        )
    }

    async fn push_call(
        &self,
        reference: &Reference,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: CallBody,
        also_pull: Option<&str>,
    ) -> OciResult<Response> {
        let domain = reference.domain();
        let credentials = self
            .credentials(domain)
            .map_err(|e| OciDistributionError::GenericError(Some(e.to_string())))?;
        let host = oci_ref_registry(domain);
        self.http
            .call(&Call {
                method,
                url: url.to_string(),
                host: &host,
                repository: reference.path(),
                also_pull,
                headers,
                body,
                credentials,
            })
            .await
    }

    /// `HEAD …/blobs/DIGEST`: 2xx has it, 404 has not.
    async fn blob_exists(&self, reference: &Reference, digest: &Digest) -> OciResult<bool> {
        let url = format!("{}/blobs/{digest}", self.repository_url(reference));
        let response = self
            .push_call(
                reference,
                Method::HEAD,
                &url,
                HeaderMap::new(),
                CallBody::Empty,
                None,
            )
            .await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.http.error_from(response, &url).await),
        }
    }

    /// A cross-repository mount from `from`: `true` when the registry
    /// answered 201 (anything else starts an upload, which is abandoned).
    async fn mount_blob(
        &self,
        reference: &Reference,
        from: &str,
        digest: &Digest,
    ) -> OciResult<bool> {
        let url = format!(
            "{}/blobs/uploads/?mount={digest}&from={from}",
            self.repository_url(reference)
        );
        let response = self
            .push_call(
                reference,
                Method::POST,
                &url,
                empty_post(),
                CallBody::Empty,
                Some(from),
            )
            .await?;
        Ok(response.status() == StatusCode::CREATED)
    }

    /// A monolithic upload: `POST …/blobs/uploads/` for a session, then one
    /// `PUT` of the whole blob with its digest.
    async fn put_blob(
        &self,
        reference: &Reference,
        blob: &Descriptor,
        body: reqwest::Body,
    ) -> OciResult<()> {
        let url = format!("{}/blobs/uploads/", self.repository_url(reference));
        let response = self
            .push_call(
                reference,
                Method::POST,
                &url,
                empty_post(),
                CallBody::Empty,
                None,
            )
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(self.http.error_from(response, &url).await);
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or(OciDistributionError::RegistryNoLocationError)?;
        let mut put = response
            .url()
            .join(location)
            .map_err(|e| OciDistributionError::UrlParseError(e.to_string()))?;
        put.query_pairs_mut()
            .append_pair("digest", &blob.digest.to_string());
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from(blob.size));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let body = CallBody::Stream(std::sync::Mutex::new(Some(body)));
        let response = self
            .push_call(reference, Method::PUT, put.as_str(), headers, body, None)
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(self.http.error_from(response, put.as_str()).await);
        }
        Ok(())
    }

    /// `PUT …/manifests/TARGET` (a tag or a digest).
    async fn put_manifest(
        &self,
        reference: &Reference,
        target: &str,
        bytes: &bytes::Bytes,
        content_type: &HeaderValue,
    ) -> OciResult<()> {
        let url = format!("{}/manifests/{target}", self.repository_url(reference));
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, content_type.clone());
        let body = CallBody::Bytes(bytes.clone());
        let response = self
            .push_call(reference, Method::PUT, &url, headers, body, None)
            .await?;
        if !response.status().is_success() {
            return Err(self.http.error_from(response, &url).await);
        }
        Ok(())
    }
}

/// Headers of a POST without a body (some registries want the length).
fn empty_post() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_LENGTH, HeaderValue::from(0u64));
    headers
}

/// Where a blob might be mounted from: repositories of the same registry
/// that images tagged in the store come from. Those whose stored manifest
/// names the blob come first; the others are tried too (at most
/// [`MAX_GUESSES`]), because what was pushed there may be a compressed form
/// of what the store holds.
#[derive(Default)]
pub(crate) struct MountSources {
    by_blob: BTreeMap<Digest, String>,
    others: Vec<String>,
}

const MAX_GUESSES: usize = 3;

impl MountSources {
    fn candidates(&self, digest: &Digest) -> Vec<&str> {
        let exact = self.by_blob.get(digest).map(String::as_str);
        let rest = self
            .others
            .iter()
            .map(String::as_str)
            .filter(|r| Some(*r) != exact)
            .take(MAX_GUESSES);
        exact.into_iter().chain(rest).collect()
    }
}

pub(crate) fn mount_sources(store: &Store, target: &Reference) -> MountSources {
    let mut out = MountSources::default();
    let Ok(images) = store.images() else {
        return out;
    };
    for (reference, desc) in images {
        if reference.domain() != target.domain() || reference.path() == target.path() {
            continue;
        }
        if !out.others.iter().any(|r| r == reference.path()) {
            out.others.push(reference.path().to_string());
        }
        let Ok(bytes) = store.read_bounded(&desc.digest, MAX_DOCUMENT_SIZE) else {
            continue;
        };
        let Ok(refs) = serde_json::from_slice::<Refs>(&bytes) else {
            continue;
        };
        for blob in refs.config.into_iter().chain(refs.layers) {
            out.by_blob
                .entry(blob.digest)
                .or_insert_with(|| reference.path().to_string());
        }
    }
    out
}

/// Whether the registry refused the upload's `PUT …?digest=` because it no
/// longer knows the session (404, `BLOB_UPLOAD_UNKNOWN`) or disagrees on
/// the range received (416, `BLOB_UPLOAD_INVALID`): the upload starts again
/// with a new session (docs/security.md E8), a limited number of times.
fn upload_session_lost(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::ServerError { code, url, .. } => {
            matches!(code, 404 | 416) && url.contains("digest=")
        }
        OciDistributionError::RegistryError { envelope, url } => {
            url.contains("digest=")
                && envelope.errors.iter().any(|e| {
                    matches!(
                        e.code,
                        OciErrorCode::BlobUploadUnknown | OciErrorCode::BlobUploadInvalid
                    )
                })
        }
        _ => false,
    }
}
