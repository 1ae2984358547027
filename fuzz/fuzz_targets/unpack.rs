//! The confined layer extractor: any stream (tar, gzip, zstd, xz, bzip2)
//! unpacks inside the destination or fails; never a panic, never a file
//! outside it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("rootfs");
    let options = rbk_store::UnpackOptions::default().max_bytes(64 << 20);
    let _ = rbk_store::unpack_layer(data, &dest, &options);
    // Nothing but the destination (or nothing at all) may be left.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        assert_eq!(entry.unwrap().file_name(), "rootfs", "extraction left a stray");
    }
});
