//! Pulling several platforms of an image index into the store, keeping an
//! index (`rbk pull --platform a,b`, `--all-platforms`).

use rbk_store::image::{ImagePlatform, Index, IndexEntry};
use rbk_store::{BlobWrite, Descriptor, Reference, Store};

use crate::platform::{describe, select};
use crate::progress::Reporter;
use crate::pull::{is_index, is_manifest, parse_index};
use crate::{Client, Error, Platform, Result};

impl Client {
    /// Pulls the images of `reference`'s index for `platforms` (every image
    /// entry when `None`; attestation manifests are left out) and returns
    /// the descriptor to tag: the registry's own index when every entry was
    /// pulled (so its digest is the registry's), else a new index over the
    /// pulled entries. A reference naming a manifest is pulled as
    /// [`Client::pull`] pulls it.
    pub fn pull_platforms(
        &self,
        store: &Store,
        reference: &Reference,
        platforms: Option<&[Platform]>,
        report: Reporter<'_>,
    ) -> Result<Descriptor> {
        let (desc, bytes) = self.fetch_document(reference, None)?;
        if !is_index(&desc.media_type) {
            return self.store_image(store, reference, desc, &bytes, true, report);
        }
        let index = parse_index(&bytes, &desc)?;
        let chosen = chosen_entries(&index, platforms, reference)?;
        let mut pulled = Vec::new();
        for entry in &chosen {
            let (child, child_bytes) = self.fetch_document(reference, Some(&entry.descriptor))?;
            let child = self.store_image(store, reference, child, &child_bytes, false, report)?;
            let platform = ImagePlatform::of_entry(entry).unwrap_or_else(|| ImagePlatform {
                os: String::new(),
                architecture: String::new(),
                variant: String::new(),
            });
            pulled.push((child, platform));
        }
        // Every image pulled: the attestation manifests come too, so the
        // registry's index is kept as it is (bytes, digest, provenance).
        let mut attestations = 0;
        if platforms.is_none() {
            for entry in index.manifests.iter().filter(|e| e.is_attestation()) {
                self.store_attestation(store, reference, &entry.descriptor)?;
                attestations += 1;
            }
        }
        if chosen.len() + attestations == index.manifests.len() {
            store
                .put(&mut &bytes[..], Some((desc.digest, Some(desc.size))))
                .map_err(|e| Error::store(format!("storing index {}", desc.digest), e))?;
            return Ok(desc);
        }
        store
            .put_index(&pulled)
            .map_err(|e| Error::store(format!("storing an index for {reference}"), e))
    }
}

impl Client {
    /// Stores an attestation manifest with its config and statements (not
    /// an image: its layers are in-toto JSON, fetched as plain blobs).
    fn store_attestation(
        &self,
        store: &Store,
        reference: &Reference,
        entry: &Descriptor,
    ) -> Result<()> {
        let (desc, bytes) = self.fetch_document(reference, Some(entry))?;
        let what = format!("attestation manifest {}", desc.digest);
        let parts = rbk_store::image::attestation_parts(&bytes, &what)
            .map_err(|e| Error::store(format!("{reference}: {what}"), e))?;
        self.parallel(&parts, |blob| {
            self.fetch_blob_once(store, reference, blob).map(drop)
        })?;
        store
            .put(&mut &bytes[..], Some((desc.digest, Some(desc.size))))
            .map_err(|e| Error::store(format!("storing {what}"), e))?;
        Ok(())
    }
}

/// The entries to pull: each of `platforms` (one entry each, an error
/// listing what the index has when one is missing), or every image entry.
fn chosen_entries<'a>(
    index: &'a Index,
    platforms: Option<&[Platform]>,
    reference: &Reference,
) -> Result<Vec<&'a IndexEntry>> {
    let Some(platforms) = platforms else {
        return Ok(index
            .manifests
            .iter()
            .filter(|e| !e.is_attestation() && is_manifest(&e.descriptor.media_type))
            .filter(|e| describe(e) != "unknown/unknown")
            .collect());
    };
    let mut out: Vec<&IndexEntry> = Vec::new();
    for platform in platforms {
        let entry = select(index, platform, &reference.familiar())?;
        if !out
            .iter()
            .any(|e| e.descriptor.digest == entry.descriptor.digest)
        {
            out.push(entry);
        }
    }
    Ok(out)
}
