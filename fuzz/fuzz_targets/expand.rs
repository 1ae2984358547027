//! Word expansion (`$VAR`, `${VAR:-…}`, quotes, escapes) with both escape
//! characters.
#![no_main]
use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(word) = std::str::from_utf8(data) else {
        return;
    };
    let env: BTreeMap<String, String> = [("A", "a b"), ("EMPTY", ""), ("P", "/usr/*")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for escape in ['\\', '`'] {
        let lexer = rbk_parser::Lexer::new(escape);
        let _ = lexer.process_word(word, &env);
        let _ = lexer.process_words(word, &env);
    }
});
