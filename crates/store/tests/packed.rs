//! Packed blobs: layers kept as their snapshot only, read back by re-packing.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use rbk_store::pack::{write_layer_tar, PackOptions};
use rbk_store::{
    unpack_layer, BlobAdmin, BlobRead, BlobWrite, CacheRecord, Descriptor, Digest, Layer, Store,
    UnpackOptions,
};

fn store_in(tmp: &Path) -> Store {
    Store::open(&tmp.join("store")).unwrap()
}

/// A small tree in overlay format under `tmp/<name>` (on the store's
/// filesystem), with a hardlink, a symlink and a nested directory.
fn tree(tmp: &Path, name: &str, seed: u8) -> PathBuf {
    let dir = tmp.join(name);
    fs::create_dir_all(dir.join("app/sub")).unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8 ^ seed).collect();
    fs::write(dir.join("app/big"), &big).unwrap();
    fs::write(dir.join("app/sub/small"), b"hello").unwrap();
    fs::hard_link(dir.join("app/sub/small"), dir.join("app/linked")).unwrap();
    std::os::unix::fs::symlink("sub/small", dir.join("app/sym")).unwrap();
    // Every entry gets a fixed mtime (the symlink too): two trees made a
    // second apart must pack to the same bytes.
    for p in ["app/big", "app/sub/small", "app/sym", "app/sub", "app"] {
        let t = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: 1_600_000_000,
                tv_nsec: 0,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: 1_600_000_000,
                tv_nsec: 0,
            },
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            dir.join(p),
            &t,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
    dir
}

fn tar_of(dir: &Path, options: &PackOptions) -> Vec<u8> {
    let mut out = Vec::new();
    write_layer_tar(dir, &mut out, options).unwrap();
    out
}

fn read_all(store: &Store, digest: &Digest) -> rbk_store::Result<Vec<u8>> {
    store.read_bounded(digest, 1 << 30)
}

#[test]
fn a_packed_blob_reads_back_as_the_tar_that_was_hashed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let dir = tree(tmp.path(), "upper", 0);
    let options = PackOptions {
        source_date_epoch: Some(1_650_000_000),
    };
    let expected = tar_of(&dir, &options);
    let info = store.commit_packed(&dir, &options).unwrap();
    assert_eq!(info.digest, Digest::sha256_of(&expected));
    assert_eq!(info.size, expected.len() as u64);
    assert!(!dir.exists(), "the directory became the snapshot");
    assert!(store.has_snapshot(&info.digest));
    let ingest: Vec<_> = std::fs::read_dir(store.ingest_dir()).unwrap().collect();
    assert!(
        ingest.is_empty(),
        "the blob's lock file is left: {ingest:?}"
    );
    assert!(store.is_packed(&info.digest));
    assert!(
        !store.blob_path(&info.digest).exists(),
        "no tar file is written for a packed blob"
    );

    assert_eq!(store.info(&info.digest).unwrap(), info);
    assert!(store.exists(&info.digest).unwrap());
    assert_eq!(read_all(&store, &info.digest).unwrap(), expected);
    let mut plain = Vec::new();
    store
        .open(&info.digest)
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, expected);
    let mut walked = Vec::new();
    store
        .walk(&mut |b| {
            walked.push(b);
            Ok(())
        })
        .unwrap();
    assert_eq!(walked, vec![info]);
    // Ingesting the same bytes finds the blob present: nothing is written.
    store
        .put(&mut &expected[..], Some((info.digest, Some(info.size))))
        .unwrap();
    assert!(!store.blob_path(&info.digest).exists());
    let report = store.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.blobs, 1);
}

#[test]
fn identical_content_is_one_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let a = tree(tmp.path(), "a", 7);
    let b = tree(tmp.path(), "b", 7);
    let first = store.commit_packed(&a, &PackOptions::default()).unwrap();
    let second = store.commit_packed(&b, &PackOptions::default()).unwrap();
    assert_eq!(first, second);
    assert!(!b.exists(), "the second copy is dropped");
    assert_eq!(store.snapshots().unwrap(), vec![first.digest]);
}

#[test]
fn a_changed_snapshot_fails_reads_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let dir = tree(tmp.path(), "upper", 1);
    let info = store.commit_packed(&dir, &PackOptions::default()).unwrap();
    let snapshot = store.snapshot_path(&info.digest);
    // Same size, other bytes: only the digest can tell.
    let mut big = fs::read(snapshot.join("app/big")).unwrap();
    big[1234] ^= 0xff;
    fs::write(snapshot.join("app/big"), &big).unwrap();
    let err = read_all(&store, &info.digest).unwrap_err();
    assert!(err.is_mismatch(), "{err:?}");
    let mut out = Vec::new();
    let err = store
        .open(&info.digest)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    // A grown file changes the size.
    fs::write(snapshot.join("app/extra"), b"more").unwrap();
    let err = read_all(&store, &info.digest).unwrap_err();
    assert!(err.is_mismatch(), "{err:?}");
    let report = store.verify().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].path, snapshot);
}

fn layer(info: &rbk_store::BlobInfo) -> Layer {
    Layer {
        diff_id: info.digest,
        blob: Descriptor {
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            digest: info.digest,
            size: info.size,
            annotations: Default::default(),
        },
    }
}

#[test]
fn gc_keeps_live_packed_blobs_and_removes_dead_ones_with_their_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let kept = store
        .commit_packed(&tree(tmp.path(), "a", 2), &PackOptions::default())
        .unwrap();
    let dead = store
        .commit_packed(&tree(tmp.path(), "b", 3), &PackOptions::default())
        .unwrap();
    let key = Digest::sha256_of(b"key");
    store
        .cache_put(&key, &CacheRecord::new(vec![layer(&kept)], "COPY"))
        .unwrap();
    assert!(store.cache_get(&key).unwrap().is_some());
    let report = store.gc().unwrap();
    assert_eq!(report.blobs, vec![dead]);
    assert_eq!(report.snapshots.len(), 1);
    assert!(!store.exists(&dead.digest).unwrap());
    assert!(!store.has_snapshot(&dead.digest));
    assert!(!store.is_packed(&dead.digest));
    assert!(store.is_packed(&kept.digest));
    // No record is left behind for the dead blob: a later commit of the
    // same content starts clean.
    let records: Vec<_> = fs::read_dir(store.db_dir().join("packed"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(records, vec![format!("{}.json", kept.digest.hex())]);
    store.cache_remove(&key).unwrap();
    store.gc().unwrap();
    assert!(!store.exists(&kept.digest).unwrap());
    assert!(store.snapshots().unwrap().is_empty());
}

/// GC moves a dead blob's file and its packed record when it has both (a
/// built layer later loaded as a file): it lists the records once and
/// tries the record only for the blobs that have one.
#[test]
fn gc_removes_a_dead_blob_that_is_both_a_file_and_packed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let dead = store
        .commit_packed(&tree(tmp.path(), "c", 5), &PackOptions::default())
        .unwrap();
    let mut tar = Vec::new();
    store
        .open(&dead.digest)
        .unwrap()
        .read_to_end(&mut tar)
        .unwrap();
    fs::write(store.blob_path(&dead.digest), &tar).unwrap();
    let report = store.gc().unwrap();
    assert_eq!(report.blobs, vec![dead]);
    assert!(!store.blob_path(&dead.digest).exists());
    assert!(!store.is_packed(&dead.digest));
    assert!(!store.has_snapshot(&dead.digest));
    let records = fs::read_dir(store.db_dir().join("packed")).unwrap();
    assert_eq!(records.count(), 0);
}

#[test]
fn a_record_without_its_snapshot_is_no_blob_and_an_orphan() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let info = store
        .commit_packed(&tree(tmp.path(), "a", 4), &PackOptions::default())
        .unwrap();
    store
        .move_to_trash(&store.snapshot_path(&info.digest))
        .unwrap();
    assert!(store.info(&info.digest).unwrap_err().is_not_found());
    assert!(store.open(&info.digest).is_err());
    assert_eq!(store.orphans().unwrap().len(), 1, "{:?}", store.orphans());
    let report = store.clean_orphans().unwrap();
    let record = store
        .db_dir()
        .join(format!("packed/{}.json", info.digest.hex()));
    assert!(report.removed.contains(&record), "{:?}", report.removed);
    assert!(store.orphans().unwrap().is_empty());
}

#[test]
fn delete_removes_the_record() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let info = store
        .commit_packed(&tree(tmp.path(), "a", 5), &PackOptions::default())
        .unwrap();
    store.delete(&info.digest).unwrap();
    assert!(!store.exists(&info.digest).unwrap());
    assert!(store.delete(&info.digest).unwrap_err().is_not_found());
}

#[test]
fn a_snapshot_unpacked_from_an_archive_is_not_trusted_to_repack() {
    // The snapshot exists first (as if unpacked from a compressed image's
    // layer); a build then produces the same content. The blob is stored
    // as a file, not as a record pointing at a snapshot rbk did not pack.
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let dir = tree(tmp.path(), "a", 6);
    let bytes = tar_of(&dir, &PackOptions::default());
    let digest = Digest::sha256_of(&bytes);
    let unpacked = store.snapshots_dir().join(".unpack-test");
    unpack_layer(&bytes[..], &unpacked, &UnpackOptions::default()).unwrap();
    store.commit_snapshot(&unpacked, &digest).unwrap();
    let info = store.commit_packed(&dir, &PackOptions::default()).unwrap();
    assert_eq!(info.digest, digest);
    assert!(!store.is_packed(&digest));
    assert!(store.blob_path(&digest).is_file());
    assert_eq!(read_all(&store, &digest).unwrap(), bytes);
}
