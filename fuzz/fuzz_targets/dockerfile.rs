//! The Dockerfile parser and lowering: any text either lowers or fails
//! with an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ast) = rbk_parser::parse(text, "Dockerfile") {
        let _ = rbk_parser::lower(&ast, &rbk_parser::LowerOptions::default());
    }
});
