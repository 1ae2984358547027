//! Pulling: manifests (resolving indexes by platform) and blobs streamed
//! into the store's ingest, which verifies digest and size on commit.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures_util::StreamExt;
use rbk_store::archive::check_layer;
use rbk_store::image::{
    parse_config, parse_document, Document, Index, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX,
    OCI_MANIFEST,
};
use rbk_store::{
    BlobWrite, Descriptor, Digest, Ingest, Ingestion, Reference, Store, MAX_DOCUMENT_SIZE,
};

use crate::client::{map_oci, Client};
use crate::http::read_capped;
use crate::platform::select;
use crate::progress::{silent, BlobProgress, Outcome, Reporter};
use crate::{Error, Result};

const MANIFEST_TYPES: [&str; 4] = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST];

/// How many blobs move at once unless [`ClientOptions::parallel_blobs`]
/// says otherwise (Docker's defaults are 3 downloads and 5 uploads).
///
/// [`ClientOptions::parallel_blobs`]: crate::ClientOptions::parallel_blobs
pub(crate) const PARALLEL_BLOBS: usize = 4;

impl Client {
    /// Pulls the image (its platform's manifest, chosen from an index) into
    /// the store: config and layers first, each verified, then the manifest.
    /// Returns the manifest's descriptor. Does not tag.
    pub fn pull(&self, store: &Store, reference: &Reference) -> Result<Descriptor> {
        self.pull_reporting(store, reference, &silent)
    }

    /// [`pull`](Client::pull), telling `report` what became of each blob as
    /// it happens (from several threads).
    ///
    /// The config is fetched into memory and checked first: when the
    /// reference named a manifest rather than an index, the config's
    /// `os`/`architecture` must be the requested platform's, so a mismatch
    /// fails before anything lands in the store.
    pub fn pull_reporting(
        &self,
        store: &Store,
        reference: &Reference,
        report: Reporter<'_>,
    ) -> Result<Descriptor> {
        let (desc, bytes, from_index) = self.resolve_image(reference)?;
        self.store_image(store, reference, desc, &bytes, !from_index, report)
    }

    /// Stores the image manifest `bytes` (described by `desc`) with its
    /// config and layers, fetched from `reference`'s repository; with
    /// `check_platform`, the config must be for the client's platform.
    pub(crate) fn store_image(
        &self,
        store: &Store,
        reference: &Reference,
        desc: Descriptor,
        bytes: &[u8],
        check_platform: bool,
        report: Reporter<'_>,
    ) -> Result<Descriptor> {
        let what = format!("manifest {}", desc.digest);
        let manifest = match parse_document(bytes, Some(&desc.media_type), &what) {
            Ok(Document::Manifest(m)) => m,
            Ok(Document::Index(_)) => {
                return Err(Error::Invalid {
                    what: format!("{reference}: {what}"),
                    reason: "an index inside an index is not supported".into(),
                })
            }
            Err(e) => return Err(Error::store(format!("{reference}: bad manifest"), e)),
        };
        let config = self.fetch_config(reference, &manifest.config)?;
        if check_platform {
            self.platform.check_config(&config, &reference.familiar())?;
        }
        store
            .put(
                &mut &config[..],
                Some((manifest.config.digest, Some(manifest.config.size))),
            )
            .map_err(|e| Error::store(format!("storing config {}", manifest.config.digest), e))?;
        report(&BlobProgress {
            blob: manifest.config.clone(),
            is_config: true,
            outcome: Outcome::Pulled,
        });
        let layers = layers_with_diff_ids(reference, &desc, &manifest.layers, &config)?;
        self.parallel(&layers, |(blob, diff_id)| {
            let fetched = self.fetch_blob_once(store, reference, blob)?;
            // Unpacked now, against the config's diff id, as load does: a
            // registry whose bytes lie about their diff id (or that the
            // extractor refuses) fails the pull, before any manifest or tag.
            check_layer(store, blob, diff_id).map_err(|e| layer_refused(reference, blob, e))?;
            report(&BlobProgress {
                blob: blob.clone(),
                is_config: false,
                outcome: if fetched {
                    Outcome::Pulled
                } else {
                    Outcome::AlreadyStored
                },
            });
            Ok(())
        })?;
        store
            .put(&mut &bytes[..], Some((desc.digest, Some(desc.size))))
            .map_err(|e| Error::store(format!("storing {what}"), e))?;
        Ok(desc)
    }

    /// A config blob, fetched into memory (bounded) and verified.
    fn fetch_config(&self, reference: &Reference, blob: &Descriptor) -> Result<Vec<u8>> {
        let registry = reference.domain();
        let what = format!("config {}", blob.digest);
        if blob.size > MAX_DOCUMENT_SIZE {
            return Err(Error::Invalid {
                what,
                reason: format!("larger than {MAX_DOCUMENT_SIZE} bytes"),
            });
        }
        let credentials = self.credentials(registry)?;
        let bytes = self.retry(&what, registry, || {
            self.runtime.block_on(async {
                let response = self
                    .get(
                        reference,
                        format!("blobs/{}", blob.digest),
                        &[],
                        0,
                        credentials.clone(),
                    )
                    .await
                    .map_err(|e| map_oci(&what, registry, e))?;
                // Never more than the descriptor promised (≤ 4 MiB).
                let (bytes, complete) = read_capped(response, blob.size as usize + 1)
                    .await
                    .map_err(|e| map_oci(&what, registry, e))?;
                if !complete || bytes.len() as u64 > blob.size {
                    return Err(self.mismatch(&what, registry, blob));
                }
                Ok(bytes)
            })
        })?;
        if bytes.len() as u64 != blob.size || Digest::sha256_of(&bytes) != blob.digest {
            return Err(self.mismatch(&what, registry, blob));
        }
        Ok(bytes)
    }

    fn mismatch(&self, what: &str, registry: &str, blob: &Descriptor) -> Error {
        Error::Mismatch {
            what: what.to_string(),
            registry: registry.to_string(),
            expected: blob.digest,
            source: None,
        }
    }

    /// Fetches a manifest, resolving an index of images to the platform's
    /// manifest (an index whose entries are not image manifests, such as a
    /// build-cache index, comes back as it is). Stores nothing.
    pub fn fetch_manifest(&self, reference: &Reference) -> Result<(Descriptor, Vec<u8>)> {
        let (desc, bytes) = self.fetch_document(reference, None)?;
        if !is_index(&desc.media_type) {
            return Ok((desc, bytes));
        }
        let index = parse_index(&bytes, &desc)?;
        if !index
            .manifests
            .iter()
            .any(|m| is_manifest(&m.descriptor.media_type))
        {
            return Ok((desc, bytes));
        }
        self.resolve_index(reference, &index)
    }

    /// The image manifest `reference` names (through an index, by
    /// platform), and whether an index was involved.
    fn resolve_image(&self, reference: &Reference) -> Result<(Descriptor, Vec<u8>, bool)> {
        let (desc, bytes) = self.fetch_document(reference, None)?;
        if !is_index(&desc.media_type) {
            return Ok((desc, bytes, false));
        }
        let index = parse_index(&bytes, &desc)?;
        let (desc, bytes) = self.resolve_index(reference, &index)?;
        Ok((desc, bytes, true))
    }

    fn resolve_index(&self, reference: &Reference, index: &Index) -> Result<(Descriptor, Vec<u8>)> {
        let entry = select(index, &self.platform, &reference.familiar())?;
        let (desc, bytes) = self.fetch_document(reference, Some(&entry.descriptor))?;
        if is_index(&desc.media_type) {
            return Err(Error::Invalid {
                what: format!("{reference}: manifest {}", desc.digest),
                reason: "an index inside an index is not supported".into(),
            });
        }
        Ok((desc, bytes))
    }

    /// GETs the document `reference` names (or `pinned`, a descriptor from an
    /// index), checks its size and digest, and returns it with a descriptor.
    pub(crate) fn fetch_document(
        &self,
        reference: &Reference,
        pinned: Option<&Descriptor>,
    ) -> Result<(Descriptor, Vec<u8>)> {
        let registry = reference.domain();
        let expected = pinned.map(|d| d.digest).or(reference.digest().copied());
        let what = format!("manifest of {}", reference.familiar());
        let object = match &expected {
            Some(d) => format!("manifests/{d}"),
            None => format!("manifests/{}", reference.tag().unwrap_or("latest")),
        };
        let credentials = self.credentials(registry)?;
        let bytes = self.retry(&what, registry, || {
            self.runtime.block_on(async {
                let response = self
                    .get(
                        reference,
                        object.clone(),
                        &MANIFEST_TYPES,
                        0,
                        credentials.clone(),
                    )
                    .await
                    .map_err(|e| map_oci(&what, registry, e))?;
                // Read against the cap as the body arrives: a body that
                // never ends (chunked, no Content-Length) stops here.
                let (bytes, complete) = read_capped(response, MAX_DOCUMENT_SIZE as usize)
                    .await
                    .map_err(|e| map_oci(&what, registry, e))?;
                if !complete {
                    return Err(Error::Invalid {
                        what: what.clone(),
                        reason: format!("larger than {MAX_DOCUMENT_SIZE} bytes"),
                    });
                }
                Ok(bytes)
            })
        })?;
        // The digest is computed here; the registry's header is not trusted.
        let digest = Digest::sha256_of(&bytes);
        if let Some(want) = expected.filter(|d| *d != digest) {
            return Err(Error::Mismatch {
                what,
                registry: registry.to_string(),
                expected: want,
                source: None,
            });
        }
        if let Some(p) = pinned.filter(|p| p.size != bytes.len() as u64) {
            return Err(Error::Mismatch {
                what,
                registry: registry.to_string(),
                expected: p.digest,
                source: None,
            });
        }
        let media_type = document_type(&bytes, pinned.map(|p| p.media_type.as_str()), &what)?;
        let desc = Descriptor {
            media_type,
            digest,
            size: bytes.len() as u64,
            annotations: Default::default(),
        };
        Ok((desc, bytes))
    }

    /// Fetches one blob from `reference`'s repository into the store,
    /// verified; a blob the store has is not fetched again.
    pub fn fetch_blob(
        &self,
        store: &dyn BlobWrite,
        reference: &Reference,
        blob: &Descriptor,
    ) -> Result<()> {
        self.fetch_blob_once(store, reference, blob).map(drop)
    }

    /// [`fetch_blob`](Client::fetch_blob); `Ok(false)` when the store had it.
    ///
    /// The body is asked for with a `Range` from the bytes the ingest holds,
    /// so a retry after a body that broke off resumes where it stopped, and
    /// a ranged (206) answer is hashed once, by the store's ingest, whose
    /// commit checks digest and size. A registry that ignores the range
    /// answers 200 with the whole blob, which oci-client verifies as it
    /// streams; the ingest then starts again from byte 0.
    pub(crate) fn fetch_blob_once(
        &self,
        store: &dyn BlobWrite,
        reference: &Reference,
        blob: &Descriptor,
    ) -> Result<bool> {
        let registry = reference.domain();
        let what = format!("blob {}", blob.digest);
        let mut kept: Option<Box<dyn Ingest + '_>> = None;
        self.retry(&what, registry, || {
            let fresh = || match store.ingest(Some(blob.digest)) {
                Ok(Ingestion::Exists(_)) => Ok(None),
                Ok(Ingestion::Write(w)) => Ok(Some(w)),
                Err(e) => Err(Error::store(format!("storing {what}"), e)),
            };
            let ingest = match kept.take() {
                Some(w) => w,
                None => match fresh()? {
                    Some(w) => w,
                    None => return Ok(false),
                },
            };
            let ingest = self.stream_blob(reference, blob, ingest, &mut kept, fresh)?;
            ingest
                .commit(Some(blob.digest), Some(blob.size))
                .map_err(|e| match e.is_mismatch() {
                    true => Error::Mismatch {
                        what: what.clone(),
                        registry: registry.to_string(),
                        expected: blob.digest,
                        source: Some(Box::new(e)),
                    },
                    false => Error::store(format!("storing {what}"), e),
                })?;
            Ok(true)
        })
    }

    /// One GET of the blob's bytes past what `ingest` holds, written into
    /// it. When the body breaks off, the ingest is left in `kept` for the
    /// next attempt to resume.
    fn stream_blob<'s>(
        &self,
        reference: &Reference,
        blob: &Descriptor,
        mut ingest: Box<dyn Ingest + 's>,
        kept: &mut Option<Box<dyn Ingest + 's>>,
        fresh: impl Fn() -> Result<Option<Box<dyn Ingest + 's>>>,
    ) -> Result<Box<dyn Ingest + 's>> {
        let registry = reference.domain();
        let what = format!("blob {}", blob.digest);
        let mismatch = || self.mismatch(&what, registry, blob);
        let offset = ingest.written();
        let credentials = self.credentials(registry)?;
        let response = self
            .runtime
            .block_on(self.get(
                reference,
                format!("blobs/{}", blob.digest),
                &[],
                offset,
                credentials,
            ))
            .map_err(|e| map_oci(&what, registry, e))?;
        let partial = response.status() == reqwest::StatusCode::PARTIAL_CONTENT;
        if offset > 0 && partial && range_start(&response) != Some(offset) {
            // A 206 for other bytes than were asked for (docs/security.md
            // E3): never appended. Dropping the ingest makes the retry
            // start over from byte 0.
            drop(ingest);
            return Err(Error::Transfer {
                what: what.clone(),
                registry: registry.to_string(),
                source: std::io::Error::other(format!(
                    "asked for bytes from {offset}, the registry answered 206 with Content-Range {:?}",
                    response
                        .headers()
                        .get(reqwest::header::CONTENT_RANGE)
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                        .unwrap_or_default()
                )),
            });
        }
        if offset > 0 && !partial {
            // The whole blob is coming: start over (dropping the old
            // ingest first releases its lock on the digest).
            drop(ingest);
            ingest = fresh()?.ok_or_else(mismatch)?;
        }
        let mut stream = response.bytes_stream();
        self.runtime.block_on(async {
            while let Some(chunk) = stream.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    // A body that broke off or stalled past the read
                    // timeout: the next attempt resumes.
                    Err(e) => {
                        *kept = Some(ingest);
                        return Err(Error::Transfer {
                            what: what.clone(),
                            registry: registry.to_string(),
                            source: std::io::Error::other(e),
                        });
                    }
                };
                // Never accept more than the descriptor promised.
                if ingest.written() + chunk.len() as u64 > blob.size {
                    return Err(mismatch());
                }
                ingest
                    .write_all(&chunk)
                    .map_err(|e| Error::store(format!("storing {what}"), io_err(e)))?;
            }
            Ok(ingest)
        })
    }
}

/// The first byte of a 206's `Content-Range: bytes START-END/TOTAL`.
fn range_start(response: &reqwest::Response) -> Option<u64> {
    let value = response.headers().get(reqwest::header::CONTENT_RANGE)?;
    content_range_start(value.to_str().ok()?)
}

/// `bytes START-END/TOTAL` → START.
pub(crate) fn content_range_start(value: &str) -> Option<u64> {
    let range = value.trim().strip_prefix("bytes ")?;
    range.split_once('-')?.0.trim().parse().ok()
}

/// Each layer with the diff id the image config gives it, which there must
/// be exactly one of per layer.
fn layers_with_diff_ids(
    reference: &Reference,
    desc: &Descriptor,
    layers: &[Descriptor],
    config: &[u8],
) -> Result<Vec<(Descriptor, Digest)>> {
    let what = format!("{reference}: manifest {}", desc.digest);
    let config = parse_config(config, "image config")
        .map_err(|e| Error::store(format!("{what}: bad config"), e))?;
    let diff_ids = config.rootfs.diff_ids;
    if diff_ids.len() != layers.len() {
        return Err(Error::Invalid {
            what,
            reason: format!(
                "it has {} layers but its config lists {} diff ids",
                layers.len(),
                diff_ids.len()
            ),
        });
    }
    Ok(layers.iter().cloned().zip(diff_ids).collect())
}

/// The error for a pulled layer that does not match its diff id or that the
/// extractor refuses, with the store error's causes on one line.
fn layer_refused(reference: &Reference, blob: &Descriptor, e: rbk_store::Error) -> Error {
    let mut reason = match &e {
        rbk_store::Error::CorruptLayer { reason, .. } => {
            format!("does not match the diff id its config gives it: {reason}")
        }
        other => other.to_string(),
    };
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        reason.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    Error::Invalid {
        what: format!("{reference}: layer {}", blob.digest),
        reason,
    }
}

fn io_err(source: std::io::Error) -> rbk_store::Error {
    rbk_store::Error::Io {
        op: "writing",
        path: "<ingest>".into(),
        source,
    }
}

impl Client {
    /// Runs `f` over `items`, [`Client::parallel_blobs`] at a time; the
    /// first error wins and stops the others from starting new items.
    pub(crate) fn parallel<T: Sync>(
        &self,
        items: &[T],
        f: impl Fn(&T) -> Result<()> + Sync,
    ) -> Result<()> {
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let errors = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..self.parallel_blobs().min(items.len()) {
                s.spawn(|| loop {
                    if failed.load(Ordering::Relaxed) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { return };
                    if let Err(e) = f(item) {
                        failed.store(true, Ordering::Relaxed);
                        errors.lock().expect("poisoned").push(e);
                    }
                });
            }
        });
        match errors.into_inner().expect("poisoned").into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

pub(crate) fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// The document's media type: its own `mediaType`, else the one claimed for
/// it, else OCI's by shape (`manifests` means an index).
pub(crate) fn document_type(bytes: &[u8], claimed: Option<&str>, what: &str) -> Result<String> {
    let invalid = |reason: String| Error::Invalid {
        what: what.to_string(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| invalid("not a JSON object".into()))?;
    if obj.contains_key("manifests") && (obj.contains_key("layers") || obj.contains_key("config")) {
        return Err(invalid(
            "has both \"manifests\" and \"layers\"/\"config\"".into(),
        ));
    }
    let own = obj.get("mediaType").and_then(|v| v.as_str());
    if let (Some(own), Some(claimed)) = (own, claimed) {
        if own != claimed {
            return Err(invalid(format!(
                "mediaType {own:?} differs from the descriptor's {claimed:?}"
            )));
        }
    }
    Ok(match own.or(claimed) {
        Some(t) => t.to_string(),
        None if obj.contains_key("manifests") => OCI_INDEX.to_string(),
        None => OCI_MANIFEST.to_string(),
    })
}

pub(crate) fn parse_index(bytes: &[u8], desc: &Descriptor) -> Result<Index> {
    let what = format!("index {}", desc.digest);
    match parse_document(bytes, Some(&desc.media_type), &what) {
        Ok(Document::Index(i)) => Ok(i),
        Ok(Document::Manifest(_)) => Err(Error::Invalid {
            what,
            reason: "is a manifest, not an index".into(),
        }),
        Err(e) => Err(Error::store(what, e)),
    }
}
