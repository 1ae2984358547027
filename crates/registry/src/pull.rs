//! Pulling: manifests (resolving indexes by platform) and blobs streamed
//! into the store's ingest, which verifies digest and size on commit.

use std::io::Write;

use futures_util::StreamExt;
use oci_client::secrets::RegistryAuth;
use rbk_store::image::{
    parse_document, Document, Index, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST,
};
use rbk_store::{BlobWrite, Descriptor, Digest, Ingestion, Reference, Store, MAX_DOCUMENT_SIZE};

use crate::client::{map_oci, oci_ref, Client};
use crate::platform::select;
use crate::{Error, Result};

const MANIFEST_TYPES: [&str; 4] = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST];

/// How many blobs move at once.
pub(crate) const PARALLEL_BLOBS: usize = 4;

impl Client {
    /// Pulls the image (its platform's manifest, chosen from an index) into
    /// the store: config and layers first, each verified, then the manifest.
    /// Returns the manifest's descriptor. Does not tag.
    pub fn pull(&self, store: &Store, reference: &Reference) -> Result<Descriptor> {
        let (desc, bytes) = self.resolve_image(reference)?;
        let what = format!("manifest {}", desc.digest);
        let manifest = match parse_document(&bytes, Some(&desc.media_type), &what) {
            Ok(Document::Manifest(m)) => m,
            Ok(Document::Index(_)) => unreachable!("resolve_image returns manifests"),
            Err(e) => return Err(Error::store(format!("{reference}: bad manifest"), e)),
        };
        let mut blobs = vec![manifest.config.clone()];
        blobs.extend(manifest.layers.iter().cloned());
        parallel(&blobs, |blob| self.fetch_blob(store, reference, blob))?;
        store
            .put(&mut &bytes[..], Some((desc.digest, Some(desc.size))))
            .map_err(|e| Error::store(format!("storing {what}"), e))?;
        Ok(desc)
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

    /// The image manifest `reference` names (through an index, by platform).
    fn resolve_image(&self, reference: &Reference) -> Result<(Descriptor, Vec<u8>)> {
        let (desc, bytes) = self.fetch_document(reference, None)?;
        if !is_index(&desc.media_type) {
            return Ok((desc, bytes));
        }
        let index = parse_index(&bytes, &desc)?;
        self.resolve_index(reference, &index)
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
    fn fetch_document(
        &self,
        reference: &Reference,
        pinned: Option<&Descriptor>,
    ) -> Result<(Descriptor, Vec<u8>)> {
        let registry = reference.domain();
        let oci = self.registry(registry)?;
        let mut image = oci_ref(reference);
        let expected = pinned.map(|d| d.digest).or(reference.digest().copied());
        if let Some(d) = &expected {
            image = oci_client::Reference::with_digest(
                registry.to_string(),
                reference.path().to_string(),
                d.to_string(),
            );
        }
        let what = format!("manifest of {}", reference.familiar());
        let bytes = self.retry(&what, registry, || {
            self.runtime
                .block_on(oci.pull_manifest_raw(&image, &RegistryAuth::Anonymous, &MANIFEST_TYPES))
                .map(|(b, _)| b.to_vec())
                .map_err(|e| map_oci(&what, registry, e))
        })?;
        if bytes.len() as u64 > MAX_DOCUMENT_SIZE {
            return Err(Error::Invalid {
                what,
                reason: format!("larger than {MAX_DOCUMENT_SIZE} bytes"),
            });
        }
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
        store: &Store,
        reference: &Reference,
        blob: &Descriptor,
    ) -> Result<()> {
        let registry = reference.domain();
        let oci = self.registry(registry)?;
        let image = oci_ref(reference);
        let what = format!("blob {}", blob.digest);
        let digest = blob.digest.to_string();
        self.retry(&what, registry, || {
            let mut ingest = match store.ingest(Some(blob.digest)) {
                Ok(Ingestion::Exists(_)) => return Ok(()),
                Ok(Ingestion::Write(w)) => w,
                Err(e) => return Err(Error::store(format!("storing {what}"), e)),
            };
            let mismatch = |source| Error::Mismatch {
                what: what.clone(),
                registry: registry.to_string(),
                expected: blob.digest,
                source,
            };
            self.runtime.block_on(async {
                let mut stream = oci
                    .pull_blob_stream(&image, digest.as_str())
                    .await
                    .map_err(|e| map_oci(&what, registry, e))?
                    .stream;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| {
                        // Body errors wrap reqwest's error; anything else is
                        // oci-client's own digest check failing.
                        if e.get_ref().is_some_and(|i| i.is::<reqwest::Error>()) {
                            Error::Transfer {
                                what: what.clone(),
                                registry: registry.to_string(),
                                source: e,
                            }
                        } else {
                            mismatch(None)
                        }
                    })?;
                    // Never accept more than the descriptor promised.
                    if ingest.written() + chunk.len() as u64 > blob.size {
                        return Err(mismatch(None));
                    }
                    ingest
                        .write_all(&chunk)
                        .map_err(|e| Error::store(format!("storing {what}"), io_err(e)))?;
                }
                Ok(())
            })?;
            ingest
                .commit(Some(blob.digest), Some(blob.size))
                .map_err(|e| match e.is_mismatch() {
                    true => mismatch(Some(Box::new(e))),
                    false => Error::store(format!("storing {what}"), e),
                })?;
            Ok(())
        })
    }
}

fn io_err(source: std::io::Error) -> rbk_store::Error {
    rbk_store::Error::Io {
        op: "writing",
        path: "<ingest>".into(),
        source,
    }
}

/// Runs `f` over `items`, [`PARALLEL_BLOBS`] at a time; the first error wins.
pub(crate) fn parallel<T: Sync>(items: &[T], f: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..PARALLEL_BLOBS.min(items.len()) {
            s.spawn(|| loop {
                if failed.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(item) = items.get(i) else { return };
                if let Err(e) = f(item) {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
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

pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

fn is_manifest(media_type: &str) -> bool {
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
