//! Golden tests for lowering: every `tests/testdata-lower/<case>/Dockerfile`
//! is lowered and its plan dump compared with `plan.txt`; every
//! `tests/testdata-lower-negative/<case>/Dockerfile` must fail with the text
//! in `error.txt`. `UPDATE_GOLDEN=1` rewrites the expected files.
//!
//! A case may have `options.txt` (lines `target=NAME`, `build-arg=K=V`,
//! `platform=os/arch`, `build-platform=os/arch`, `no-cache`) and
//! `images.json` (reference → image config) for the image resolver.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use rbk_graph::image::ImageConfig;
use rbk_graph::Platform;
use rbk_parser::{lower, parse, ImageResolver, LowerOptions, Plan};

struct MapResolver(BTreeMap<String, ImageConfig>);

impl ImageResolver for MapResolver {
    fn resolve(&self, reference: &str, _platform: &Platform) -> Result<ImageConfig, String> {
        match self.0.get(reference) {
            Some(c) => Ok(c.clone()),
            None if reference.contains("missing") => Err("not found".into()),
            None => Ok(ImageConfig::default()),
        }
    }
}

fn platform(s: &str) -> Platform {
    let mut parts = s.split('/');
    Platform {
        os: parts.next().unwrap_or_default().into(),
        architecture: parts.next().unwrap_or_default().into(),
        variant: parts.next().unwrap_or_default().into(),
    }
}

fn run_case(dir: &Path) -> Result<Plan, rbk_parser::Error> {
    let text = fs::read_to_string(dir.join("Dockerfile")).unwrap();
    let images: BTreeMap<String, ImageConfig> = fs::read_to_string(dir.join("images.json"))
        .map(|s| serde_json::from_str(&s).expect("images.json"))
        .unwrap_or_default();
    let resolver = MapResolver(images);
    let mut opts = LowerOptions {
        image_resolver: Some(&resolver),
        ..Default::default()
    };
    for line in fs::read_to_string(dir.join("options.txt"))
        .unwrap_or_default()
        .lines()
    {
        match line.split_once('=') {
            Some(("target", t)) => opts.target = Some(t.into()),
            Some(("build-arg", kv)) => {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                opts.build_args.insert(k.into(), v.into());
            }
            Some(("platform", p)) => opts.target_platform = platform(p),
            Some(("build-platform", p)) => opts.build_platform = platform(p),
            _ if line == "no-cache" => opts.no_cache = true,
            _ if line.trim().is_empty() => {}
            _ => panic!("{}: bad option line {line:?}", dir.display()),
        }
    }
    let ast = parse(&text, "Dockerfile")?;
    lower(&ast, &opts)
}

fn cases(root: &str) -> Vec<PathBuf> {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(root);
    let mut dirs: Vec<PathBuf> = fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Dockerfile").exists())
        .collect();
    dirs.sort();
    dirs
}

fn check(dir: &Path, file: &str, actual: &str, failures: &mut Vec<String>) {
    let path = dir.join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{}:\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        ));
    }
}

#[test]
fn lower_golden() {
    let mut failures = Vec::new();
    let dirs = cases("testdata-lower");
    assert!(!dirs.is_empty(), "golden cases missing");
    for dir in dirs {
        match run_case(&dir) {
            Ok(plan) => check(&dir, "plan.txt", &plan.dump(), &mut failures),
            Err(e) => failures.push(format!("{}: unexpected error: {e}", dir.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn lower_golden_negative() {
    let mut failures = Vec::new();
    let dirs = cases("testdata-lower-negative");
    assert!(!dirs.is_empty(), "negative cases missing");
    for dir in dirs {
        match run_case(&dir) {
            Ok(_) => failures.push(format!("{}: lowered without error", dir.display())),
            Err(e) => {
                assert!(
                    e.location().line > 0 || e.to_string().contains("target stage"),
                    "{e}"
                );
                check(&dir, "error.txt", &format!("{e}\n"), &mut failures)
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
