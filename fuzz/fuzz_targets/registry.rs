//! Registry response parsing: `WWW-Authenticate` challenges, token and
//! error bodies, `Content-Range`, manifests and indexes as a registry
//! serves them (with platform selection) and image configs checked against
//! the platform.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rbk_registry::fuzzing::responses(data);
});
