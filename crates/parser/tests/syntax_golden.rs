//! Golden tests for the Dockerfile syntax layer, after BuildKit's parser
//! suite: `testdata/<case>/Dockerfile` must dump as `ast.txt`, and
//! `testdata-negative/<case>/Dockerfile` must fail (in `parse` or
//! `Ast::validate`) with the message in `error.txt`. `UPDATE_GOLDEN=1`
//! rewrites the expected files.

use std::fs;
use std::path::{Path, PathBuf};

fn cases(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir);
    let mut out: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    out.sort();
    out
}

fn check(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(path, actual).expect("write golden");
        return;
    }
    let expected = fs::read_to_string(path).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{}\n--- expected\n{expected}--- actual\n{actual}",
            path.display()
        ));
    }
}

#[test]
fn positive_cases_dump_as_expected() {
    let mut failures = Vec::new();
    let all = cases("testdata");
    assert!(all.len() >= 25, "only {} positive cases", all.len());
    for dir in all {
        let text = fs::read_to_string(dir.join("Dockerfile")).expect("read Dockerfile");
        let actual = match rbk_parser::syntax::parse(&text, "Dockerfile") {
            Ok(ast) => ast.root.dump() + "\n",
            Err(e) => format!("ERROR: {e}\n"),
        };
        check(&dir.join("ast.txt"), &actual, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn negative_cases_fail_as_expected() {
    let mut failures = Vec::new();
    let all = cases("testdata-negative");
    assert!(all.len() >= 8, "only {} negative cases", all.len());
    for dir in all {
        let text = fs::read_to_string(dir.join("Dockerfile")).expect("read Dockerfile");
        let result = rbk_parser::syntax::parse(&text, "Dockerfile")
            .and_then(|ast| ast.validate("Dockerfile").map(|()| ast));
        let actual = match result {
            Ok(ast) => format!("UNEXPECTED SUCCESS: {}\n", ast.root.dump()),
            Err(e) => format!("{e}\n"),
        };
        check(&dir.join("error.txt"), &actual, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
