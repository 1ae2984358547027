//! Pushing: every blob a manifest names (skipped when the registry has it,
//! mounted when another repository of the same registry does), then the
//! manifest. Blobs are read from the store only through `BlobRead`.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

use oci_client::errors::OciDistributionError;
use rbk_store::{BlobRead, Descriptor, Digest, Reference, Store, MAX_DOCUMENT_SIZE};
use serde::Deserialize;

use crate::client::{map_oci, oci_ref, Client};
use crate::progress::{silent, BlobProgress, Outcome, Reporter};
use crate::pull::{document_type, is_index};
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
struct Job<'a> {
    store: &'a Store,
    reference: &'a Reference,
    counters: &'a Counters,
    sources: &'a MountSources,
    report: Reporter<'a>,
}

#[derive(Default)]
struct Counters {
    uploaded: AtomicU64,
    skipped: AtomicU64,
    mounted: AtomicU64,
    bytes: AtomicU64,
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
        };
        self.push_tree(&job, manifest, true)?;
        Ok(PushReport {
            uploaded: counters.uploaded.into_inner(),
            skipped: counters.skipped.into_inner(),
            mounted: counters.mounted.into_inner(),
            bytes: counters.bytes.into_inner(),
        })
    }

    /// Pushes a document and what it names; the top one goes under the
    /// reference's tag, those below it by digest.
    fn push_tree(&self, job: &Job<'_>, desc: &Descriptor, top: bool) -> Result<()> {
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
            (true, Some(tag)) => oci_client::Reference::with_tag(
                reference.domain().into(),
                reference.path().into(),
                tag.into(),
            ),
            _ => oci_client::Reference::with_digest(
                reference.domain().into(),
                reference.path().into(),
                desc.digest.to_string(),
            ),
        };
        let registry = reference.domain();
        let oci = self.registry(registry)?;
        let content_type =
            reqwest::header::HeaderValue::from_str(&media_type).map_err(|e| Error::Invalid {
                what: what.clone(),
                reason: format!("media type {media_type:?}: {e}"),
            })?;
        let what = format!("pushing {what}");
        self.retry(&what, registry, || {
            self.runtime
                .block_on(oci.push_manifest_raw(&target, bytes.clone(), content_type.clone()))
                .map(drop)
                .map_err(|e| map_oci(&what, registry, e))
        })
    }

    fn push_blob(&self, job: &Job<'_>, blob: &Descriptor) -> Result<Outcome> {
        let (store, reference, counters) = (job.store, job.reference, job.counters);
        let registry = reference.domain();
        let oci = self.registry(registry)?;
        let image = oci_ref(reference);
        let digest = blob.digest.to_string();
        let what = format!("blob {}", blob.digest);
        let exists = self.retry(&what, registry, || {
            self.runtime
                .block_on(oci.blob_exists(&image, &digest))
                .map_err(|e| map_oci(&format!("checking {what}"), registry, e))
        })?;
        if exists {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(Outcome::AlreadyInRegistry);
        }
        for from in job.sources.candidates(&blob.digest) {
            let source =
                oci_client::Reference::with_tag(registry.into(), from.to_string(), "latest".into());
            // A refused mount (202, 401 on the source) just means "try the
            // next, then upload".
            let mounted = self
                .runtime
                .block_on(oci.mount_blob(&image, &source, &digest))
                .is_ok();
            if mounted {
                counters.mounted.fetch_add(1, Ordering::Relaxed);
                return Ok(Outcome::Mounted(from.to_string()));
            }
        }
        self.retry(&format!("uploading {what}"), registry, || {
            self.upload(store, &oci, &image, blob, &what, registry)
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
        oci: &oci_client::Client,
        image: &oci_client::Reference,
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
            let sent = self.runtime.block_on(oci.push_blob_stream(
                image,
                body,
                &blob.digest.to_string(),
                Some(blob.size),
            ));
            reader.join().expect("blob reader panicked")?;
            sent.map(drop).map_err(|e| map_oci(what, registry, e))
        })
    }
}

/// Where a blob might be mounted from: repositories of the same registry
/// that images tagged in the store come from. Those whose stored manifest
/// names the blob come first; the others are tried too (at most
/// [`MAX_GUESSES`]), because what was pushed there may be a compressed form
/// of what the store holds.
#[derive(Default)]
struct MountSources {
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

fn mount_sources(store: &Store, target: &Reference) -> MountSources {
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
