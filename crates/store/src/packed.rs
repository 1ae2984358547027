//! Packed blobs: layers rbk built, kept on disk only as their snapshot.
//!
//! # Why
//!
//! A layer rbk builds exists first as a directory (a `RUN`'s overlay upper
//! dir, or the tree a `COPY` wrote). Storing both its tar (the blob) and the
//! directory (the snapshot every later step mounts) would keep the content
//! twice. So [`Store::commit_packed`] streams the tar only into a sha256
//! hasher and a byte counter, commits the directory as the snapshot named by
//! that digest (the diff id), and writes a small record
//! `db/packed/<hex>.json` (`{"size": N, "source_date_epoch": …}`) saying:
//! *blob `sha256:<hex>`, an uncompressed OCI layer of N bytes, is packed from
//! `snapshots/<hex>/`*. The tar is a pure function of the tree (see
//! [`pack`](crate::pack)), so it can be produced again at any time.
//!
//! # What readers see
//!
//! Through [`BlobRead`](crate::BlobRead) a packed blob is an ordinary blob:
//! `info` and `exists` answer from the record, and `open` / `open_verified`
//! stream the re-packed tar, always behind a
//! [`VerifyingReader`](crate::VerifyingReader) — if the snapshot was changed
//! the read that reaches the end fails with a digest or size mismatch, as a
//! damaged blob file would (consumers must treat that error as the whole
//! blob failing, and they do: save, push and compression abort). A record
//! whose snapshot is gone is no blob at all (not found), and is an orphan
//! that GC clears. `walk` lists packed blobs with the files, so GC, `system
//! df` and `system verify` (which re-packs and re-hashes them) treat them
//! alike; GC keeps the snapshot of a live packed blob and removes the record
//! with the blob.
//!
//! # The cost, said plainly
//!
//! The store's OCI image layout (`blobs/sha256/`) has no file for a built
//! layer: `skopeo oci:<root>` or `umoci` pointed at the store directly see
//! such images as missing blobs. The files appear when the image leaves the
//! store — `rbk save`, `--output type=docker|oci`, push and compression all
//! read through `BlobRead` and so re-pack. Images that came in through `rbk
//! load`, `import` or a pull keep their blob files as before.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::blob::{BlobInfo, Ingestion};
use crate::fsutil::{read_small, write_atomic};
use crate::pack::{
    hash_layer_tar, hash_tracked, write_layer_tar, PackOptions, PackReader, Packed, Resume,
};
use crate::{BlobWrite, Digest, Error, Result, Store, VerifyingReader};

/// The record of one packed blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    size: u64,
    #[serde(flatten)]
    options: PackOptions,
}

impl Store {
    /// `<root>/db/packed`.
    fn packed_dir(&self) -> PathBuf {
        self.db_dir().join("packed")
    }

    fn packed_path(&self, digest: &Digest) -> PathBuf {
        self.packed_dir().join(format!("{}.json", digest.hex()))
    }

    /// When blob `digest` came into the store: the mtime of its file, or of
    /// its packed record (both are written once and never touched again).
    pub fn blob_created(&self, digest: &Digest) -> Option<std::time::SystemTime> {
        let file = std::fs::metadata(self.blob_path(digest));
        let meta = file.or_else(|_| std::fs::metadata(self.packed_path(digest)));
        meta.ok()?.modified().ok()
    }

    /// Turns the overlay-format directory `dir` (on the store's filesystem;
    /// consumed) into a layer kept as its snapshot only: hashes its tar,
    /// commits `dir` as the snapshot of that digest and records the blob as
    /// packed (see the module docs). Returns the blob, whose digest is also
    /// the layer's diff id. Identical content commits to one snapshot: a
    /// second commit of the same tree only discards its directory.
    ///
    /// When the snapshot of that digest already exists without a record
    /// (unpacked from an image that came in compressed), re-packing it is
    /// not guaranteed to give these bytes, so the tar of `dir` is stored as
    /// an ordinary blob file instead.
    pub fn commit_packed(&self, dir: &Path, options: &PackOptions) -> Result<BlobInfo> {
        let info = hash_layer_tar(dir, options)?;
        self.commit_hashed(dir, options, info)
    }

    /// [`Store::commit_packed`] as a tracked pack (`pack::hash_tracked`):
    /// also returns the tar's checkpoints, and given `resume` (the last
    /// pack of the same COPY, and the files linked from its snapshot) does
    /// not read or hash the prefix the two tars share. The checkpoints are
    /// left out when `dir` was discarded as a copy of an existing snapshot:
    /// they describe `dir`'s inodes, not that snapshot's.
    pub fn commit_packed_tracked(
        &self,
        dir: &Path,
        options: &PackOptions,
        resume: Option<Resume<'_>>,
    ) -> Result<Packed> {
        let mut packed = hash_tracked(dir, options, resume)?;
        let existed = self.has_snapshot(&packed.info.digest);
        self.commit_hashed(dir, options, packed.info)?;
        if existed {
            packed.checkpoints.clear();
        }
        Ok(packed)
    }

    /// The rest of [`Store::commit_packed`], once `dir`'s tar is hashed.
    fn commit_hashed(&self, dir: &Path, options: &PackOptions, info: BlobInfo) -> Result<BlobInfo> {
        let digest = info.digest;
        // The per-digest ingest lock: one writer of this blob at a time.
        let _lock = self.ingest_lock(&digest, "lock")?;
        let has_file = self.blob_path(&digest).is_file();
        let has_record = self.packed_path(&digest).is_file();
        if self.has_snapshot(&digest) && !has_file && !has_record {
            self.put_tar_file(dir, options, &info)?;
            self.commit_snapshot(dir, &digest)?;
            return Ok(info);
        }
        self.commit_snapshot(dir, &digest)?;
        if !has_file && !has_record {
            let record = Record {
                size: info.size,
                options: options.clone(),
            };
            let bytes = serde_json::to_vec(&record).map_err(|source| Error::Json {
                path: self.packed_path(&digest),
                source,
            })?;
            write_atomic(
                &self.packed_dir(),
                &format!("{}.json", digest.hex()),
                &bytes,
            )?;
        }
        Ok(info)
    }

    /// Writes the tar of `dir` as a blob file (the caller holds the lock).
    fn put_tar_file(&self, dir: &Path, options: &PackOptions, info: &BlobInfo) -> Result<()> {
        let mut ingest = match self.ingest(None)? {
            Ingestion::Write(w) => w,
            Ingestion::Exists(_) => return Ok(()),
        };
        write_layer_tar(dir, &mut ingest, options)?;
        ingest
            .flush()
            .map_err(Error::io("writing layer blob for", dir))?;
        ingest.commit(Some(info.digest), Some(info.size))?;
        Ok(())
    }

    /// Whether blob `digest` is packed from its snapshot (and that snapshot
    /// exists). A blob with a file of its own is not packed.
    pub fn is_packed(&self, digest: &Digest) -> bool {
        !self.blob_path(digest).is_file() && matches!(self.packed(digest), Ok(Some(_)))
    }

    /// The size and pack options of packed blob `digest`; `None` when there
    /// is no record or its snapshot is gone.
    fn packed(&self, digest: &Digest) -> Result<Option<(BlobInfo, PackOptions)>> {
        let path = self.packed_path(digest);
        let bytes = match read_small(&path, 4096) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        if !self.has_snapshot(digest) {
            return Ok(None);
        }
        let record: Record =
            serde_json::from_slice(&bytes).map_err(|source| Error::Json { path, source })?;
        let info = BlobInfo {
            digest: *digest,
            size: record.size,
        };
        Ok(Some((info, record.options)))
    }

    /// [`Store::packed`] as a blob's size, for `BlobRead::info`.
    pub(crate) fn packed_info(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        Ok(self.packed(digest)?.map(|p| p.0))
    }

    /// The re-packed, verified tar of packed blob `digest`.
    pub(crate) fn open_packed(
        &self,
        digest: &Digest,
    ) -> Result<Option<VerifyingReader<PackReader>>> {
        let Some((info, options)) = self.packed(digest)? else {
            return Ok(None);
        };
        let reader = PackReader::spawn(&self.snapshot_path(digest), &options);
        Ok(Some(VerifyingReader::new(reader, *digest, Some(info.size))))
    }

    /// Calls `f` for every packed blob whose snapshot exists and that has no
    /// blob file (those are listed as files).
    pub(crate) fn walk_packed(&self, f: &mut dyn FnMut(BlobInfo) -> Result<()>) -> Result<()> {
        for digest in self.packed_records()? {
            if self.blob_path(&digest).is_file() {
                continue;
            }
            if let Some(info) = self.packed_info(&digest)? {
                f(info)?;
            }
        }
        Ok(())
    }

    /// Re-packs packed blob `digest` and checks its digest and size (for
    /// `system verify`). A record without its snapshot is an orphan, not
    /// damage: `Ok`. `Err` is the `what` of the reported `Problem` (data
    /// for the report, not an error that stops it), hence a plain `String`.
    pub(crate) fn verify_packed(&self, digest: &Digest) -> std::result::Result<(), String> {
        let (info, options) = match self.packed(digest) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("packed blob record unreadable: {e}")),
        };
        let actual = hash_layer_tar(&self.snapshot_path(digest), &options)
            .map_err(|e| format!("snapshot cannot be packed: {e}"))?;
        if actual.digest != info.digest || actual.size != info.size {
            return Err(format!(
                "snapshot packs to {} ({} bytes), not to the packed blob {digest} ({} bytes)",
                actual.digest, actual.size, info.size
            ));
        }
        Ok(())
    }

    /// Digests of every record in `db/packed/`, with or without a snapshot.
    pub(crate) fn packed_records(&self) -> Result<Vec<Digest>> {
        let dir = self.packed_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("listing", &dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let name = entry.map_err(Error::io("listing", &dir))?.file_name();
            let digest = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok());
            out.extend(digest);
        }
        out.sort();
        Ok(out)
    }

    /// Records whose snapshot is gone (left by a crash or a removed
    /// snapshot): orphans for GC.
    pub(crate) fn stale_packed_records(&self) -> Result<Vec<PathBuf>> {
        let records = self.packed_records()?.into_iter();
        Ok(records
            .filter(|d| !self.has_snapshot(d))
            .map(|d| self.packed_path(&d))
            .collect())
    }

    /// Moves blob `digest` to the trash: its file and its packed record,
    /// whichever exist. The snapshot is GC's business.
    pub(crate) fn trash_blob(&self, digest: &Digest) -> Result<()> {
        self.trash_blob_as(digest, true)
    }

    /// [`Store::trash_blob`] for a caller that knows whether `digest` has a
    /// packed record (`packed`): without one, only the file is tried.
    pub(crate) fn trash_blob_as(&self, digest: &Digest, packed: bool) -> Result<()> {
        let record = packed.then(|| self.packed_path(digest));
        for path in std::iter::once(self.blob_path(digest)).chain(record) {
            match self.move_to_trash(&path) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Removes blob `digest` (file and record) for [`BlobAdmin::delete`];
    /// not found when it had neither.
    ///
    /// [`BlobAdmin::delete`]: crate::BlobAdmin::delete
    pub(crate) fn remove_packed_record(&self, digest: &Digest) -> Result<bool> {
        let path = self.packed_path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("removing", &path)(e)),
        }
    }
}
