//! `.dockerignore` parsing and matching.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ignore) = rbk_parser::Dockerignore::parse(text, ".dockerignore") {
        for path in ["a", "a/b/c.txt", ".git/config", "node_modules/x/y", "Dockerfile"] {
            let _ = ignore.is_excluded(path);
            let _ = ignore.may_reinclude_under(path);
        }
    }
});
