//! GC, leases, orphans, image removal, usage and verify on a real store.

use std::fs;
use std::time::Duration;

use rbk_store::image::{ImageConfig, RootFs, OCI_LAYER};
use rbk_store::{BlobWrite, CacheRecord, Descriptor, Digest, Layer, Reference, Store};

fn layer(store: &Store, bytes: &[u8]) -> Descriptor {
    let info = store.put_bytes(bytes).unwrap();
    Descriptor {
        media_type: OCI_LAYER.into(),
        digest: info.digest,
        size: info.size,
        annotations: Default::default(),
    }
}

/// Tags an image over `layers` (stored uncompressed, so digest = diff id),
/// with a snapshot directory per layer.
fn image(store: &Store, name: &str, layers: &[Descriptor]) -> Descriptor {
    let config = ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: layers.iter().map(|l| l.digest).collect(),
        },
        extra: [("comment".to_string(), name.into())].into_iter().collect(),
        ..Default::default()
    };
    for l in layers {
        fs::create_dir_all(store.snapshot_path(&l.digest)).unwrap();
    }
    let desc = store.put_image(&config, layers.to_vec()).unwrap();
    store.tag(&name.parse().unwrap(), desc.clone()).unwrap();
    desc
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("root")).unwrap();
    (dir, store)
}

#[test]
fn gc_keeps_what_images_and_cache_records_use() {
    let (_dir, store) = open();
    let base = layer(&store, b"base layer");
    let top = layer(&store, b"top layer");
    image(&store, "a", &[base.clone(), top.clone()]);
    let cached = layer(&store, b"cached layer");
    fs::create_dir_all(store.snapshot_path(&cached.digest)).unwrap();
    let key = Digest::sha256_of(b"key");
    let record = CacheRecord::new(
        vec![Layer {
            diff_id: cached.digest,
            blob: cached.clone(),
        }],
        "RUN x",
    );
    store.cache_put(&key, &record).unwrap();
    let garbage = layer(&store, b"garbage");
    fs::create_dir_all(store.snapshot_path(&garbage.digest)).unwrap();
    fs::write(store.ingest_dir().join("tmp-partial"), b"half a blob").unwrap();
    fs::create_dir_all(store.root().join("tmp/w-dead/upper")).unwrap();

    let report = store.gc().unwrap();
    store.empty_trash().unwrap();
    let removed: Vec<Digest> = report.blobs.iter().map(|b| b.digest).collect();
    assert_eq!(removed, vec![garbage.digest]);
    assert_eq!(report.snapshots.len(), 1);
    let leftovers: Vec<_> = report
        .orphans
        .removed
        .iter()
        .filter(|p| p.extension().is_none_or(|e| e != "lock"))
        .collect();
    assert_eq!(leftovers.len(), 2, "{:?}", report.orphans);
    for kept in [&base, &top, &cached] {
        assert!(store.blob_path(&kept.digest).is_file());
        assert!(store.has_snapshot(&kept.digest));
    }
    assert!(!store.blob_path(&garbage.digest).exists());
    assert!(!store.has_snapshot(&garbage.digest));
    assert!(fs::read_dir(store.trash_dir()).unwrap().next().is_none());
    // Metadata only: the fixture's layers are not tars and its snapshots
    // are empty directories, so their contents cannot match.
    let quick = store_verify_quick(&store);
    assert!(quick.problems.is_empty(), "{:?}", quick.problems);
}

fn store_verify_quick(store: &Store) -> rbk_store::VerifyReport {
    store
        .verify_with(rbk_store::VerifyOptions {
            quick: true,
            repair: false,
        })
        .unwrap()
}

#[test]
fn removing_the_last_reference_deletes_exactly_the_unshared_blobs() {
    let (_dir, store) = open();
    let shared = layer(&store, b"shared");
    let own = layer(&store, b"own");
    image(&store, "a:1", &[shared.clone(), own.clone()]);
    store
        .tag(
            &"a:2".parse().unwrap(),
            store.resolve(&"a:1".parse().unwrap()).unwrap(),
        )
        .unwrap();
    image(&store, "b", std::slice::from_ref(&shared));

    let first = store.remove_reference(&"a:1".parse().unwrap()).unwrap();
    assert!(!first.deleted, "a:2 still names the image");
    assert!(first.blobs.is_empty());
    let last = store.remove_reference(&"a:2".parse().unwrap()).unwrap();
    assert!(last.deleted);
    let gone: Vec<Digest> = last.blobs.iter().map(|b| b.digest).collect();
    assert!(gone.contains(&own.digest) && !gone.contains(&shared.digest));
    assert_eq!(last.snapshots, vec![own.digest]);
    assert!(store.blob_path(&shared.digest).is_file());
    let missing: Reference = "a:1".parse().unwrap();
    assert!(store.remove_reference(&missing).unwrap_err().is_not_found());
}

#[test]
fn gc_waits_for_leases() {
    let (_dir, store) = open();
    let lease = store.lease().unwrap();
    let other = store.clone();
    let gc = std::thread::spawn(move || other.gc().map(|r| r.blobs.len()));
    std::thread::sleep(Duration::from_millis(200));
    // Written under the lease and not yet tagged: GC must not see it.
    let desc = image(&store, "late", &[layer(&store, b"late layer")]);
    drop(lease);
    assert_eq!(gc.join().unwrap().unwrap(), 0);
    assert!(store.blob_path(&desc.digest).is_file());
}

#[test]
fn orphans_skip_held_lock_files() {
    let (_dir, store) = open();
    let held = rbk_store::FileLock::exclusive(&store.ingest_dir().join("abc.lock")).unwrap();
    fs::write(store.ingest_dir().join("def.lock"), b"").unwrap();
    let report = store.clean_orphans().unwrap();
    assert_eq!(report.removed, vec![store.ingest_dir().join("def.lock")]);
    assert!(held.path().exists());
}

#[test]
fn usage_counts_shared_blobs_once() {
    let (_dir, store) = open();
    let shared = layer(&store, &[7u8; 1000]);
    image(&store, "a", &[shared.clone(), layer(&store, &[1u8; 100])]);
    image(&store, "b", &[shared.clone(), layer(&store, &[2u8; 10])]);
    let usage = store.usage().unwrap();
    assert_eq!(usage.images.len(), 2);
    let sum: u64 = usage.images.iter().map(|i| i.size).sum();
    assert_eq!(usage.images_size, sum - 1000);
    for i in &usage.images {
        assert_eq!(i.shared, 1000);
        assert_eq!(i.unique + i.shared, i.size);
    }
}

#[test]
fn verify_names_a_corrupt_blob_and_a_missing_layer() {
    let (_dir, store) = open();
    let l = layer(&store, b"content");
    image(&store, "a", std::slice::from_ref(&l));
    let path = store.blob_path(&l.digest);
    let mut perms = fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    fs::set_permissions(&path, perms).unwrap();
    fs::write(&path, b"Content").unwrap();
    let report = store.verify().unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].path, path);
    fs::remove_file(&path).unwrap();
    let report = store.verify().unwrap();
    assert!(
        report.problems[0].what.contains("layer missing"),
        "{:?}",
        report.problems
    );
}

/// Needs root (CI runs as root): a work dir with something mounted on it
/// belongs to a live step and must be skipped, not moved.
#[test]
fn orphans_skip_paths_that_are_still_mounted() {
    let (_dir, store) = open();
    let merged = store.root().join("tmp/w-live/merged");
    fs::create_dir_all(&merged).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&merged)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "mounting a tmpfs needs root; run this test as root"
    );
    let report = store.clean_orphans();
    let unmounted = std::process::Command::new("umount")
        .arg(&merged)
        .status()
        .unwrap();
    let report = report.unwrap();
    assert!(unmounted.success());
    assert_eq!(report.mounted, vec![store.root().join("tmp/w-live")]);
    assert!(merged.is_dir());
    assert!(report.removed.is_empty(), "{:?}", report.removed);
}
