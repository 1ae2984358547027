//! `cargo xtask bench rootless`: the rows of `bench build` measured as root
//! and as an ordinary user (`rbk-rootless`, with subordinate ids, made like
//! the rootless tests make it), row by row in one run with one release
//! binary.
//! Each row is reported for both, with the ratio of the medians (issue 18's
//! target: rootless <= 1.15x root on every row).

use std::path::Path;

use super::leak;
use super::Figure;
use crate::users;

pub(crate) fn figures(root: &Path) -> anyhow::Result<Vec<Figure>> {
    let rbk = super::release_binary(root)?;
    let user = users::user(users::WITH_RANGES);
    // Under target/, which the user can reach (755 down from the checkout
    // on these machines); the user's own scratch directory is made there.
    let mut runs = super::build::measure(
        &rbk,
        &[
            (root.join("target/bench-build"), None),
            (root.join("target/bench-rootless"), Some(user)),
        ],
    )?;
    let rootless = runs.pop().expect("two runners");
    let as_root = runs.pop().expect("two runners");
    let mut figures = Vec::new();
    for (r, u) in as_root.into_iter().zip(rootless) {
        let ratio = u.median() / r.median();
        figures.push(Figure {
            name: leak(format!("rootless/root ratio of medians: {}", r.name)),
            unit: "x",
            samples: vec![ratio],
            target: "<= 1.15",
        });
        figures.push(Figure {
            name: leak(format!("root: {}", r.name)),
            ..r
        });
        figures.push(Figure {
            name: leak(format!("rootless: {}", u.name)),
            ..u
        });
    }
    // Gigabytes of contexts and stores: not left behind.
    for dir in ["target/bench-build", "target/bench-rootless"] {
        let _ = std::fs::remove_dir_all(root.join(dir));
    }
    Ok(figures)
}
