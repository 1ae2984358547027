//! The confined layer extractor: any stream (tar, gzip, zstd, xz, bzip2)
//! unpacks inside the destination or fails; never a panic, never a file
//! outside it. The extractor's dry run (what `rbk load` runs instead of
//! unpacking) must agree with it wherever it decides: it refuses with the
//! extractor's own error, or the extractor unpacks.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rbk_store::{check_layer_stream, unpack_layer, UnpackOptions, UnpackVerdict};
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

static AS_LOAD_RUNS: OnceLock<bool> = OnceLock::new();

fn root_in_initial_namespace() -> bool {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    root && map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("rootfs");
    let options = UnpackOptions::default().max_bytes(64 << 20);
    let unpacked = unpack_layer(data, &dest, &options);
    // Nothing but the destination (or nothing at all) may be left.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        assert_eq!(entry.unwrap().file_name(), "rootfs", "extraction left a stray");
    }
    // The dry run models root in the initial user namespace, as load runs.
    if !*AS_LOAD_RUNS.get_or_init(root_in_initial_namespace) {
        return;
    }
    match check_layer_stream(data, &options) {
        Ok(UnpackVerdict::Unpacks) => {
            assert!(unpacked.is_ok(), "the dry run passed what fails: {unpacked:?}")
        }
        Ok(UnpackVerdict::Undecided) => {}
        Err(refused) => match &unpacked {
            Err(e) => assert_eq!(refused.to_string(), e.to_string()),
            Ok(_) => panic!("the dry run refused what unpacks: {refused}"),
        },
    }
});
