//! Snapshots checked against their diff ids (issue 20, defect 3).
//!
//! A snapshot unpacked from a layer blob cannot be re-packed into the
//! blob's bytes (the tar came from another writer), so it is checked the
//! other way round: the blob is unpacked again into a scratch directory,
//! verified as it streams (blob digest and diff id, as every unpack is),
//! and both trees are packed with [`pack`](crate::pack) into a sha256 — a
//! pure function of names, types, modes, owners, mtimes, xattrs and
//! contents (directory mtimes aside: parents the archive does not list
//! get the time they were made). Different digests mean the snapshot no longer holds its layer:
//! a flipped bit on disk, a file changed by hand, or a snapshot made before
//! unpacking verified anything. With `repair` the fresh copy takes its
//! place (the damaged one goes to the trash); without, it is discarded.
//!
//! Packed snapshots (layers rbk built) are their blob's only copy; they are
//! checked by re-packing them against the packed record, in `verify_blobs`.

use std::fs;
use std::path::PathBuf;

use crate::fsutil::sync_dir;
use crate::pack::content_digest;
use crate::{unpack_layer, BlobInfo, BlobRead, Digest, Store, UnpackOptions};

/// What checking one snapshot found.
pub(super) enum Checked {
    /// The snapshot holds its layer.
    Sound,
    /// It did not; the fresh copy replaced it.
    Repaired,
    /// Its layer blob is not a file in the store: nothing to compare with.
    NoBlob,
}

impl Store {
    /// Unpacks `layer` beside the snapshot of `diff_id` and compares the
    /// two trees; on a mismatch, replaces the snapshot when `repair`. The
    /// inner `Err` is the `what` of the reported `Problem` (data for the
    /// report, not an error that stops it), hence a plain `String`; the
    /// outer one stops the verify: the disk is too full to unpack the
    /// layer, which says nothing about the snapshot.
    pub(super) fn check_snapshot(
        &self,
        diff_id: &Digest,
        layer: &BlobInfo,
        repair: bool,
    ) -> crate::Result<Result<Checked, String>> {
        if !self.blob_path(&layer.digest).is_file() {
            return Ok(Ok(Checked::NoBlob));
        }
        let snapshot = self.snapshot_path(diff_id);
        // Under tmp/: a killed verify leaves an orphan prune clears.
        let fresh = self.scratch_path(".unpack-verify-")?;
        let unpacked = self.open(&layer.digest).and_then(|r| {
            let options = UnpackOptions::default().verify(layer.digest, layer.size, *diff_id);
            unpack_layer(r, &fresh, &options)
        });
        let result = match unpacked {
            Err(e) if e.is_disk_full() => Err(crate::Error::NoSpaceToVerify {
                diff_id: *diff_id,
                layer: layer.digest,
                source: Box::new(e),
            }),
            Err(e) => Ok(Err(format!(
                "cannot be checked against its diff id: layer {} does not unpack: {e}",
                layer.digest
            ))),
            Ok(_) => Ok(self.compare_trees(diff_id, &snapshot, &fresh, repair)),
        };
        if fs::symlink_metadata(&fresh).is_ok() {
            // Deleted now when the check failed (the disk may be full, and
            // the trash would keep the space taken); otherwise deferred.
            let sound = matches!(result, Ok(Ok(_)));
            if !sound || self.move_to_trash(&fresh).is_err() {
                let _ = fs::remove_dir_all(&fresh);
            }
        }
        result
    }

    fn compare_trees(
        &self,
        diff_id: &Digest,
        snapshot: &PathBuf,
        fresh: &PathBuf,
        repair: bool,
    ) -> Result<Checked, String> {
        let want = content_digest(fresh)
            .map_err(|e| format!("the fresh unpack of its layer cannot be packed: {e}"))?;
        let got = content_digest(snapshot);
        if got.as_ref().is_ok_and(|d| *d == want) {
            return Ok(Checked::Sound);
        }
        let what = match got {
            Ok(d) => format!("its content packs to {d}, its layer's to {want}"),
            Err(e) => format!("it cannot be packed ({e})"),
        };
        if !repair {
            return Err(format!(
                "snapshot does not match its diff id {diff_id}: {what} \
                 (`rbk system verify --repair` unpacks it again)"
            ));
        }
        self.move_to_trash(snapshot)
            .and_then(|_| {
                fs::rename(fresh, snapshot).map_err(crate::Error::io("replacing", snapshot))
            })
            .and_then(|()| sync_dir(&self.snapshots_dir()))
            .map_err(|e| format!("snapshot does not match its diff id {diff_id} ({what}) and could not be replaced: {e}"))?;
        Ok(Checked::Repaired)
    }
}
