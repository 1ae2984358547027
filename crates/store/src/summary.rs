//! Image summaries: what listing an image needs (`rbk images`, `system df`,
//! finding an image by id), kept in one file so that listing 10,000 images
//! reads one file instead of a manifest and a config per image.
//!
//! A summary is keyed by the digest of the manifest an index entry points
//! at. A manifest and its config never change, nor does an uncompressed
//! layer size (`db/sizes`, keyed by diff id), so a summary is exact for as
//! long as its manifest exists: the file is a cache that can never be
//! stale, only incomplete. A manifest whose summary is missing is read as
//! before and its summary added; a summary is kept only when every layer's
//! size was measured (not guessed from a missing blob). An index (a
//! multi-platform image) is summarised by its host entry, so the file
//! records the host platform and is ignored on another one.
//!
//! `db/image-summaries.json` is replaced atomically (temporary file, fsync,
//! rename) after a listing that computed something new, keeping only the
//! manifests the image index still names. Concurrent writers each write a
//! complete, correct file; the last rename wins. A file that does not parse
//! is an empty cache.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::fsutil::{read_small, write_atomic};
use crate::image::ImagePlatform;
use crate::{Descriptor, Digest, Result, Store};

const FILE: &str = "image-summaries.json";
/// Bumped whenever what a summary holds, or how a layer's size is counted
/// (`usage.rs`), changes: older files are then ignored.
const VERSION: u32 = 1;
const MAX_FILE: u64 = 256 << 20;

/// What listing one image needs, read from its manifest and config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// The image id (the config's digest).
    pub id: Digest,
    /// The config's `created`, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The config's `Labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Each layer, base first: its diff id and uncompressed size.
    pub layers: Vec<(Digest, u64)>,
}

impl ImageSummary {
    /// The image's uncompressed size: each distinct layer once (as
    /// [`Store::image_size`]).
    pub fn size(&self) -> u64 {
        self.distinct_layers().iter().map(|(_, size)| size).sum()
    }

    /// Each layer once, by diff id, with its uncompressed size.
    pub fn distinct_layers(&self) -> Vec<(Digest, u64)> {
        let mut layers = self.layers.clone();
        layers.sort_unstable_by_key(|(diff_id, _)| *diff_id);
        layers.dedup_by_key(|(diff_id, _)| *diff_id);
        layers
    }
}

#[derive(Default, Serialize, Deserialize)]
struct SummaryFile {
    version: u32,
    host: String,
    images: HashMap<Digest, ImageSummary>,
}

/// The summaries of one listing: load with [`Store::image_summaries`], ask
/// with [`ImageSummaries::get`], then [`ImageSummaries::save`].
#[derive(Debug)]
pub struct ImageSummaries {
    cached: HashMap<Digest, ImageSummary>,
    /// Summaries computed by this listing, to be written back.
    computed: HashMap<Digest, ImageSummary>,
    /// Summaries computed with a guessed layer size: used, never kept.
    inexact: HashMap<Digest, ImageSummary>,
    host: String,
}

impl Store {
    /// Loads the image summaries (an empty set if the file is missing,
    /// unreadable, corrupt or from another host platform).
    pub fn image_summaries(&self) -> ImageSummaries {
        let host = ImagePlatform::host().to_string();
        let file = read_small(&self.db_dir().join(FILE), MAX_FILE)
            .ok()
            .and_then(|b| serde_json::from_slice::<SummaryFile>(&b).ok())
            .filter(|f| f.version == VERSION && f.host == host);
        ImageSummaries {
            cached: file.map(|f| f.images).unwrap_or_default(),
            computed: HashMap::new(),
            inexact: HashMap::new(),
            host,
        }
    }

    /// Runs `read` while [`Store::image_summaries`] loads on another
    /// thread: listings read the image index and the summary file, which
    /// are independent and each take a few milliseconds to parse at 10,000
    /// images (issue 19's 50 ms for `rbk images` and `system df`).
    pub fn image_summaries_beside<T>(&self, read: impl FnOnce() -> T) -> (T, ImageSummaries) {
        std::thread::scope(|scope| {
            let summaries = scope.spawn(|| self.image_summaries());
            let value = read();
            let summaries = summaries
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (value, summaries)
        })
    }

    /// Reads the image `descriptor` names and summarises it. `None` as the
    /// second value when a layer's size could not be measured (the blob's
    /// size stands in): such a summary is not kept.
    fn summarise(&self, descriptor: &Descriptor) -> Result<(ImageSummary, bool)> {
        let image = self.read_image(descriptor)?;
        let mut exact = true;
        let layers = image
            .manifest
            .layers
            .iter()
            .zip(&image.config.rootfs.diff_ids);
        let layers = layers
            .map(|(blob, diff_id)| {
                let size = self.layer_size(blob, diff_id).unwrap_or_else(|_| {
                    exact = false;
                    blob.size
                });
                (*diff_id, size)
            })
            .collect();
        let labels = image.config.config.as_ref().map(|c| c.labels.clone());
        let summary = ImageSummary {
            id: image.id(),
            created: image.config.created.clone(),
            labels: labels.unwrap_or_default(),
            layers,
        };
        Ok((summary, exact))
    }
}

impl ImageSummaries {
    /// The summary of the image `descriptor` names: from the file, else
    /// read from the manifest and config (an error if they cannot be read).
    pub fn get(&mut self, store: &Store, descriptor: &Descriptor) -> Result<&ImageSummary> {
        let key = descriptor.digest;
        // Looked up twice: returning the first borrow on a hit would keep
        // `self` borrowed for the insertions below.
        let known = |map: &HashMap<Digest, ImageSummary>| map.contains_key(&key);
        if !known(&self.cached) && !known(&self.computed) && !known(&self.inexact) {
            let (summary, exact) = store.summarise(descriptor)?;
            match exact {
                true => self.computed.insert(key, summary),
                false => self.inexact.insert(key, summary),
            };
        }
        let found = self.cached.get(&key);
        let found = found.or_else(|| self.computed.get(&key));
        Ok(found
            .or_else(|| self.inexact.get(&key))
            .expect("summarised above"))
    }

    /// Writes the file back if this listing computed a summary, keeping
    /// only the manifests the image index names now. A cache: callers may
    /// ignore a failure (a read-only store, a full disk).
    pub fn save(self, store: &Store) -> Result<()> {
        if self.computed.is_empty() {
            return Ok(());
        }
        let db = store.read_images()?;
        let live: BTreeSet<Digest> = db
            .images
            .values()
            .chain(db.untagged.values())
            .map(|d| d.digest)
            .collect();
        let mut images = self.cached;
        images.extend(self.computed);
        images.retain(|digest, _| live.contains(digest));
        let file = SummaryFile {
            version: VERSION,
            host: self.host,
            images,
        };
        let bytes = serde_json::to_vec(&file).map_err(|source| crate::Error::Json {
            path: store.db_dir().join(FILE),
            source,
        })?;
        write_atomic(&store.db_dir(), FILE, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::synthetic::store_of;

    fn manifests(store: &Store) -> Vec<Descriptor> {
        let list = store.image_list().unwrap();
        let tagged = list.tagged.into_iter().map(|(_, d)| d);
        tagged
            .chain(list.untagged.into_iter().map(|(_, d)| d))
            .collect()
    }

    /// A summary says what the manifest and config say; once saved, a
    /// listing reads no manifest (the blobs are moved away here), and the
    /// file keeps only the images the index still names.
    #[test]
    fn summaries_match_the_documents_and_spare_the_reads() {
        let (_dir, store) = store_of(3, 2);
        let mut summaries = store.image_summaries();
        for desc in manifests(&store) {
            let image = store.read_image(&desc).unwrap();
            let summary = summaries.get(&store, &desc).unwrap();
            assert_eq!(summary.id, image.id());
            assert_eq!(summary.created, image.config.created);
            assert_eq!(summary.size(), store.image_size(&image));
        }
        summaries.save(&store).unwrap();
        let aside = store.root().join("aside");
        fs::rename(store.blobs_dir(), &aside).unwrap();
        let mut cached = store.image_summaries();
        for desc in manifests(&store) {
            cached.get(&store, &desc).unwrap();
        }
        fs::rename(&aside, store.blobs_dir()).unwrap();

        // Untagged: the next save (of a listing that computed something)
        // drops its summary.
        let (reference, _) = store.image_list().unwrap().tagged.remove(0);
        store.untag(&reference).unwrap();
        assert_eq!(store.image_summaries().cached.len(), 5);
        let mut summaries = store.image_summaries();
        summaries.cached.clear();
        for desc in manifests(&store) {
            summaries.get(&store, &desc).unwrap();
        }
        summaries.save(&store).unwrap();
        assert_eq!(store.image_summaries().cached.len(), 4);
    }

    #[test]
    fn a_corrupt_file_is_an_empty_cache() {
        let (_dir, store) = store_of(2, 0);
        fs::write(store.db_dir().join(FILE), b"{not json").unwrap();
        let mut summaries = store.image_summaries();
        assert!(summaries.cached.is_empty());
        for desc in manifests(&store) {
            summaries.get(&store, &desc).unwrap();
        }
        summaries.save(&store).unwrap();
        assert_eq!(store.image_summaries().cached.len(), 2);
    }
}
