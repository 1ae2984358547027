//! Disk usage by image and by build-cache record (`rbk system df`).
//!
//! Sizes are blob bytes on disk. A blob used by several images is counted
//! once in every total; per image, `shared` is the part of its size that
//! another image also uses and `unique` the rest, so the sum of the unique
//! sizes plus the shared bytes is what the images take on disk. Snapshots
//! (unpacked layers) are a cache of the blobs and are not counted. A
//! packed blob (a built layer kept only as its snapshot, see `packed.rs`)
//! counts with its tar's size: that is its snapshot's content, on disk once.

use std::collections::{BTreeMap, BTreeSet};

use crate::{BlobAdmin, Descriptor, Digest, Reference, Result, Store};

/// One image (one image id, whatever its number of tags).
#[derive(Debug, Clone)]
pub struct ImageUsage {
    /// The image id (config digest).
    pub id: Digest,
    /// Every reference tagged to it.
    pub references: Vec<Reference>,
    /// The manifest of its first reference.
    pub descriptor: Descriptor,
    /// Its config's `created`, if any.
    pub created: Option<String>,
    /// Bytes of its manifest, config and layer blobs (each blob once).
    pub size: u64,
    /// The part of `size` another image also uses.
    pub shared: u64,
    /// `size - shared`.
    pub unique: u64,
}

/// One build-cache record.
#[derive(Debug, Clone)]
pub struct CacheUsage {
    /// The cache key.
    pub key: Digest,
    /// The step it records.
    pub description: String,
    /// Seconds since the epoch of its last use.
    pub last_used: u64,
    /// Bytes of its layer blobs.
    pub size: u64,
    /// Whether every one of its blobs also belongs to a tagged image.
    pub shared: bool,
}

/// The store's disk usage.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Images, sorted by first reference.
    pub images: Vec<ImageUsage>,
    /// Bytes of every blob an image uses, each counted once.
    pub images_size: u64,
    /// Cache records, sorted by key.
    pub cache: Vec<CacheUsage>,
    /// Bytes of blobs used by cache records and by no image.
    pub cache_only_size: u64,
    /// Bytes of blobs nothing references (what GC would sweep).
    pub unreferenced_size: u64,
}

impl Store {
    /// Measures the store: per image, per cache record, and in total.
    pub fn usage(&self) -> Result<Usage> {
        let mut sizes = BTreeMap::new();
        self.walk(&mut |info| {
            sizes.insert(info.digest, info.size);
            Ok(())
        })?;
        let size_of = |set: &BTreeSet<Digest>| set.iter().filter_map(|d| sizes.get(d)).sum::<u64>();
        let images = self.image_blob_sets()?;
        let mut users: BTreeMap<Digest, usize> = BTreeMap::new();
        for (_, blobs) in images.values() {
            for d in blobs {
                *users.entry(*d).or_default() += 1;
            }
        }
        let mut usage = Usage::default();
        let mut all_image_blobs = BTreeSet::new();
        for (mut image, blobs) in images.into_values() {
            let shared: BTreeSet<Digest> = blobs.iter().filter(|d| users[d] > 1).copied().collect();
            image.size = size_of(&blobs);
            image.shared = size_of(&shared);
            image.unique = image.size - image.shared;
            all_image_blobs.extend(blobs);
            usage.images.push(image);
        }
        usage.images.sort_by(|a, b| a.references.cmp(&b.references));
        usage.images_size = size_of(&all_image_blobs);
        let mut cache_blobs = BTreeSet::new();
        for (key, record) in self.cache_records()? {
            let blobs: BTreeSet<Digest> = record.layers.iter().map(|l| l.blob.digest).collect();
            usage.cache.push(CacheUsage {
                key,
                description: record.description,
                last_used: record.last_used,
                size: size_of(&blobs),
                shared: blobs.is_subset(&all_image_blobs),
            });
            cache_blobs.extend(blobs);
        }
        usage.cache_only_size =
            size_of(&cache_blobs.difference(&all_image_blobs).copied().collect());
        usage.unreferenced_size = sizes
            .iter()
            .filter(|(d, _)| !all_image_blobs.contains(d) && !cache_blobs.contains(d))
            .map(|(_, s)| s)
            .sum();
        Ok(usage)
    }

    /// Per image id: the image (sizes not yet filled) and its blob set.
    fn image_blob_sets(&self) -> Result<BTreeMap<Digest, (ImageUsage, BTreeSet<Digest>)>> {
        let mut out: BTreeMap<Digest, (ImageUsage, BTreeSet<Digest>)> = BTreeMap::new();
        for (reference, desc) in self.images()? {
            let Ok(image) = self.read_image(&desc) else {
                continue; // damaged: `system verify` reports it
            };
            let id = image.id();
            let entry = out.entry(id).or_insert_with(|| {
                let usage = ImageUsage {
                    id,
                    references: Vec::new(),
                    descriptor: desc.clone(),
                    created: image.config.created.clone(),
                    size: 0,
                    shared: 0,
                    unique: 0,
                };
                (usage, BTreeSet::new())
            });
            entry.0.references.push(reference);
            entry.1.insert(desc.digest);
            entry.1.insert(id);
            entry
                .1
                .extend(image.manifest.layers.iter().map(|l| l.digest));
        }
        Ok(out)
    }
}
