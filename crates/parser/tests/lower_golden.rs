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

use rbk_graph::image::ContainerConfig;
use rbk_graph::Platform;
use rbk_parser::{lower, parse, ImageResolver, LowerOptions, Plan};

struct MapResolver(BTreeMap<String, ContainerConfig>);

impl ImageResolver for MapResolver {
    fn resolve(
        &self,
        reference: &str,
        _platform: &Platform,
    ) -> Result<ContainerConfig, rbk_parser::ResolveError> {
        match self.0.get(reference) {
            Some(c) => Ok(c.clone()),
            None if reference.contains("missing") => Err("not found".into()),
            None => Ok(ContainerConfig::default()),
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
    let images: BTreeMap<String, ContainerConfig> = fs::read_to_string(dir.join("images.json"))
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

fn lower_text(text: &str, target: Option<&str>) -> Plan {
    let ast = parse(text, "Dockerfile").unwrap();
    let opts = LowerOptions {
        target: target.map(str::to_string),
        ..Default::default()
    };
    lower(&ast, &opts).unwrap()
}

/// Vertices reachable from the plan's roots.
fn reachable(plan: &Plan) -> Vec<u32> {
    let mut seen = vec![false; plan.definition.len()];
    let mut stack: Vec<rbk_graph::NodeId> = plan.roots();
    while let Some(id) = stack.pop() {
        if std::mem::replace(&mut seen[id.0 as usize], true) {
            continue;
        }
        stack.extend(plan.definition.get(id).op.inputs().iter().map(|i| i.node));
    }
    (0..seen.len() as u32)
        .filter(|&i| seen[i as usize])
        .collect()
}

#[test]
fn copy_from_and_mount_from_are_input_edges() {
    let text = "FROM busybox AS a\nRUN echo a\nFROM busybox AS b\nRUN echo b\nFROM busybox AS unused\nRUN echo u\n\
                FROM scratch\nCOPY --from=a /x /x\nRUN --mount=from=b,target=/m true\n";
    let plan = lower_text(text, None);
    let live = reachable(&plan);
    for stage in ["a", "b"] {
        let s = plan
            .stages
            .iter()
            .find(|s| s.name.as_deref() == Some(stage))
            .unwrap();
        assert!(
            live.contains(&s.output.0),
            "stage {stage} must be reachable"
        );
    }
    let unused = plan
        .stages
        .iter()
        .find(|s| s.name.as_deref() == Some("unused"))
        .unwrap();
    assert!(!live.contains(&unused.output.0));
}

#[test]
fn target_selects_the_root_and_forward_references_work() {
    let text = "FROM busybox AS first\nCOPY --from=second /x /x\nFROM busybox AS second\nRUN true\nFROM first\n";
    let plan = lower_text(text, Some("FIRST"));
    assert_eq!(plan.target, 0);
    assert_eq!(plan.roots(), vec![plan.stages[0].output]);
    let live = reachable(&plan);
    assert!(live.contains(&plan.stages[1].output.0));
}

#[test]
fn one_context_and_one_vertex_per_image() {
    let text = "FROM busybox AS a\nCOPY x /x\nFROM busybox\nCOPY y /y\nCOPY --from=alpine /z /z\nCOPY --from=alpine /w /w\n";
    let plan = lower_text(text, None);
    let count = |pred: &dyn Fn(&rbk_graph::Op) -> bool| {
        plan.definition
            .vertices
            .iter()
            .filter(|v| pred(&v.op))
            .count()
    };
    use rbk_graph::{Op, SourceOp};
    assert_eq!(
        count(&|op| matches!(op, Op::Source(SourceOp::Local { .. }))),
        1
    );
    assert_eq!(
        count(&|op| matches!(op, Op::Source(SourceOp::Image { .. }))),
        2
    );
}

#[test]
fn no_cache_marks_every_instruction_vertex() {
    let ast = parse("FROM busybox\nRUN true\n", "Dockerfile").unwrap();
    let opts = LowerOptions {
        no_cache: true,
        ..Default::default()
    };
    let plan = lower(&ast, &opts).unwrap();
    assert!(plan.definition.vertices.iter().all(|v| v.meta.ignore_cache));
}

/// Each word stops at 1 MiB, but lines can multiply it: `ENV A1=$A0$A0`
/// reaches 1 MiB in 20 lines, then every `ENV`, `LABEL` or `RUN` (which
/// carries the whole environment) adds another. Lowering stops at
/// `MAX_LOWERED_TEXT` in total, naming the line that passed it.
#[test]
fn lines_that_multiply_a_word_stop_at_the_total_bound() {
    use std::fmt::Write;
    let mut doubling = "FROM busybox\nENV A0=xxxxxxxxxxxxxxxx\n".to_string();
    for i in 1..=16 {
        writeln!(doubling, "ENV A{i}=$A{}$A{}", i - 1, i - 1).unwrap();
    }
    // A16 is 1 MiB; a few copies are fine.
    let fine = format!("{doubling}ENV B1=$A16\nLABEL l=$A16\nRUN true\n");
    let plan = lower_text(&fine, None);
    assert!(plan.definition.vertices.len() >= 2);

    let limit = rbk_parser::MAX_LOWERED_TEXT;
    let message =
        format!("the Dockerfile's expansions and RUN environments total more than {limit} bytes");
    let lower_err = |text: &str| {
        let ast = parse(text, "Dockerfile").unwrap();
        lower(&ast, &LowerOptions::default()).unwrap_err()
    };
    // Copies in ENV lines: the first line past the bound is named.
    let copies = limit >> 20;
    let mut text = doubling.clone();
    for i in 0..copies {
        writeln!(text, "ENV B{i}=$A16").unwrap();
    }
    let e = lower_err(&text);
    assert!(e.to_string().contains(&message), "{e}");
    // Line 1 is FROM, 2 is A0, 3..=18 are A1..A16; the lines before the
    // bound hold A1..A16 (2 MiB in all) and the B copies.
    let line = e.location().line as usize;
    assert!(line > 18 + copies - 4 && line <= 18 + copies, "{e}");
    // RUN lines that carry a 1 MiB environment each.
    let mut text = doubling.clone();
    text.push_str("ENV B=$A16\n");
    for _ in 0..copies {
        text.push_str("RUN true\n");
    }
    let e = lower_err(&text);
    assert!(e.to_string().contains(&message), "{e}");
    assert!(e.location().line > 19, "{e}");
    // COPY heredocs that expand the 1 MiB value.
    let mut text = doubling.clone();
    for i in 0..copies {
        writeln!(text, "COPY <<EOF /f{i}\n$A16\nEOF").unwrap();
    }
    let e = lower_err(&text);
    assert!(e.to_string().contains(&message), "{e}");
    assert!(e.location().line > 18 + 3 * (copies - 4) as u32, "{e}");
}
