//! The leftover scans (`Store::clean_orphans`, and the one every build
//! start runs): among many snapshots they find exactly the interrupted
//! extractions and temporary index files, and clear only those; the build
//! start leaves older versions' extractions in `snapshots/` to prune.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use rbk_store::{Digest, Store};

#[test]
fn the_scan_finds_exactly_the_leftovers_among_many_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("root")).unwrap();
    let mut snapshots = Vec::new();
    for n in 0..200u32 {
        let path = store.snapshot_path(&Digest::sha256_of(&n.to_le_bytes()));
        fs::create_dir_all(&path).unwrap();
        snapshots.push(path);
    }
    let leftovers: BTreeSet<PathBuf> = [
        store.root().join("tmp/.unpack-1-2-3"),
        store.root().join("tmp/.unpack-dest-4"),
        store.db_dir().join(".images.json.tmp-5"),
        store.root().join(".index.json.tmp-6"),
        store.root().join(".oci-layout.tmp-7"),
    ]
    .into();
    // Where versions before extractions moved to tmp/ extracted.
    let old_extractions: BTreeSet<PathBuf> = [
        store.snapshots_dir().join(".unpack-11-12-13"),
        store.snapshots_dir().join(".unpack-dest-14"),
    ]
    .into();
    for path in leftovers.iter().chain(&old_extractions) {
        fs::create_dir_all(path).unwrap();
    }
    // Near misses stay: not the prefix, or the prefix in another directory.
    let kept = [
        store.snapshots_dir().join("unpack-8"),
        store.snapshots_dir().join(".unpack"),
        store.db_dir().join(".index.json.tmp-9"),
        store.root().join(".images.json.tmp-10"),
    ];
    for path in &kept {
        fs::write(path, b"x").unwrap();
    }
    let all: BTreeSet<PathBuf> = leftovers.union(&old_extractions).cloned().collect();

    // `system verify` lists all of them.
    let found: BTreeSet<PathBuf> = store.orphans().unwrap().into_iter().collect();
    assert_eq!(found, all);
    // A build's start clears all but the old extractions, without
    // listing snapshots/.
    let lock = store.try_gc_lock().unwrap().expect("no other process");
    let report = store.clean_orphans_holding(&lock).unwrap();
    drop(lock);
    let removed: BTreeSet<PathBuf> = report.removed.into_iter().collect();
    assert_eq!(removed, leftovers);
    assert!(leftovers.iter().all(|p| !p.exists()));
    assert!(old_extractions.iter().all(|p| p.exists()));
    // Prune's scan clears those too.
    let found: BTreeSet<PathBuf> = store.orphans().unwrap().into_iter().collect();
    assert_eq!(found, old_extractions);
    let report = store.clean_orphans().unwrap();
    let removed: BTreeSet<PathBuf> = report.removed.into_iter().collect();
    assert_eq!(removed, old_extractions);
    assert!(kept.iter().chain(&snapshots).all(|p| p.exists()));
    assert!(store.orphans().unwrap().is_empty());
}

#[test]
fn an_extraction_works_under_tmp_and_leaves_nothing_there() {
    use rbk_store::BlobWrite;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("root")).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(2);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, "a.txt", &b"a\n"[..]).unwrap();
    let bytes = tar.into_inner().unwrap();
    let blob = store.put_bytes(&bytes).unwrap();
    let layer = rbk_store::Descriptor {
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        digest: blob.digest,
        size: blob.size,
        annotations: Default::default(),
    };
    let path = store.ensure_snapshot(&layer, &blob.digest).unwrap();
    assert_eq!(fs::read(path.join("a.txt")).unwrap(), b"a\n");
    let names = |d: PathBuf| -> Vec<String> {
        fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names(store.snapshots_dir()),
        vec![blob.digest.hex().to_string()]
    );
    assert_eq!(names(store.root().join("tmp")), Vec::<String>::new());
    // The unpack's per-layer lock file went with the lock.
    assert_eq!(names(store.ingest_dir()), Vec::<String>::new());
}
