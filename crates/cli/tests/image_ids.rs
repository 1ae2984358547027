//! Image ids everywhere (issue 11, item 16): a build without `-t` keeps its
//! result untagged (`<none>`) and prints its id; `inspect`, `history`,
//! `tag`, `save`, `rmi` and `FROM`/`COPY --from` take that id, a unique
//! short prefix, or the `sha256:` form; `prune` removes untagged images.

mod support;

use std::path::Path;

use support::{build, context, ok, rbk, scratch, stderr, stdout, store};

/// Builds `dockerfile` without a tag and returns the full image id
/// (`sha256:…`) from `-q`.
fn build_untagged(root: &Path, dir: &Path, dockerfile: &str) -> String {
    let ctx = context(dir, &[("Dockerfile", dockerfile)]);
    let out = build(root, &ctx, &["-q"]);
    assert!(out.status.success(), "build failed:\n{}", stderr(&out));
    let id = stdout(&out).trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id:?}");
    id
}

fn text(root: &Path, args: &[&str]) -> String {
    stdout(&ok(root, args))
}

#[test]
fn an_untagged_build_is_kept_and_named_by_its_id() {
    let dir = scratch("ids-untagged");
    let root = store(&dir);
    let id = build_untagged(
        &root,
        &dir,
        "FROM rbk-busybox\nLABEL x=1\nRUN echo hi > /hi\n",
    );
    let hex = id.strip_prefix("sha256:").unwrap();
    let short = &hex[..12];

    // Listed as <none> <none>, with dangling=true, not under a reference.
    let listing = text(&root, &["images"]);
    let row = listing
        .lines()
        .find(|l| l.contains(short))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(row.starts_with("<none>") && row.split_whitespace().nth(1) == Some("<none>"));
    assert_eq!(
        text(&root, &["images", "-q", "--filter", "dangling=true"]).trim(),
        short
    );
    assert!(!text(&root, &["images", "-q", "-f", "dangling=false"]).contains(short));

    // inspect / history take every form of the id.
    for name in [id.as_str(), hex, short, &format!("sha256:{short}")] {
        let doc = text(
            &root,
            &["inspect", "--format", "{{.Id}} {{len .RepoTags}}", name],
        );
        assert_eq!(doc.trim(), format!("{id} 0"), "inspect {name}");
    }
    let history = text(&root, &["history", "-q", short]);
    assert_eq!(history.lines().next(), Some(short));

    // FROM <id> and COPY --from=<id> build on it.
    let from = format!("FROM {short}\nCOPY --from={id} /hi /copied\nRUN cat /hi /copied > /both\n");
    let child = build_untagged(&root, &dir.join("child"), &from);
    let doc = text(
        &root,
        &["inspect", "--format", "{{json .Config.Labels}}", &child],
    );
    assert_eq!(
        doc.trim(),
        r#"{"x":"1"}"#,
        "FROM {short} keeps the base config"
    );

    // tag and save take the id; the tag takes it out of the untagged list.
    ok(&root, &["tag", short, "named:1"]);
    assert_eq!(text(&root, &["images", "-q", "named:1"]).trim(), short);
    assert!(!text(&root, &["images", "-q", "-f", "dangling=true"]).contains(short));
    let archive = dir.join("child.tar");
    ok(
        &root,
        &["save", "-o", archive.to_str().unwrap(), &child[..19]],
    );
    assert!(archive.metadata().unwrap().len() > 0);
}

#[test]
fn rmi_and_prune_remove_untagged_images() {
    let dir = scratch("ids-rmi");
    let root = store(&dir);
    let a = build_untagged(&root, &dir.join("a"), "FROM rbk-busybox\nRUN echo a > /a\n");
    let b = build_untagged(&root, &dir.join("b"), "FROM rbk-busybox\nRUN echo b > /b\n");
    let out = text(&root, &["rmi", &a[7..19]]);
    assert!(out.contains(&format!("Deleted: {a}")), "{out}");
    let gone = rbk(&root, &["inspect", &a]);
    assert!(!gone.status.success());
    assert!(stderr(&gone).contains("No such image"), "{}", stderr(&gone));

    let out = text(&root, &["prune", "-f"]);
    assert!(out.contains(&format!("Deleted: {b}")), "{out}");
    assert!(!rbk(&root, &["inspect", &b]).status.success());
    // The tagged base image stays.
    ok(&root, &["inspect", "rbk-busybox"]);
    assert_eq!(text(&root, &["images", "-q"]).lines().count(), 1);
}

#[test]
fn an_ambiguous_or_unknown_id_is_an_error() {
    let dir = scratch("ids-unknown");
    let root = store(&dir);
    let out = rbk(&root, &["inspect", "0123456789ab"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("No such image: 0123456789ab"));
    let out = rbk(&root, &["tag", "0123456789ab", "x"]);
    assert!(!out.status.success());
}
