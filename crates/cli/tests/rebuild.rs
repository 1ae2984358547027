//! A fully cached rebuild gives the same image (its times come from the
//! layers, as BuildKit's exporter does), a one-file edit rebuild gives the
//! layers a `--no-cache` build of the same context gives, and a stage
//! deeper than one overlay mount's option page still builds. Needs root, runc and
//! /usr/bin/busybox, like `build.rs`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

mod support;

use support::{config, context, ok, ran, stderr, stdout, store};

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("rebuild-{name}"))
}

/// Builds `ctx` as `name` and returns the image id.
fn build(root: &Path, ctx: &Path, name: &str) -> String {
    let out = ok(
        root,
        &[
            "build",
            "-q",
            "--progress=plain",
            "-t",
            name,
            ctx.to_str().unwrap(),
        ],
    );
    stdout(&out).trim().to_string()
}

fn inspect(root: &Path, name: &str) -> Value {
    let out = ok(root, &["inspect", name]);
    serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
}

#[test]
fn a_fully_cached_rebuild_gives_the_same_image_id() {
    let dir = scratch("same-id");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox\nENV A=1\nCOPY a.txt /a.txt\nRUN echo run > /run.txt\n\
                 RUN true\nLABEL l=1\nCOPY b.txt /b.txt\nCMD [\"cat\", \"/a.txt\"]\n",
            ),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
        ],
    );
    let first = build(&root, &ctx, "same:1");
    assert!(first.starts_with("sha256:"), "{first}");
    let created = inspect(&root, "same:1")["Created"]
        .as_str()
        .unwrap()
        .to_string();
    let second = build(&root, &ctx, "same:2");
    assert_eq!(first, second, "a cached rebuild changed the image id");
    assert_eq!(inspect(&root, "same:2")["Created"], created.as_str());

    // Editing the last COPY's file changes that step only: a new id, a
    // newer creation time, the earlier steps' times kept.
    fs::write(ctx.join("b.txt"), "b2\n").unwrap();
    let third = build(&root, &ctx, "same:3");
    assert_ne!(third, first);
    let config = |name: &str| {
        let v = inspect(&root, name);
        v["Created"].as_str().unwrap().to_string()
    };
    assert!(
        config("same:3") > created,
        "{} <= {created}",
        config("same:3")
    );
    let store_config = |id: &str| -> Value {
        let hex = id.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&fs::read(root.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let old = store_config(&first);
    let new = store_config(&third);
    let times = |c: &Value| -> Vec<String> {
        c["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["created"].as_str().unwrap().to_string())
            .collect()
    };
    let (old, new) = (times(&old), times(&new));
    let n = old.len();
    assert_eq!(
        old[..n - 2],
        new[..n - 2],
        "steps before the edit keep their times"
    );
    assert!(new[n - 2] > old[n - 2], "the re-run COPY has a new time");
    // CMD has no layer: it takes the time of the COPY before it.
    assert_eq!(new[n - 1], new[n - 2]);
}

#[test]
fn a_stage_deeper_than_an_option_page_still_mounts() {
    // 130 layers: the snapshot paths of so many lower dirs are far past the
    // 4 KiB of mount options a classic overlay mount(2) can take.
    let dir = scratch("deep");
    let root = store(&dir);
    let mut dockerfile = String::from("FROM rbk-busybox\n");
    for i in 0..130 {
        dockerfile.push_str(&format!("RUN echo {i} > /layer-{i}\n"));
    }
    dockerfile.push_str("RUN cat /layer-0 /layer-129 > /ends && ls / | grep -c layer- > /count\n");
    let ctx = context(&dir, &[("Dockerfile", &dockerfile)]);
    let out = dir.join("out");
    let spec = format!("type=local,dest={}", out.display());
    ok(
        &root,
        &[
            "build",
            "--progress=plain",
            "--output",
            &spec,
            ctx.to_str().unwrap(),
        ],
    );
    assert_eq!(fs::read_to_string(out.join("ends")).unwrap(), "0\n129\n");
    assert_eq!(fs::read_to_string(out.join("count")).unwrap(), "130\n");
}

/// The diff ids of image `name`.
fn diff_ids(root: &Path, name: &str) -> Vec<String> {
    let config = config(root, name);
    let ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    ids.iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

/// The monorepo shape of issue 19 in small: a `.dockerignore` with `**` and
/// a `!` exception, COPY of the whole tree and of a subtree onto a base.
/// After a one-file edit the rebuild re-runs both COPYs (whatever it reuses
/// from the previous build to do so), and its layers must be byte for byte
/// those of a `--no-cache` build of the same context: the cache may make a
/// build faster, never different.
#[test]
fn a_one_file_edit_rebuild_gives_the_layers_of_a_no_cache_build() {
    let dir = scratch("edit-no-cache");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox\nCOPY . /repo\nCOPY src /src\n",
            ),
            (
                ".dockerignore",
                "**/node_modules\n!app/node_modules/keep.js\n*.log\n",
            ),
            ("app/main.rs", "fn main() {}\n"),
            ("app/lib/a.rs", "pub fn a() {}\n"),
            ("app/node_modules/x/y.js", "excluded\n"),
            ("app/node_modules/keep.js", "re-included\n"),
            ("notes.log", "excluded\n"),
            ("src/one.txt", "one\n"),
            ("src/deep/er/two.txt", "two\n"),
            ("src/deep/er/three.txt", "three\n"),
        ],
    );
    let exe = ctx.join("src/deep/run.sh");
    fs::write(&exe, "#!/bin/sh\n").unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("er/two.txt", ctx.join("src/deep/link")).unwrap();
    let build = |tag: &str, extra: &[&str]| -> String {
        let mut args = vec!["build", "--progress=plain", "-t", tag];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        stderr(&ok(&root, &args))
    };
    build("edit:1", &[]);
    let before = diff_ids(&root, "edit:1");
    fs::write(ctx.join("src/deep/er/two.txt"), "two, edited\n").unwrap();
    let log = build("edit:2", &[]);
    let copies: Vec<String> = ran(&log)
        .into_iter()
        .filter(|step| step.contains("COPY"))
        .collect();
    assert_eq!(copies.len(), 2, "both COPYs re-run after the edit:\n{log}");
    let edited = diff_ids(&root, "edit:2");
    build("edit:3", &["--no-cache"]);
    let fresh = diff_ids(&root, "edit:3");
    assert_eq!(
        edited, fresh,
        "the edit rebuild's layers differ from --no-cache's"
    );
    assert_eq!(before[0], edited[0], "the base layer is shared");
    assert_ne!(before[1], edited[1], "the edit reached COPY . /repo");
    assert_ne!(before[2], edited[2], "the edit reached COPY src /src");
    // Editing it back is a cache hit on the first build's layers. (Those
    // carry the file's first mtime: like BuildKit's, the cache key covers
    // content and mode, not times, so a --no-cache build now differs.)
    fs::write(ctx.join("src/deep/er/two.txt"), "two\n").unwrap();
    build("edit:4", &[]);
    assert_eq!(diff_ids(&root, "edit:4"), before);
    let _ = fs::remove_dir_all(&dir);
}

/// The same on scratch, where the COPY is incremental (the unchanged files
/// are linked from its last snapshot, see `rbk_exec`'s `ops/file/reuse.rs`):
/// after an edit, an added, a deleted, a renamed and a chmodded file, the
/// layer is the one a `--no-cache` build gives, and an untouched file is
/// shared with the first build's snapshot rather than copied.
#[test]
fn an_incremental_copy_gives_the_layer_of_a_no_cache_build() {
    use std::os::unix::fs::MetadataExt;
    let dir = scratch("incremental");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            ("Dockerfile", "FROM scratch\nCOPY . /repo\n"),
            (
                ".dockerignore",
                "**/node_modules\n!app/node_modules/keep.js\n",
            ),
            ("app/main.rs", "fn main() {}\n"),
            ("app/node_modules/x/y.js", "excluded\n"),
            ("app/node_modules/keep.js", "re-included\n"),
            ("src/one.txt", "one\n"),
            ("src/deep/two.txt", "two\n"),
            ("src/deep/three.txt", "three\n"),
            ("src/deep/four.txt", "four\n"),
        ],
    );
    std::os::unix::fs::symlink("deep/two.txt", ctx.join("src/link")).unwrap();
    // Older than the racy window, so the first build records them.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let build = |tag: &str, extra: &[&str]| {
        let mut args = vec!["build", "--progress=plain", "-t", tag];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        ok(&root, &args);
        diff_ids(&root, tag)
    };
    let snapshot = |id: &str| {
        root.join("snapshots")
            .join(id.trim_start_matches("sha256:"))
    };
    let before = build("inc:1", &[]);
    fs::write(ctx.join("src/deep/two.txt"), "two, edited\n").unwrap();
    fs::write(ctx.join("src/new.txt"), "new\n").unwrap();
    fs::remove_file(ctx.join("src/deep/three.txt")).unwrap();
    fs::rename(ctx.join("src/one.txt"), ctx.join("app/one.txt")).unwrap();
    fs::set_permissions(ctx.join("app/main.rs"), fs::Permissions::from_mode(0o700)).unwrap();
    let edited = build("inc:2", &[]);
    let fresh = build("inc:3", &["--no-cache"]);
    assert_eq!(
        edited, fresh,
        "the incremental layer differs from --no-cache's"
    );
    assert_ne!(before, edited);
    let ino = |id: &str, rel: &str| {
        fs::symlink_metadata(snapshot(id).join("repo").join(rel))
            .unwrap()
            .ino()
    };
    assert_eq!(
        ino(&before[0], "src/deep/four.txt"),
        ino(&edited[0], "src/deep/four.txt"),
        "the untouched file is linked from the first snapshot"
    );
    let after = snapshot(&edited[0]).join("repo");
    assert_eq!(
        fs::read_to_string(after.join("src/deep/two.txt")).unwrap(),
        "two, edited\n"
    );
    assert!(!after.join("src/deep/three.txt").exists());
    assert!(!after.join("src/one.txt").exists());
    assert_eq!(
        fs::read_to_string(after.join("app/one.txt")).unwrap(),
        "one\n"
    );
    let _ = fs::remove_dir_all(&dir);
}
