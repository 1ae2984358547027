//! Image sizes and disk usage by image and by build-cache record (`rbk
//! images`, `rbk system df`).
//!
//! # Sizes
//!
//! An image's size is the sum of its layers' *uncompressed* sizes (the
//! length of each layer's tar, whose digest is the layer's diff id), as
//! Docker shows it: the same image id has the same size whether it was
//! built, loaded or pulled with gzip or zstd layers. A layer stored
//! uncompressed (every built layer, `rbk import`, docker-archive loads) has
//! its blob's size; for a compressed blob the size is measured once by
//! decompressing it and kept in `db/sizes/<diff id hex>` (an exact cache:
//! a diff id names one tar). The empty layer (a tar of nothing but its end
//! blocks, what a step that changed nothing commits) is 0 bytes: it holds
//! no file, and Docker, which counts the files a layer unpacks to, shows
//! `0B` for it.
//!
//! # Disk usage
//!
//! Layers are counted by diff id, each once in every total: per image,
//! `shared` is the part of its size that another image also uses and
//! `unique` the rest. Each build-cache record is charged with the layer its
//! step produced (its top layer); a record whose layer belongs to an image,
//! or was already charged to another record, is `shared`, and the cache
//! total is the sum of the records that are not — so the rows add up to the
//! total.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;

use crate::fsutil::{read_small, write_atomic};
use crate::image::{is_layer_media_type, Image, DOCKER_LAYER, EMPTY_LAYER_DIFF_ID, OCI_LAYER};
use crate::{BlobRead, Descriptor, Digest, Error, Reference, Result, Store};

/// One image (one image id, whatever its number of tags).
#[derive(Debug, Clone)]
pub struct ImageUsage {
    /// The image id (config digest).
    pub id: Digest,
    /// Every reference tagged to it (none for an untagged image).
    pub references: Vec<Reference>,
    /// The manifest of its first reference.
    pub descriptor: Descriptor,
    /// Its config's `created`, if any.
    pub created: Option<String>,
    /// The uncompressed size of its layers.
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
    /// The uncompressed size of the layer its step produced (0 if none).
    pub size: u64,
    /// Whether that layer also belongs to an image or another record.
    pub shared: bool,
}

/// The store's disk usage.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// Images, sorted by first reference (untagged ones first).
    pub images: Vec<ImageUsage>,
    /// Size of every layer an image uses, each counted once.
    pub images_size: u64,
    /// Cache records, sorted by key ([`Store::usage`] only; empty from
    /// [`Store::usage_summary`]).
    pub cache: Vec<CacheUsage>,
    /// How many cache records there are.
    pub cache_count: usize,
    /// The sum of the sizes of the cache records that are not shared.
    pub cache_size: u64,
}

const MAX_SIZE_FILE: u64 = 64;

/// Diff id → uncompressed size.
type LayerSizes = BTreeMap<Digest, u64>;

/// Each layer of one image once: (diff id, uncompressed size), by diff id.
type DistinctLayers = Vec<(Digest, u64)>;

impl Store {
    /// The uncompressed size of `layer`, whose diff id is `diff_id` (see
    /// the module docs): the blob's size when it is an uncompressed tar,
    /// else measured once and remembered.
    pub fn layer_size(&self, layer: &Descriptor, diff_id: &Digest) -> Result<u64> {
        // Compared as digests: `system df` asks this for every cache
        // record's layer, and formatting each one allocated.
        if EMPTY_LAYER_DIFF_ID
            .parse::<Digest>()
            .is_ok_and(|empty| empty == *diff_id)
        {
            return Ok(0);
        }
        let uncompressed = layer.digest == *diff_id
            || layer.media_type == OCI_LAYER
            || layer.media_type == DOCKER_LAYER
            || !is_layer_media_type(&layer.media_type);
        if uncompressed {
            return Ok(layer.size);
        }
        let dir = self.db_dir().join("sizes");
        let path = dir.join(diff_id.hex());
        if let Ok(bytes) = read_small(&path, MAX_SIZE_FILE) {
            if let Some(size) = std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                return Ok(size);
            }
        }
        let reader = self.open(&layer.digest)?;
        let io_err = |source| Error::Io {
            op: "measuring the uncompressed size of layer",
            path: self.blob_path(&layer.digest),
            source,
        };
        let mut tar = crate::unpack::decompress(reader).map_err(io_err)?;
        let size = io::copy(&mut tar, &mut io::sink()).map_err(io_err)?;
        std::fs::create_dir_all(&dir).map_err(Error::io("creating directory", &dir))?;
        write_atomic(&dir, &diff_id.hex(), size.to_string().as_bytes())?;
        Ok(size)
    }

    /// The uncompressed size of `image`: the sum of its layers' sizes (a
    /// layer that cannot be measured counts with its blob size).
    pub fn image_size(&self, image: &Image) -> u64 {
        self.layer_sizes(image).values().sum()
    }

    /// Diff id → uncompressed size, for each layer of `image`.
    fn layer_sizes(&self, image: &Image) -> BTreeMap<Digest, u64> {
        let layers = image.manifest.layers.iter();
        layers
            .zip(&image.config.rootfs.diff_ids)
            .map(|(l, d)| (*d, self.layer_size(l, d).unwrap_or(l.size)))
            .collect()
    }

    /// Measures the store: per image, per cache record, and in total.
    pub fn usage(&self) -> Result<Usage> {
        let (mut usage, all_layers) = self.image_usage()?;
        let mut charged = BTreeSet::new();
        for row in self.cache_rows()? {
            let top = row.top.as_ref();
            let size = top.map_or(0, |l| {
                self.layer_size(&l.blob, &l.diff_id).unwrap_or(l.blob.size)
            });
            let shared = top
                .is_some_and(|l| all_layers.contains_key(&l.diff_id) || !charged.insert(l.diff_id));
            if !shared {
                usage.cache_size += size;
            }
            usage.cache.push(CacheUsage {
                key: row.key,
                description: row.description,
                last_used: row.last_used,
                size,
                shared,
            });
        }
        usage.cache_count = usage.cache.len();
        Ok(usage)
    }

    /// [`Store::usage`] without the per-record rows: the cache's count and
    /// size come from the totals the index keeps, less the images' layers,
    /// so this reads neither records nor the list of top layers (`system
    /// df` without `-v`).
    pub fn usage_summary(&self) -> Result<Usage> {
        let (mut usage, all_layers) = self.image_usage()?;
        let totals = self.cache_totals(&all_layers)?;
        usage.cache_count = totals.count;
        usage.cache_size = totals.plain_bytes
            + totals
                .compressed
                .iter()
                .map(|l| self.layer_size(&l.blob, &l.diff_id).unwrap_or(l.blob.size))
                .sum::<u64>();
        Ok(usage)
    }

    /// The images' part of [`Usage`], and every image layer's size.
    fn image_usage(&self) -> Result<(Usage, LayerSizes)> {
        let images = self.image_layer_sets()?;
        // Every layer with its size and how many images use it.
        let mut all: HashMap<Digest, (u64, usize)> = HashMap::new();
        for (_, layers) in images.values() {
            for (d, size) in layers {
                all.entry(*d).or_insert((*size, 0)).1 += 1;
            }
        }
        let mut usage = Usage::default();
        let mut unsorted = Vec::with_capacity(images.len());
        for (mut image, layers) in images.into_values() {
            image.size = layers.iter().map(|(_, s)| s).sum();
            image.shared = layers
                .iter()
                .filter(|(d, _)| all[d].1 > 1)
                .map(|(_, s)| s)
                .sum();
            image.unique = image.size - image.shared;
            unsorted.push(Some(image));
        }
        let all_layers: LayerSizes = all.into_iter().map(|(d, (size, _))| (d, size)).collect();
        // Sorted by position (stable, as sorting the rows was): a merge
        // sort of the rows themselves moved 10,000 rows of ~200 bytes
        // through every pass.
        let mut order: Vec<usize> = (0..unsorted.len()).collect();
        order.sort_by(|&a, &b| {
            let refs = |i: usize| unsorted[i].as_ref().map(|image| &image.references);
            refs(a).cmp(&refs(b))
        });
        usage.images = order
            .into_iter()
            .filter_map(|i| unsorted[i].take())
            .collect();
        usage.images_size = all_layers.values().sum();
        Ok((usage, all_layers))
    }

    /// Per image id (tagged or untagged): the image (sizes not yet filled)
    /// and its layers' sizes by diff id.
    fn image_layer_sets(&self) -> Result<BTreeMap<Digest, (ImageUsage, DistinctLayers)>> {
        let mut entries: Vec<(Option<Reference>, &Descriptor)> = Vec::new();
        let (db, mut summaries) = self.image_summaries_beside(|| self.read_images());
        let db = db?;
        for (name, desc) in &db.images {
            entries.push((Some(name.parse()?), desc));
        }
        entries.extend(db.untagged.values().map(|d| (None, d)));
        let mut out: BTreeMap<Digest, (ImageUsage, DistinctLayers)> = BTreeMap::new();
        for (reference, desc) in entries {
            let Ok(summary) = summaries.get(self, desc) else {
                continue; // damaged: `system verify` reports it
            };
            let entry = out.entry(summary.id).or_insert_with(|| {
                let usage = ImageUsage {
                    id: summary.id,
                    references: Vec::new(),
                    descriptor: desc.clone(),
                    created: summary.created.clone(),
                    size: 0,
                    shared: 0,
                    unique: 0,
                };
                (usage, summary.distinct_layers())
            });
            entry.0.references.extend(reference);
        }
        // A cache: failing to write it back changes no figure.
        let _ = summaries.save(self);
        Ok(out)
    }
}
