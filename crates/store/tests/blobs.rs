//! The on-disk store against the blob conformance suite, plus what only the
//! on-disk store can show: files under ingest/ and blobs/, modes, processes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rbk_store::{BlobRead, BlobWrite, Digest, Error, MemStore, Store};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("root")).unwrap();
    (dir, store)
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn fs_store_passes_the_conformance_suite() {
    let dirs = std::sync::Mutex::new(Vec::new());
    rbk_store::testsuite::run(|| {
        let (dir, store) = store();
        dirs.lock().unwrap().push(dir);
        store
    });
}

#[test]
fn mem_store_passes_the_conformance_suite() {
    rbk_store::testsuite::run(MemStore::new);
}

#[test]
fn layout_is_an_oci_layout_with_private_root() {
    let (dir, store) = store();
    let root = dir.path().join("root");
    assert_eq!(
        fs::metadata(&root).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        fs::read_to_string(root.join("oci-layout")).unwrap(),
        r#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    for d in ["blobs/sha256", "ingest", "snapshots", "trash", "db"] {
        assert!(root.join(d).is_dir(), "{d} missing");
    }
    assert_eq!(store.root(), root);
}

#[test]
fn open_fixes_a_group_or_world_accessible_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    Store::open(&root).unwrap();
    assert_eq!(
        fs::metadata(&root).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn open_refuses_a_root_owned_by_another_user() {
    assert!(
        rustix_is_root(),
        "this test needs root (chown); run the suite as root"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(12345), Some(12345)).unwrap();
    let err = Store::open(&root).unwrap_err();
    assert!(
        matches!(err, Error::ForeignOwner { owner: 12345, .. }),
        "got {err:?}"
    );
}

fn rustix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

#[test]
fn committed_blobs_are_read_only_and_ingest_is_clean() {
    let (dir, store) = store();
    let info = store.put_bytes(b"layer").unwrap();
    let path = store.blob_path(&info.digest);
    assert_eq!(
        path,
        dir.path().join("root/blobs/sha256").join(info.digest.hex())
    );
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o444
    );
    // A write that names its digest takes that digest's lock file, and
    // removes it again: ingest/ keeps nothing, lock files included.
    let named = b"named layer";
    let digest = Digest::sha256_of(named);
    store.put(&mut &named[..], Some((digest, None))).unwrap();
    let leftovers = files_in(&store.ingest_dir());
    assert!(leftovers.is_empty(), "ingest/ not clean: {leftovers:?}");
}

#[test]
fn wrong_digest_leaves_no_file_under_blobs_or_ingest() {
    let (_dir, store) = store();
    let claimed = Digest::sha256_of(b"expected");
    let err = store
        .put(&mut &b"tampered"[..], Some((claimed, None)))
        .unwrap_err();
    assert!(err.is_mismatch());
    assert!(files_in(&store.blobs_dir()).is_empty());
    let leftovers = files_in(&store.ingest_dir());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn verifying_reader_detects_a_corrupted_blob() {
    let (_dir, store) = store();
    let info = store.put_bytes(b"original content").unwrap();
    let path = store.blob_path(&info.digest);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&path, b"flipped content!").unwrap();
    let err = store.read_bounded(&info.digest, 1024).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "got {err:?}");
}

/// Two processes ingest the same blob: the child re-runs this test binary
/// with an env var, and both must end with one valid blob.
#[test]
fn concurrent_ingest_from_two_processes() {
    if let Ok(root) = std::env::var("RBK_STORE_CHILD_ROOT") {
        let store = Store::open(Path::new(&root)).unwrap();
        let data = vec![9u8; 8 << 20];
        store
            .put(
                &mut &data[..],
                Some((Digest::sha256_of(&data), Some(data.len() as u64))),
            )
            .unwrap();
        return;
    }
    let (dir, store) = store();
    let exe = std::env::current_exe().unwrap();
    let child = std::process::Command::new(exe)
        .args([
            "--exact",
            "concurrent_ingest_from_two_processes",
            "--nocapture",
        ])
        .env("RBK_STORE_CHILD_ROOT", dir.path().join("root"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let data = vec![9u8; 8 << 20];
    let d = Digest::sha256_of(&data);
    store
        .put(&mut &data[..], Some((d, Some(data.len() as u64))))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(files_in(&store.blobs_dir()), vec![d.hex()]);
    assert_eq!(store.read_bounded(&d, 16 << 20).unwrap().len(), data.len());
    // The per-digest lock both took is gone with the last holder.
    assert_eq!(files_in(&store.ingest_dir()), Vec::<String>::new());
}
