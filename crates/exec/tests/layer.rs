//! Layer tars of overlay-format directories, their commit into the store,
//! and their compressed forms. Needs root (mknod, `trusted.*` xattrs, chown);
//! without it the tests say so loudly and fail.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rbk_exec::{
    commit_layer, compress_layer, write_layer_tar, Compression, Error, LayerOptions,
    OverlaySnapshotter, Snapshotter, LAYER_TAR,
};
use rbk_store::{unpack_layer, BlobRead, Store, UnpackOptions};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags, CWD};

const MTIME: i64 = 1_700_000_000;
const LONG: &str = "a-name-long-enough-to-need-a-pax-path-record-because-ustar-name-fields-hold-one-hundred-bytes-only";

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "crates/exec/tests/layer.rs needs root (mknod, trusted.* xattrs, chown): run as root"
    );
}

fn set_mtime(path: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rfs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

fn write_file(path: &Path, content: &[u8], mode: u32) {
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// One step of building the test tree; the steps can run in any order
/// (parents are created on demand).
fn steps(root: &Path) -> Vec<Box<dyn Fn() + '_>> {
    let p = move |rel: &str| root.join(rel);
    let dir = move |rel: &str| fs::create_dir_all(root.join(rel)).unwrap();
    vec![
        Box::new(move || {
            dir("bin");
            write_file(&p("bin/tool"), b"#!/bin/sh\n", 0o755);
            fs::set_permissions(p("bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
        }),
        Box::new(move || {
            dir("etc");
            write_file(&p("etc/conf"), b"key=value\n", 0o640);
            rustix::fs::chown(p("etc/conf"), Some(uid(1000)), Some(gid(1001))).unwrap();
            rfs::lsetxattr(p("etc/conf"), "user.note", b"hi", XattrFlags::empty()).unwrap();
            rfs::lsetxattr(
                p("etc/conf"),
                "trusted.overlay.origin",
                b"x",
                XattrFlags::empty(),
            )
            .unwrap();
        }),
        Box::new(move || {
            dir("etc");
            symlink("../bin/tool", p("etc/link")).unwrap();
        }),
        Box::new(move || {
            write_file(&p("hard1"), b"shared", 0o644);
            fs::hard_link(p("hard1"), p("hard2")).unwrap();
        }),
        Box::new(move || {
            rfs::mknodat(
                CWD,
                p("fifo"),
                FileType::Fifo,
                Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap();
        }),
        Box::new(move || {
            rfs::mknodat(CWD, p("gone"), FileType::CharacterDevice, Mode::empty(), 0).unwrap();
        }),
        Box::new(move || {
            dir("opaque");
            write_file(&p("opaque/new"), b"new", 0o644);
            rfs::lsetxattr(
                p("opaque"),
                "trusted.overlay.opaque",
                b"y",
                XattrFlags::empty(),
            )
            .unwrap();
        }),
        Box::new(move || {
            dir("deep");
            write_file(&p(&format!("deep/{LONG}")), b"long", 0o644);
            write_file(&p("deep/h\u{e9}llo"), b"accent", 0o644);
        }),
    ]
}

fn uid(n: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(n)
}

fn gid(n: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(n)
}

/// Sets every mtime below `root` to MTIME, children before parents.
fn fix_mtimes(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            fix_mtimes(&path);
        }
        set_mtime(&path, MTIME);
    }
}

/// Builds the test tree at `root`, running the steps forwards or backwards.
fn build_tree(root: &Path, reverse: bool) {
    fs::create_dir(root).unwrap();
    let mut all = steps(root);
    if reverse {
        all.reverse();
    }
    for step in &all {
        step();
    }
    fix_mtimes(root);
}

fn tar_of(dir: &Path, options: &LayerOptions) -> Vec<u8> {
    let mut out = Vec::new();
    write_layer_tar(dir, &mut out, options).unwrap();
    out
}

#[derive(Debug, PartialEq)]
struct Seen {
    name: String,
    kind: tar::EntryType,
    mode: u32,
    ids: (u64, u64),
    mtime: u64,
    link: Option<String>,
    pax: BTreeMap<String, Vec<u8>>,
}

fn entries(bytes: &[u8]) -> Vec<Seen> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut pax = BTreeMap::new();
        if let Some(ext) = entry.pax_extensions().unwrap() {
            for record in ext {
                let record = record.unwrap();
                pax.insert(
                    record.key().unwrap().to_string(),
                    record.value_bytes().to_vec(),
                );
            }
        }
        let h = entry.header();
        out.push(Seen {
            name: String::from_utf8(entry.path_bytes().to_vec()).unwrap(),
            kind: h.entry_type(),
            mode: h.mode().unwrap(),
            ids: (h.uid().unwrap(), h.gid().unwrap()),
            mtime: h.mtime().unwrap(),
            link: entry
                .link_name_bytes()
                .map(|l| String::from_utf8(l.to_vec()).unwrap()),
            pax,
        });
        assert!(h.username_bytes().unwrap_or_default().is_empty());
        assert!(h.groupname_bytes().unwrap_or_default().is_empty());
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
    }
    out
}

#[test]
fn the_tar_has_the_expected_entries() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("upper");
    build_tree(&root, false);
    let seen = entries(&tar_of(&root, &LayerOptions::default()));
    let names: Vec<&str> = seen.iter().map(|s| s.name.as_str()).collect();
    let long = format!("deep/{LONG}");
    assert_eq!(
        names,
        [
            "bin/",
            "bin/tool",
            "deep/",
            long.as_str(),
            "deep/h\u{e9}llo",
            "etc/",
            "etc/conf",
            "etc/link",
            "fifo",
            ".wh.gone",
            "hard1",
            "hard2",
            "opaque/",
            "opaque/.wh..wh..opq",
            "opaque/new",
        ]
    );
    let by_name = |n: &str| seen.iter().find(|s| s.name == n).unwrap();
    use tar::EntryType as T;
    assert_eq!(by_name("bin/").kind, T::Directory);
    assert_eq!(by_name("bin/tool").mode, 0o4755);
    let conf = by_name("etc/conf");
    assert_eq!(
        (conf.mode, conf.ids, conf.mtime),
        (0o640, (1000, 1001), MTIME as u64)
    );
    assert_eq!(
        conf.pax.get("SCHILY.xattr.user.note").map(Vec::as_slice),
        Some(&b"hi"[..])
    );
    assert_eq!(
        conf.pax.len(),
        1,
        "trusted.overlay.* must be dropped: {:?}",
        conf.pax
    );
    let link = by_name("etc/link");
    assert_eq!(
        (link.kind, link.link.as_deref()),
        (T::Symlink, Some("../bin/tool"))
    );
    assert_eq!(by_name("fifo").kind, T::Fifo);
    assert_eq!(by_name("fifo").mode, 0o600);
    let whiteout = by_name(".wh.gone");
    assert_eq!(
        (whiteout.kind, whiteout.mode, whiteout.ids),
        (T::Regular, 0, (0, 0))
    );
    assert_eq!(whiteout.mtime, MTIME as u64);
    assert_eq!(by_name("hard1").kind, T::Regular);
    let hard2 = by_name("hard2");
    assert_eq!(
        (hard2.kind, hard2.link.as_deref()),
        (T::Link, Some("hard1"))
    );
    let marker = by_name("opaque/.wh..wh..opq");
    assert_eq!(
        (marker.kind, marker.mode, marker.ids),
        (T::Regular, 0, (0, 0))
    );
    assert!(
        by_name("opaque/").pax.is_empty(),
        "opaque xattr must not leak"
    );
    assert_eq!(by_name(&long).pax.get("path").unwrap(), long.as_bytes());
    let accent = by_name("deep/h\u{e9}llo");
    assert_eq!(
        accent.pax.get("path").unwrap(),
        "deep/h\u{e9}llo".as_bytes()
    );
}

#[test]
fn the_tar_is_deterministic_whatever_the_creation_order() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    build_tree(&a, false);
    build_tree(&b, true);
    let options = LayerOptions::default();
    let first = tar_of(&a, &options);
    assert_eq!(first, tar_of(&a, &options), "two runs differ");
    assert_eq!(
        first,
        tar_of(&b, &options),
        "creation order changed the bytes"
    );
    assert_eq!(first.len() % 512, 0);
    assert!(first.ends_with(&[0u8; 1024]));
}

/// The tree of `build_tree` plus what the packer's walk treats apart:
/// empty files (never opened), xattrs on empty files, directories and
/// files with a list longer than a first small read, empty hardlinks, more
/// names in one directory than one batch of inspections, and a chain of
/// directories deeper than the levels walked through open fds.
fn build_wide_tree(root: &Path) {
    build_tree(root, false);
    let p = |rel: &str| root.join(rel);
    write_file(&p("empty"), b"", 0o600);
    rfs::lsetxattr(p("empty"), "user.e", b"1", XattrFlags::empty()).unwrap();
    write_file(&p("hardempty1"), b"", 0o644);
    fs::hard_link(p("hardempty1"), p("hardempty2")).unwrap();
    // More names than the packer inspects in one batch, of every kind.
    fs::create_dir(p("many")).unwrap();
    for i in 0..4500 {
        write_file(&p(&format!("many/f{i}")), b"", 0o644);
    }
    write_file(&p("many/padded"), &[7u8; 3000], 0o644);
    fs::hard_link(p("many/padded"), p("many/zz-hard")).unwrap();
    symlink("padded", p("many/link")).unwrap();
    rfs::mknodat(
        CWD,
        p("many/zfifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    rfs::mknodat(
        CWD,
        p("many/zgone"),
        FileType::CharacterDevice,
        Mode::empty(),
        0,
    )
    .unwrap();
    rfs::lsetxattr(p("many/f3999"), "user.half", b"2", XattrFlags::empty()).unwrap();
    for target in ["many", "many/padded", "many/f7"] {
        for i in 0..40 {
            let name = format!("user.a-long-attribute-name-to-fill-the-list-{i:02}");
            rfs::lsetxattr(p(target), name, b"v", XattrFlags::empty()).unwrap();
        }
    }
    let mut deep = p("chain");
    for _ in 0..90 {
        deep.push("d");
    }
    fs::create_dir_all(&deep).unwrap();
    write_file(&deep.join("content"), b"deep", 0o644);
    write_file(&deep.join("empty"), b"", 0o644);
    rfs::lsetxattr(deep.join("empty"), "user.deep", b"y", XattrFlags::empty()).unwrap();
    rfs::lsetxattr(
        deep.parent().unwrap(),
        "user.dir",
        b"z",
        XattrFlags::empty(),
    )
    .unwrap();
    symlink("../content", deep.join("link")).unwrap();
    fs::hard_link(deep.join("content"), p("chain/hard")).unwrap();
    fix_mtimes(root);
}

/// The layer's bytes are fixed: layer digests (and so cache hits and image
/// ids) must not move when the packer changes. The digest was taken from
/// the packer of af1729f.
#[test]
fn the_tar_bytes_are_pinned() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("upper");
    build_wide_tree(&root);
    let bytes = tar_of(&root, &LayerOptions::default());
    let digest = rbk_store::Digest::sha256_of(&bytes).to_string();
    assert_eq!(
        (digest.as_str(), bytes.len()),
        (
            "sha256:de117c530b39ac13fa7fca379b47e958e330c5200c180fdd06df9c3577cb8ab5",
            2_440_192
        )
    );
}

#[test]
fn source_date_epoch_clamps_only_later_mtimes() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("upper");
    fs::create_dir(&root).unwrap();
    write_file(&root.join("old"), b"", 0o644);
    write_file(&root.join("new"), b"", 0o644);
    set_mtime(&root.join("old"), 100);
    set_mtime(&root.join("new"), MTIME);
    let options = LayerOptions {
        source_date_epoch: Some(1000),
    };
    let seen = entries(&tar_of(&root, &options));
    let mtimes: Vec<(&str, u64)> = seen.iter().map(|s| (s.name.as_str(), s.mtime)).collect();
    assert_eq!(mtimes, [("new", 1000), ("old", 100)]);
}

/// A description of every path below `root` (type, mode, owner, mtime,
/// content or target, device, kept xattrs) for tree comparisons.
fn describe(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    describe_into(root, Path::new(""), &mut out);
    out
}

fn describe_into(root: &Path, rel: &Path, out: &mut Vec<String>) {
    let mut names: Vec<_> = fs::read_dir(root.join(rel))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let rel = rel.join(name);
        let path = root.join(&rel);
        let m = fs::symlink_metadata(&path).unwrap();
        let body = if m.is_file() {
            format!("{:?}", fs::read(&path).unwrap())
        } else if m.file_type().is_symlink() {
            format!("-> {:?}", fs::read_link(&path).unwrap())
        } else {
            String::new()
        };
        let mut xattrs = Vec::new();
        for x in ["user.note", "trusted.overlay.opaque"] {
            let mut v = [0u8; 16];
            if let Ok(n) = rfs::lgetxattr(&path, x, &mut v[..]) {
                xattrs.push(format!("{x}={:?}", &v[..n]));
            }
        }
        // Symlink mtimes depend on the unpacker, and whiteouts are recreated
        // as fresh devices: neither mtime means anything to overlayfs.
        let whiteout = m.file_type().is_char_device() && m.rdev() == 0;
        let mtime = if m.file_type().is_symlink() || whiteout {
            0
        } else {
            m.mtime()
        };
        out.push(format!(
            "{} {:o} {}:{} {} rdev={} nlink={} {} {:?}",
            rel.display(),
            m.mode(),
            m.uid(),
            m.gid(),
            mtime,
            m.rdev(),
            m.nlink(),
            body,
            xattrs
        ));
        if m.is_dir() {
            describe_into(root, &rel, out);
        }
    }
}

#[test]
fn unpacking_the_layer_gives_back_the_tree() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("upper");
    build_tree(&root, false);
    let bytes = tar_of(&root, &LayerOptions::default());
    let dest = tmp.path().join("unpacked");
    unpack_layer(&bytes[..], &dest, &UnpackOptions::default()).unwrap();
    // The origin xattr is dropped on purpose; remove it before comparing.
    rfs::lremovexattr(root.join("etc/conf"), "trusted.overlay.origin").unwrap();
    assert_eq!(describe(&root), describe(&dest));
    let ino = |p: &str| fs::metadata(dest.join(p)).unwrap().ino();
    assert_eq!(ino("hard1"), ino("hard2"), "hardlinks are kept");
}

fn store_in(tmp: &Path) -> Store {
    Store::open(&tmp.join("store")).unwrap()
}

#[test]
fn an_empty_directory_is_no_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let upper = tmp.path().join("upper");
    fs::create_dir(&upper).unwrap();
    let got = commit_layer(&store, &upper, &LayerOptions::default()).unwrap();
    assert_eq!(got, None);
    assert!(upper.is_dir(), "an empty dir is left alone");
}

#[test]
fn commit_stores_the_blob_and_the_snapshot() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let upper = tmp.path().join("upper");
    build_tree(&upper, false);
    let expected = tar_of(&upper, &LayerOptions::default());
    let layer = commit_layer(&store, &upper, &LayerOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(layer.blob.media_type, LAYER_TAR);
    assert_eq!(layer.blob.digest, layer.diff_id);
    assert_eq!(layer.diff_id, rbk_store::Digest::sha256_of(&expected));
    assert_eq!(layer.blob.size, expected.len() as u64);
    let stored = store.read_bounded(&layer.diff_id, 1 << 30).unwrap();
    assert_eq!(stored, expected);
    assert!(!upper.exists(), "the directory becomes the snapshot");
    let snapshot = store.snapshot_path(&layer.diff_id);
    assert!(snapshot.join("etc/conf").is_file());
    assert_eq!(tar_of(&snapshot, &LayerOptions::default()), expected);
}

#[test]
fn large_ids_round_trip_through_pax() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("upper");
    fs::create_dir(&root).unwrap();
    write_file(&root.join("f"), b"x", 0o644);
    rustix::fs::chown(root.join("f"), Some(uid(3_000_000)), Some(gid(7))).unwrap();
    let bytes = tar_of(&root, &LayerOptions::default());
    let seen = entries(&bytes);
    assert_eq!(seen[0].pax.get("uid").unwrap(), b"3000000");
    assert!(!seen[0].pax.contains_key("gid"));
    let dest = tmp.path().join("unpacked");
    unpack_layer(&bytes[..], &dest, &UnpackOptions::default()).unwrap();
    let m = fs::metadata(dest.join("f")).unwrap();
    assert_eq!((m.uid(), m.gid()), (3_000_000, 7));
}

#[test]
fn identical_trees_commit_to_one_layer() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    build_tree(&a, false);
    build_tree(&b, true);
    let options = LayerOptions::default();
    let first = commit_layer(&store, &a, &options).unwrap().unwrap();
    let second = commit_layer(&store, &b, &options).unwrap().unwrap();
    assert_eq!(first, second);
    assert!(!b.exists(), "the duplicate snapshot is discarded");
    assert_eq!(store.snapshots().unwrap(), vec![first.diff_id]);
}

/// A committed layer holding one 4.5 MiB file (two compression chunks).
fn big_layer(tmp: &Path, store: &Store) -> (rbk_store::Layer, Vec<u8>) {
    let upper = tmp.join("upper");
    fs::create_dir(&upper).unwrap();
    let content: Vec<u8> = (0..(9u32 << 19)).map(|i| (i % 251) as u8).collect();
    fs::write(upper.join("big"), &content).unwrap();
    let layer = commit_layer(store, &upper, &LayerOptions::default())
        .unwrap()
        .unwrap();
    let tar = store.read_bounded(&layer.diff_id, 1 << 30).unwrap();
    (layer, tar)
}

fn read_blob(store: &Store, digest: &rbk_store::Digest) -> Vec<u8> {
    store.read_bounded(digest, 1 << 30).unwrap()
}

#[test]
fn gzip_is_multi_member_reproducible_and_made_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let (layer, tar) = big_layer(tmp.path(), &store);
    let first = compress_layer(&store, &layer, Compression::Gzip).unwrap();
    assert_eq!(
        first.media_type,
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let gz = read_blob(&store, &first.digest);
    let mut all = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut all)
        .unwrap();
    assert_eq!(all, tar);
    let mut first_member = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut first_member)
        .unwrap();
    assert_eq!(first_member.len(), 4 << 20, "one member per 4 MiB chunk");

    let record = record_path(&store, &layer, "gzip");
    let written = fs::metadata(&record).unwrap().modified().unwrap();
    let second = compress_layer(&store, &layer, Compression::Gzip).unwrap();
    assert_eq!(second, first);
    let again = fs::metadata(&record).unwrap().modified().unwrap();
    assert_eq!(written, again, "the second call must reuse the record");

    // Made again from scratch (record and blob gone): the same bytes.
    fs::remove_file(&record).unwrap();
    fs::remove_file(store.blob_path(&first.digest)).unwrap();
    let third = compress_layer(&store, &layer, Compression::Gzip).unwrap();
    assert_eq!(third, first);
}

fn record_path(store: &Store, layer: &rbk_store::Layer, alg: &str) -> PathBuf {
    store
        .db_dir()
        .join("compressed")
        .join(format!("{}.{alg}", layer.diff_id.hex()))
}

#[test]
fn zstd_round_trips_and_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let (layer, tar) = big_layer(tmp.path(), &store);
    let first = compress_layer(&store, &layer, Compression::Zstd).unwrap();
    assert_eq!(
        first.media_type,
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let zst = read_blob(&store, &first.digest);
    assert_eq!(zstd::decode_all(&zst[..]).unwrap(), tar);
    fs::remove_file(record_path(&store, &layer, "zstd")).unwrap();
    fs::remove_file(store.blob_path(&first.digest)).unwrap();
    assert_eq!(
        compress_layer(&store, &layer, Compression::Zstd).unwrap(),
        first
    );
    // An already compressed layer comes back unchanged.
    let compressed = rbk_store::Layer {
        diff_id: layer.diff_id,
        blob: first.clone(),
    };
    assert_eq!(
        compress_layer(&store, &compressed, Compression::Gzip).unwrap(),
        first
    );
}

#[test]
fn overlay_redirects_are_refused() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("upper");
    fs::create_dir_all(root.join("moved")).unwrap();
    rfs::lsetxattr(
        root.join("moved"),
        "trusted.overlay.redirect",
        b"/orig",
        XattrFlags::empty(),
    )
    .unwrap();
    let err = write_layer_tar(&root, Vec::new(), &LayerOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Layer { .. }), "{err:?}");
    assert!(
        err.to_string().contains("trusted.overlay.redirect"),
        "{err}"
    );
}

#[test]
fn names_reserved_for_whiteouts_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("upper");
    fs::create_dir(&root).unwrap();
    fs::write(root.join(".wh.sneaky"), b"").unwrap();
    let err = write_layer_tar(&root, Vec::new(), &LayerOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Layer { .. }), "{err:?}");
}

/// An overlay mount, unmounted when dropped (also when a test fails).
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(self.0, rustix::mount::UnmountFlags::empty());
    }
}

fn mount_overlay<'a>(options: &str, target: &'a Path) -> Mounted<'a> {
    use rustix::mount::{mount, MountFlags};
    let data = std::ffi::CString::new(options).unwrap();
    mount(
        "overlay",
        target,
        "overlay",
        MountFlags::empty(),
        data.as_c_str(),
    )
    .unwrap_or_else(|e| panic!("mounting overlay ({options}): {e}"));
    Mounted(target)
}

/// Every path below `root`, sorted, directories with a trailing `/`.
fn listing(root: &Path) -> Vec<String> {
    describe(root)
        .iter()
        .map(|d| d.split(' ').next().unwrap().to_string())
        .collect()
}

#[test]
fn a_real_overlay_upper_dir_becomes_an_oci_layer() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let d = |n: &str| tmp.path().join(n);
    for sub in ["lower/keep", "lower/dir", "upper", "work", "merged"] {
        fs::create_dir_all(d(sub)).unwrap();
    }
    for file in ["lower/keep/a", "lower/gone", "lower/dir/x", "lower/dir/y"] {
        fs::write(d(file), file).unwrap();
    }
    let (lower, upper, work) = (d("lower"), d("upper"), d("work"));
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let merged = d("merged");
    let mounted = mount_overlay(&options, &merged);
    fs::remove_file(merged.join("gone")).unwrap();
    fs::remove_dir_all(merged.join("dir")).unwrap();
    fs::create_dir(merged.join("dir")).unwrap();
    fs::write(merged.join("dir/z"), "z").unwrap();
    fs::write(merged.join("keep/b"), "b").unwrap();
    let expected = listing(&merged);
    drop(mounted);

    let bytes = tar_of(&upper, &LayerOptions::default());
    let names: Vec<String> = entries(&bytes).into_iter().map(|s| s.name).collect();
    let want = [
        "dir/",
        "dir/.wh..wh..opq",
        "dir/z",
        ".wh.gone",
        "keep/",
        "keep/b",
    ];
    assert_eq!(names, want);

    // The layer unpacked over the same lower shows the same tree.
    let layer = d("layer");
    unpack_layer(&bytes[..], &layer, &UnpackOptions::default()).unwrap();
    let options = format!("lowerdir={}:{}", layer.display(), lower.display());
    let mounted = mount_overlay(&options, &merged);
    let got = listing(&merged);
    drop(mounted);
    assert_eq!(got, expected);
    assert_eq!(got, ["dir", "dir/z", "keep", "keep/a", "keep/b"]);
}

#[test]
fn a_committed_upper_dir_can_be_stacked_while_its_mount_lingers() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let d = |n: &str| tmp.path().join(n);
    for sub in ["lower", "upper2", "work2", "merged2"] {
        fs::create_dir_all(d(sub)).unwrap();
    }
    fs::write(d("lower/a"), "a").unwrap();
    let work = store.work_dir().unwrap();
    let view = OverlaySnapshotter.writable(&[d("lower")], &work).unwrap();
    fs::write(view.path().join("b"), "b").unwrap();
    fs::set_permissions(view.path(), fs::Permissions::from_mode(0o750)).unwrap();
    set_mtime(view.path(), MTIME);
    // An open file keeps the mount's superblock alive past the lazy
    // unmount, as a copy of the mount in another namespace does.
    let held = fs::File::open(view.path().join("b")).unwrap();
    OverlaySnapshotter.commit(view).unwrap();

    // With overlay's index feature on, a lower dir still in use as an
    // upper dir is refused (EBUSY); without it the kernel warns.
    let upper = work.upper();
    let options = format!(
        "lowerdir={}:{},upperdir={},workdir={},index=on",
        upper.display(),
        d("lower").display(),
        d("upper2").display(),
        d("work2").display()
    );
    let merged = d("merged2");
    let mounted = mount_overlay(&options, &merged);
    assert_eq!(listing(&merged), ["a", "b"]);
    drop(mounted);
    drop(held);

    // The diff and its root's owner, mode and times are what the view had.
    assert_eq!(listing(&upper), ["b"]);
    assert_eq!(fs::read(upper.join("b")).unwrap(), b"b");
    let root = fs::metadata(&upper).unwrap();
    assert_eq!(root.mode() & 0o7777, 0o750);
    assert_eq!(root.mtime(), MTIME);
}

#[test]
fn a_committed_upper_dir_keeps_whiteouts_opaque_dirs_and_symlinks() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let store = store_in(tmp.path());
    let lower = tmp.path().join("lower");
    fs::create_dir_all(lower.join("dir")).unwrap();
    fs::write(lower.join("gone"), "gone").unwrap();
    fs::write(lower.join("dir/old"), "old").unwrap();
    let work = store.work_dir().unwrap();
    let view = OverlaySnapshotter
        .writable(std::slice::from_ref(&lower), &work)
        .unwrap();
    fs::remove_file(view.path().join("gone")).unwrap();
    fs::remove_dir_all(view.path().join("dir")).unwrap();
    fs::create_dir(view.path().join("dir")).unwrap();
    fs::write(view.path().join("dir/new"), "new").unwrap();
    symlink("dir/new", view.path().join("link")).unwrap();
    OverlaySnapshotter.commit(view).unwrap();

    let upper = work.upper();
    let gone = fs::symlink_metadata(upper.join("gone")).unwrap();
    assert!(
        gone.file_type().is_char_device() && gone.rdev() == 0,
        "a whiteout"
    );
    let opaque = rfs::getxattr(upper.join("dir"), "trusted.overlay.opaque", &mut [0u8; 8]);
    assert_eq!(opaque.unwrap(), 1, "the replaced directory stays opaque");
    assert_eq!(
        fs::read_link(upper.join("link")).unwrap(),
        Path::new("dir/new")
    );
    // The layer packed from it is the same as before the new root.
    let names: Vec<String> = entries(&tar_of(&upper, &LayerOptions::default()))
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(
        names,
        ["dir/", "dir/.wh..wh..opq", "dir/new", ".wh.gone", "link"]
    );
}
