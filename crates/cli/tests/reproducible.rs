//! The same build on the same inputs gives the same layers, also when run
//! again later with `--no-cache` (so identical content is stored once).
//! Needs root, runc and /usr/bin/busybox, like the other build tests.

use std::path::Path;
use std::time::Duration;

mod support;

use support::{command, context, ok, scratch, stderr, stdout, store_named};

/// The layer diff ids of image `name`.
fn layers(root: &Path, name: &str) -> Vec<String> {
    let out = ok(root, &["inspect", "-f", "{{json .RootFS.Layers}}", name]);
    serde_json::from_str(stdout(&out).trim()).unwrap()
}

/// `rbk build --no-cache -t TAG CTX`, with `SOURCE_DATE_EPOCH` if given.
fn build(root: &Path, ctx: &Path, tag: &str, epoch: Option<&str>) {
    let args = ["build", "--progress=plain", "--no-cache", "-t", tag];
    let mut cmd = command(root, &args);
    cmd.arg(ctx);
    if let Some(epoch) = epoch {
        cmd.env("SOURCE_DATE_EPOCH", epoch);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn rebuilding_a_copy_gives_the_same_layers() {
    let dir = scratch("reproducible");
    // Missing parents (/data/deep), a file into an existing directory
    // (/etc), a directory onto a new destination, a file into a new
    // destination directory, WORKDIR's mkdir and a heredoc file.
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox\n\
                 COPY blob.bin /data/deep/blob.bin\n\
                 COPY conf /etc/\n\
                 COPY tree /opt/tree\n\
                 COPY conf /new/dir/\n\
                 WORKDIR /work/here\n\
                 COPY <<EOF /work/note.txt\nhello\nEOF\n",
            ),
            ("blob.bin", "same bytes"),
            ("conf", "k=v\n"),
            ("tree/a/b", "b"),
            ("tree/c", "c"),
        ],
    );
    let first = store_named(&dir, "one");
    let second = store_named(&dir, "two");
    build(&first, &ctx, "app:1", None);
    // Layer times have whole seconds: make "now" differ between the builds.
    std::thread::sleep(Duration::from_millis(1100));
    build(&first, &ctx, "app:2", None);
    build(&second, &ctx, "app:1", None);
    let want = layers(&first, "app:1");
    assert_eq!(want.len(), 7, "base + 6 layers: {want:?}");
    assert_eq!(layers(&first, "app:2"), want, "rebuilt in the same store");
    assert_eq!(layers(&second, "app:1"), want, "built in another store");

    // SOURCE_DATE_EPOCH is the time of what the op creates: a new epoch
    // gives new layers, and again the same ones on a rebuild.
    build(&first, &ctx, "app:3", Some("1000"));
    let epoch = layers(&first, "app:3");
    assert_ne!(epoch[1], want[1], "the created /data/deep has another time");
    build(&second, &ctx, "app:3", Some("1000"));
    assert_eq!(layers(&second, "app:3"), epoch);
}
