//! Enforces the dependency direction drawn in `crates/README.md`: no arrow
//! points back up (exec never depends on parser or registry, no library on
//! cli).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context};

/// Which rbk crates each rbk crate may depend on.
const ALLOWED: &[(&str, &[&str])] = &[
    ("rbk-store", &[]),
    ("rbk-graph", &["rbk-store"]),
    ("rbk-parser", &["rbk-graph", "rbk-store"]),
    ("rbk-exec", &["rbk-graph", "rbk-store"]),
    ("rbk-registry", &["rbk-store"]),
    (
        "rbk-build",
        &[
            "rbk-parser",
            "rbk-graph",
            "rbk-exec",
            "rbk-store",
            "rbk-registry",
        ],
    ),
    (
        "rbk-cli",
        &[
            "rbk-build",
            "rbk-parser",
            "rbk-graph",
            "rbk-exec",
            "rbk-store",
            "rbk-registry",
        ],
    ),
    ("xtask", &["rbk-parser", "rbk-graph", "rbk-store"]),
];

pub(crate) fn check(root: &Path) -> anyhow::Result<()> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut problems = Vec::new();
    for pkg in meta["packages"].as_array().into_iter().flatten() {
        let name = pkg["name"].as_str().unwrap_or_default();
        let Some(ok) = allowed.get(name) else {
            problems.push(format!(
                "{name}: not a crate of the table in xtask/src/deps.rs (see crates/README.md)"
            ));
            continue;
        };
        for dep in pkg["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            // Dev-dependencies (such as a crate on itself for a test-only
            // feature) do not shape the library graph.
            let is_dev = dep["kind"].as_str() == Some("dev");
            let is_rbk = dep_name.starts_with("rbk-") || dep_name == "xtask";
            if is_rbk && !is_dev && !ok.contains(&dep_name) {
                problems.push(format!("{name} must not depend on {dep_name}"));
            }
        }
    }
    if !problems.is_empty() {
        bail!(
            "dependency direction violated:\n  {}",
            problems.join("\n  ")
        );
    }
    crate::say("deps: crate dependencies follow crates/README.md");
    Ok(())
}
