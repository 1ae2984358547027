//! The entry point of `fuzz/`'s `registry` target (the `fuzzing` feature):
//! every parser of what a registry answers, fed the same bytes, with no
//! network. Any input must parse or fail, never panic.

use rbk_store::{Descriptor, Digest};
use reqwest::StatusCode;

use crate::platform::{select, Platform};

/// Runs `data` through the challenge, token, error-body, content-range,
/// document, index and config parsers a pull or push uses.
pub fn responses(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::http::parse_challenge(&text);
    let _ = crate::http::bearer(data);
    for status in [
        StatusCode::BAD_REQUEST,
        StatusCode::NOT_FOUND,
        StatusCode::BAD_GATEWAY,
    ] {
        let _ = crate::http::error_from_body(status, data, "fuzz".into());
    }
    let _ = crate::pull::content_range_start(&text);
    for claimed in [
        None,
        Some(rbk_store::image::OCI_INDEX),
        Some(rbk_store::image::DOCKER_MANIFEST),
    ] {
        let _ = crate::pull::document_type(data, claimed, "fuzz");
    }
    let desc = Descriptor {
        media_type: rbk_store::image::OCI_INDEX.to_string(),
        digest: Digest::sha256_of(data),
        size: data.len() as u64,
        annotations: Default::default(),
    };
    let platform = Platform::host();
    if let Ok(index) = crate::pull::parse_index(data, &desc) {
        let _ = select(&index, &platform, "fuzz");
    }
    let _ = platform.check_config(data, "fuzz");
}
