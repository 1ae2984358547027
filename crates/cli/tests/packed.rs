//! Built layers are stored once, as their snapshot (packed blobs), and still
//! leave the store as ordinary layer blobs. Needs root, runc and
//! /usr/bin/busybox (the test command installs them).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod support;

use support::{ok, scratch, stdout, store, store_named};

/// Bytes under `dir` (`du -sb`: allocated files, each inode once).
fn du(dir: &Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(dir).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

/// A context of `files` files of 256 KiB each (not compressible, distinct)
/// and a Dockerfile outside it, so the copied content is the same whatever
/// the Dockerfile says.
fn shared_context(dir: &Path, files: u32) -> PathBuf {
    let ctx = dir.join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    for n in 0..files {
        let data: Vec<u8> = (0..256u32 << 10)
            .map(|i| (i.wrapping_add(n << 20).wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        fs::write(ctx.join(format!("part{n}.bin")), data).unwrap();
    }
    ctx
}

fn build(root: &Path, dir: &Path, ctx: &Path, dockerfile: &str, extra: &[&str]) {
    let file = dir.join("Dockerfile");
    fs::write(&file, dockerfile).unwrap();
    let mut args = vec!["build", "--progress=plain", "-f", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    ok(root, &args);
}

fn inspect(root: &Path, name: &str) -> serde_json::Value {
    let out = stdout(&ok(root, &["inspect", name]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

#[test]
fn five_images_copying_the_same_content_store_it_once() {
    let dir = scratch("packed-five");
    let root = store(&dir);
    let ctx = shared_context(&dir, 8); // 2 MiB
    let content = 8u64 * (256 << 10);
    let build_n = |i: u32| {
        let df = format!("FROM rbk-busybox\nLABEL n={i}\nCOPY . /\n");
        let tag = format!("shared:{i}");
        build(&root, &dir, &ctx, &df, &["--no-cache", "-t", &tag]);
    };
    // The first build also unpacks the base image's snapshot: count the
    // rest, then measure the other four from after it.
    let before = du(&root);
    build_n(0);
    let after_first = du(&root);
    let hex = |r: &serde_json::Value| r.as_str().unwrap()[7..].to_string();
    let rootfs = inspect(&root, "shared:0")["RootFS"]["Layers"].clone();
    let base = du(&root.join("snapshots").join(hex(&rootfs[0])));
    let first = after_first - before - base;
    assert!(
        first < content + content / 2,
        "the first build of {content} bytes grew the store by {first} bytes (beyond the base)"
    );
    for i in 1..5 {
        build_n(i);
    }
    let grown = du(&root) - after_first;
    assert!(
        grown < content / 4,
        "four more builds of the same {content} bytes grew the store by {grown} bytes"
    );
    let packed = fs::read_dir(root.join("db/packed")).unwrap().count();
    assert_eq!(packed, 1, "one packed layer for the five images");
    let layers = |i: u32| inspect(&root, &format!("shared:{i}"))["RootFS"]["Layers"].clone();
    for i in 1..5 {
        assert_eq!(layers(i), layers(0), "identical content, identical layers");
    }
    ok(&root, &["system", "verify"]);
}

#[test]
fn a_saved_built_image_loads_elsewhere_with_the_same_ids() {
    let dir = scratch("packed-save");
    let root = store(&dir);
    let ctx = shared_context(&dir, 2);
    let df =
        "FROM rbk-busybox\nCOPY . /data/\nRUN rm /etc/group && mkdir /made && echo hi > /made/f\n";
    build(&root, &dir, &ctx, df, &["-t", "built:1"]);
    let built = inspect(&root, "built:1");
    // The built layers have no blob file in the store: only snapshots.
    let diff_ids = built["RootFS"]["Layers"].as_array().unwrap().clone();
    let top = diff_ids.last().unwrap().as_str().unwrap();
    let hex = top.strip_prefix("sha256:").unwrap();
    assert!(!root.join("blobs/sha256").join(hex).exists());
    assert!(root.join("snapshots").join(hex).is_dir());

    let archive = dir.join("built.tar");
    ok(&root, &["save", "-o", archive.to_str().unwrap(), "built:1"]);
    let other = store_named(&dir, "other");
    ok(&other, &["load", "-i", archive.to_str().unwrap()]);
    let loaded = inspect(&other, "built:1");
    assert_eq!(loaded["Id"], built["Id"]);
    assert_eq!(loaded["RootFS"]["Layers"], built["RootFS"]["Layers"]);
    // Loaded, the layer is an ordinary blob file.
    assert!(other.join("blobs/sha256").join(hex).is_file());
    // A second save (from either store) gives the same bytes.
    let again = dir.join("again.tar");
    ok(&other, &["save", "-o", again.to_str().unwrap(), "built:1"]);
    assert_eq!(fs::read(&archive).unwrap(), fs::read(&again).unwrap());
    ok(&root, &["system", "verify"]);
    ok(&other, &["system", "verify"]);
}
