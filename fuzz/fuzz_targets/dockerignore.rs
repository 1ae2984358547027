//! `.dockerignore` parsing and matching: never a panic, and a path written
//! unclean (`./a//b/`) has the verdict of its clean form.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ignore) = rbk_parser::Dockerignore::parse(text, ".dockerignore") {
        for path in ["a", "a/b/c.txt", ".git/config", "node_modules/x/y", "Dockerfile"] {
            let excluded = ignore.is_excluded(path);
            for unclean in [format!("./{path}"), format!("{path}/"), path.replace('/', "//")] {
                assert_eq!(ignore.is_excluded(&unclean), excluded, "{unclean}");
            }
            let _ = ignore.may_reinclude_under(path);
        }
    }
});
