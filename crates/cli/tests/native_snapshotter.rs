//! The native (copying) snapshotter, `RBK_SNAPSHOTTER=native`, builds the
//! same layers as overlayfs: its walking diff writes the same overlay-format
//! upper dirs. Needs root, runc and /usr/bin/busybox, like the other build
//! tests.

use std::path::Path;
use std::process::Command;

mod support;

use support::{command, context, ok, scratch, stderr, stdout, store_named};

const DOCKERFILE: &str = r#"FROM rbk-busybox AS build
RUN mkdir -p /out/sub /out/gone && echo one > /out/a && echo two > /out/sub/b \
 && ln -s a /out/link && echo g > /out/gone/g && echo f > /out/todir
RUN echo changed >> /out/a && rm /out/sub/b && chmod 700 /out/sub && rm -r /out/gone \
 && ln -sf sub /out/link && rm /out/todir && mkdir /out/todir && echo in > /out/todir/in
FROM rbk-busybox
COPY --from=build /out /app
RUN rm /etc/group && echo extra >> /etc/passwd && mkdir /data && echo x > /data/x \
 && rm /app/a && chmod 600 /app/sub && touch /app/new
COPY f.txt /data/
RUN head -n 1 /proc/self/mountinfo
"#;

/// Builds the context with `snapshotter` as `RBK_SNAPSHOTTER` in the store
/// `dir/<snapshotter>`; returns (layer diff ids, image id, the build's log).
fn build(dir: &Path, ctx: &Path, snapshotter: &str) -> (Vec<String>, String, String) {
    let root = dir.join(snapshotter);
    let mut cmd = command(&root, &["build", "--progress=plain", "-t", "out:1"]);
    cmd.arg(ctx)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("RBK_SNAPSHOTTER", snapshotter);
    let out = cmd.output().unwrap();
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let layers = ok(
        &root,
        &["inspect", "-f", "{{json .RootFS.Layers}}", "out:1"],
    );
    let layers = serde_json::from_str(stdout(&layers).trim()).unwrap();
    let id = stdout(&ok(&root, &["inspect", "-f", "{{.Id}}", "out:1"]));
    // The build stage's own RUN layers (a file turned into a directory:
    // opaque; a directory removed: a whiteout), from the cache.
    let mut cmd = command(&root, &["build", "--target", "build", "-t", "stage:1"]);
    cmd.arg(ctx)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("RBK_SNAPSHOTTER", snapshotter);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stage = ok(
        &root,
        &["inspect", "-f", "{{json .RootFS.Layers}}", "stage:1"],
    );
    let mut layers: Vec<String> = layers;
    layers.extend(serde_json::from_str::<Vec<String>>(stdout(&stage).trim()).unwrap());
    (layers, id.trim().to_string(), log)
}

/// The root filesystem line of the container's mountinfo (its first), from
/// the log.
fn rootfs_line(log: &str) -> &str {
    log.lines()
        .find(|l| l.contains(" / ") && l.contains(" - "))
        .unwrap_or_else(|| panic!("no mountinfo line in the log:\n{log}"))
}

#[test]
fn native_snapshotter_builds_the_same_layers_as_overlay() {
    let dir = scratch("native-snapshotter");
    let ctx = context(&dir, &[("Dockerfile", DOCKERFILE), ("f.txt", "file\n")]);
    // One import copied, so both stores hold the same base image (its
    // history records when it was imported).
    store_named(&dir, "overlay");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(dir.join("overlay"))
        .arg(dir.join("native"))
        .status()
        .unwrap();
    assert!(copied.success());
    let (overlay_layers, overlay_id, overlay_log) = build(&dir, &ctx, "overlay");
    let (native_layers, native_id, native_log) = build(&dir, &ctx, "native");
    assert!(
        rootfs_line(&overlay_log).contains(" - overlay "),
        "{overlay_log}"
    );
    assert!(
        !rootfs_line(&native_log).contains(" - overlay "),
        "{native_log}"
    );
    assert!(
        !native_log.contains("overlayfs is not available"),
        "{native_log}"
    );
    // busybox base, COPY --from, RUN, COPY, the last RUN's empty layer,
    // then the build stage's base and two RUNs.
    assert_eq!(overlay_layers.len(), 8, "{overlay_layers:?}");
    assert_eq!(native_layers, overlay_layers);
    assert_eq!(native_id, overlay_id);
}
