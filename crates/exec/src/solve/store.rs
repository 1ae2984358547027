//! [`SolveStore`]: what the solver asks of a store, and nothing more.
//!
//! # Vocabulary and lifecycle
//!
//! The solver reads and writes four kinds of things:
//!
//! - *blobs* by digest, through the store crate's [`BlobRead`],
//!   [`BlobWrite`] and [`BlobAdmin`] (supertraits: layers fetched from a
//!   `--cache-from` source are ingested, verified, and dropped again when
//!   their diff id is wrong);
//! - *snapshots*, the unpacked layers, as directories named by diff id: a
//!   step writes into a fresh [`WorkDir`], and its upper dir becomes a
//!   committed snapshot by [`commit_packed`](SolveStore::commit_packed)
//!   (which also makes the layer's blob) or
//!   [`commit_snapshot`](SolveStore::commit_snapshot); a layer that came in
//!   as a blob is unpacked on first use by
//!   [`ensure_snapshot`](SolveStore::ensure_snapshot);
//! - the *build cache index*, cache key → [`CacheRecord`];
//! - *images* a build starts from ([`image_layers`](SolveStore::image_layers)).
//!
//! Plus a directory of its own ([`root`](SolveStore::root)) for what it keeps
//! between builds: the init layer, `RUN --mount=type=cache` directories,
//! the download and checkout caches of `ADD <url>` and the stat caches of
//! build contexts.
//!
//! [`Store`] is the implementation builds use. `testing::MemSolveStore`
//! (behind the `testing` feature) keeps blobs, records and images in
//! memory and only the directories in a temporary one, so the solver's
//! tests need neither root nor an on-disk store.
//!
//! ```no_run
//! use rbk_exec::{SolveOptions, SolveStore, Solver};
//! # fn demo(store: &rbk_store::Store, runtime: &dyn rbk_exec::Runtime) -> rbk_exec::Result<()> {
//! let store: &dyn SolveStore = store; // any implementation
//! let solver = Solver::new(store, runtime, SolveOptions::default())?;
//! # let _ = solver; Ok(()) }
//! ```

use std::path::{Path, PathBuf};

use rbk_graph::Platform;
use rbk_store::image::ImagePlatform;
use rbk_store::pack::{PackOptions, Packed, Resume};
use rbk_store::{
    BlobAdmin, BlobInfo, BlobRead, BlobWrite, CacheRecord, Descriptor, Digest, FailedStep, Layer,
    Reference, Store, WorkDir,
};

use crate::{Error, Result};

/// What the solver needs of a store (see the module docs). Methods named
/// like [`Store`]'s do what those do.
pub trait SolveStore: BlobRead + BlobWrite + BlobAdmin + Send + Sync {
    /// The directory the solver keeps its own files in, laid out as a
    /// store root (`init-layer/`, `cache-mounts/`, `remote/`, `db/`).
    fn root(&self) -> &Path;

    /// `<root>/db`: small records (stat caches, compressed forms of layers).
    fn db_dir(&self) -> PathBuf {
        self.root().join("db")
    }

    /// A fresh writable directory on the snapshots' filesystem.
    fn work_dir(&self) -> rbk_store::Result<WorkDir>;

    /// Makes the overlay-format directory `dir` (consumed) the snapshot of
    /// its own layer tar, and that tar the layer's blob. Returns the blob,
    /// whose digest is also the diff id.
    fn commit_packed(&self, dir: &Path, options: &PackOptions) -> rbk_store::Result<BlobInfo>;

    /// [`commit_packed`](SolveStore::commit_packed) with the tar's
    /// checkpoints, resuming from the prefix it shares with the last pack
    /// of the same COPY (`rbk_store::pack::hash_tracked`). A store that does
    /// not track packs hashes all and returns no checkpoints.
    fn commit_packed_tracked(
        &self,
        dir: &Path,
        options: &PackOptions,
        resume: Option<Resume<'_>>,
    ) -> rbk_store::Result<Packed> {
        let _ = resume;
        Ok(Packed {
            info: self.commit_packed(dir, options)?,
            checkpoints: Vec::new(),
            resumed: 0,
        })
    }

    /// Makes `dir` (consumed) the snapshot of `diff_id`; an existing one is
    /// kept and `dir` discarded.
    fn commit_snapshot(&self, dir: &Path, diff_id: &Digest) -> rbk_store::Result<PathBuf>;

    /// Whether the snapshot of `diff_id` exists.
    fn has_snapshot(&self, diff_id: &Digest) -> bool;

    /// The snapshot of the layer whose blob is `blob`, unpacked (verified)
    /// from the blob if it is not yet.
    fn ensure_snapshot(&self, blob: &Descriptor, diff_id: &Digest) -> rbk_store::Result<PathBuf>;

    /// The build cache's record for `key`.
    fn cache_get(&self, key: &Digest) -> rbk_store::Result<Option<CacheRecord>>;

    /// Records `record` under `key`, replacing an earlier one.
    fn cache_put(&self, key: &Digest, record: &CacheRecord) -> rbk_store::Result<()>;

    /// Keeps a failed RUN step (`upper`, its changes, is consumed) for
    /// `rbk debug step`.
    fn keep_failed_step(&self, step: &FailedStep, upper: &Path) -> rbk_store::Result<()>;

    /// The layers of the image `reference` (a name, or an image id as
    /// docker takes), for `platform` when the name stands for several.
    /// [`Error::ImageNotFound`] when the store has no such image.
    fn image_layers(&self, reference: &str, platform: Option<&Platform>) -> Result<Vec<Layer>>;
}

impl SolveStore for Store {
    fn root(&self) -> &Path {
        Store::root(self)
    }

    fn db_dir(&self) -> PathBuf {
        Store::db_dir(self)
    }

    fn work_dir(&self) -> rbk_store::Result<WorkDir> {
        Store::work_dir(self)
    }

    fn commit_packed(&self, dir: &Path, options: &PackOptions) -> rbk_store::Result<BlobInfo> {
        Store::commit_packed(self, dir, options)
    }

    fn commit_packed_tracked(
        &self,
        dir: &Path,
        options: &PackOptions,
        resume: Option<Resume<'_>>,
    ) -> rbk_store::Result<Packed> {
        Store::commit_packed_tracked(self, dir, options, resume)
    }

    fn commit_snapshot(&self, dir: &Path, diff_id: &Digest) -> rbk_store::Result<PathBuf> {
        Store::commit_snapshot(self, dir, diff_id)
    }

    fn has_snapshot(&self, diff_id: &Digest) -> bool {
        Store::has_snapshot(self, diff_id)
    }

    fn ensure_snapshot(&self, blob: &Descriptor, diff_id: &Digest) -> rbk_store::Result<PathBuf> {
        Store::ensure_snapshot(self, blob, diff_id)
    }

    fn cache_get(&self, key: &Digest) -> rbk_store::Result<Option<CacheRecord>> {
        Store::cache_get(self, key)
    }

    fn cache_put(&self, key: &Digest, record: &CacheRecord) -> rbk_store::Result<()> {
        Store::cache_put(self, key, record)
    }

    fn keep_failed_step(&self, step: &FailedStep, upper: &Path) -> rbk_store::Result<()> {
        Store::keep_failed_step(self, step, upper)
    }

    fn image_layers(&self, reference: &str, platform: Option<&Platform>) -> Result<Vec<Layer>> {
        // A tag with one lookup, not `find_image`'s reading of every image.
        let image = match self.resolve_image(reference) {
            Ok((named, image)) => match (&named, platform) {
                (Some(named), Some(p)) => {
                    let wanted = ImagePlatform {
                        os: p.os.clone(),
                        architecture: p.architecture.clone(),
                        variant: p.variant.clone(),
                    };
                    self.tagged_image_for_platform(named, &wanted)?
                }
                _ => image,
            },
            Err(_) => {
                let parsed: Reference =
                    reference
                        .parse()
                        .map_err(|source| Error::InvalidReference {
                            reference: reference.to_string(),
                            source,
                        })?;
                self.image(&parsed).map_err(|e| {
                    if e.is_not_found() {
                        Error::ImageNotFound {
                            reference: parsed.familiar(),
                        }
                    } else {
                        Error::Store(e)
                    }
                })?
            }
        };
        let diff_ids = &image.config.rootfs.diff_ids;
        if diff_ids.len() != image.manifest.layers.len() {
            return Err(Error::CorruptImage {
                reference: reference.to_string(),
                reason: format!(
                    "{} layers but {} diff ids in its config",
                    image.manifest.layers.len(),
                    diff_ids.len()
                ),
            });
        }
        Ok(image.layers())
    }
}
