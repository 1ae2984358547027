//! Image documents as registries and archives hand them over: manifests,
//! indexes (with and without a declared media type) and configs.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rbk_store::image::{parse_config, parse_document};

fuzz_target!(|data: &[u8]| {
    for media in [
        None,
        Some("application/vnd.oci.image.manifest.v1+json"),
        Some("application/vnd.oci.image.index.v1+json"),
        Some("application/vnd.docker.distribution.manifest.v2+json"),
        Some("application/vnd.docker.distribution.manifest.list.v2+json"),
    ] {
        let _ = parse_document(data, media, "fuzz");
    }
    let _ = parse_config(data, "fuzz");
});
