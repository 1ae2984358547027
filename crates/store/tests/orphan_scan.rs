//! The leftover scan every build start runs (`Store::clean_orphans`):
//! among many snapshots it finds exactly the interrupted extractions and
//! temporary index files, and clears only those.

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
        store.snapshots_dir().join(".unpack-1-2-3"),
        store.snapshots_dir().join(".unpack-dest-4"),
        store.db_dir().join(".images.json.tmp-5"),
        store.root().join(".index.json.tmp-6"),
        store.root().join(".oci-layout.tmp-7"),
    ]
    .into();
    for path in &leftovers {
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

    let found: BTreeSet<PathBuf> = store.orphans().unwrap().into_iter().collect();
    assert_eq!(found, leftovers);
    let report = store.clean_orphans().unwrap();
    let removed: BTreeSet<PathBuf> = report.removed.into_iter().collect();
    assert_eq!(removed, leftovers);
    assert!(leftovers.iter().all(|p| !p.exists()));
    assert!(kept.iter().chain(&snapshots).all(|p| p.exists()));
    assert!(store.orphans().unwrap().is_empty());
}
