//! `rbk load`: docker-archive and OCI-archive readers over a fresh store.
//! Any input loads or fails; a failure tags nothing.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let store = rbk_store::Store::open(&dir.path().join("store")).unwrap();
    if rbk_store::archive::load_archive(&store, data).is_err() {
        assert!(store.images().unwrap().is_empty(), "a failed load tagged");
    }
});
