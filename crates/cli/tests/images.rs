//! `rbk import`, `images`, `tag`, `save` and `load` through the real binary,
//! each test with its own `--root` under the cargo temp dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("images-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rbk(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rbk"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("RBK_ROOT")
        .output()
        .unwrap()
}

fn ok(root: &Path, args: &[&str]) -> String {
    let out = rbk(root, args);
    assert!(
        out.status.success(),
        "rbk {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A gzip rootfs tarball with files, directories and a symlink.
fn rootfs_tarball(dir: &Path) -> PathBuf {
    let path = dir.join("rootfs.tar.gz");
    let gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    let mut b = tar::Builder::new(gz);
    let dir_header = |name: &str, b: &mut tar::Builder<_>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, name, std::io::empty()).unwrap();
    };
    dir_header("bin/", &mut b);
    dir_header("etc/", &mut b);
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(6);
    b.append_data(&mut h, "etc/hello", &b"hello\n"[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "bin/hello", "../etc/hello").unwrap();
    b.into_inner().unwrap().finish().unwrap();
    path
}

fn json_file(archive: &Path, name: &str) -> serde_json::Value {
    let mut a = tar::Archive::new(std::fs::File::open(archive).unwrap());
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        if e.path().unwrap().to_str() == Some(name) {
            return serde_json::from_reader(e).unwrap();
        }
    }
    panic!("{name} not in {}", archive.display())
}

fn import(dir: &Path, root: &Path, name: &str) -> String {
    let tarball = rootfs_tarball(dir);
    let tarball = tarball.to_str().unwrap();
    let id = ok(
        root,
        &[
            "import",
            tarball,
            name,
            "-c",
            "CMD [\"/bin/sh\"]",
            "--change",
            "ENV A=1",
            "-m",
            "hi",
        ],
    );
    id.trim().to_string()
}

#[test]
fn import_then_images_lists_it() {
    let dir = scratch("import");
    let root = dir.join("root");
    let id = import(&dir, &root, "app:1");
    assert!(id.starts_with("sha256:"), "{id}");
    let listing = ok(&root, &["images"]);
    let lines: Vec<&str> = listing.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{listing}"
    );
    assert!(lines[1].starts_with("app          1         "), "{listing}");
    assert!(lines[1].contains(&id["sha256:".len()..][..12]), "{listing}");
    assert_eq!(
        ok(&root, &["images", "-q"]).trim(),
        &id["sha256:".len()..][..12]
    );
    assert_eq!(ok(&root, &["images", "-q", "--no-trunc"]).trim(), id);
    assert!(ok(&root, &["images", "--digests"]).contains("DIGEST"));
}

#[test]
fn import_records_changes_message_and_an_uncompressed_layer() {
    let dir = scratch("import-config");
    let root = dir.join("root");
    import(&dir, &root, "cfg:latest");
    let archive = dir.join("a.tar");
    ok(&root, &["save", "-o", archive.to_str().unwrap(), "cfg"]);
    let manifest = json_file(&archive, "manifest.json");
    let config_path = manifest[0]["Config"].as_str().unwrap();
    let config = json_file(&archive, config_path);
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(config["config"]["Env"], serde_json::json!(["A=1"]));
    assert_eq!(config["history"][0]["created_by"], "rbk import");
    assert_eq!(config["history"][0]["comment"], "hi");
    let layer = manifest[0]["Layers"][0].as_str().unwrap();
    let diff_id = config["rootfs"]["diff_ids"][0].as_str().unwrap();
    assert_eq!(
        layer,
        format!("blobs/sha256/{}", &diff_id["sha256:".len()..])
    );
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!(["cfg:latest"]));
}

#[test]
fn tag_then_images_shows_both_names() {
    let dir = scratch("tag");
    let root = dir.join("root");
    import(&dir, &root, "app:1");
    ok(&root, &["tag", "app:1", "registry:5000/team/app:2"]);
    let listing = ok(&root, &["images"]);
    assert!(listing.contains("\napp "), "{listing}");
    assert!(listing.contains("registry:5000/team/app   2 "), "{listing}");
    let missing = rbk(&root, &["tag", "nope", "x"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("No such image: nope"));
}

fn round_trip(format: &str) {
    let dir = scratch(&format!("roundtrip-{format}"));
    let (a, b) = (dir.join("a"), dir.join("b"));
    let id = import(&dir, &a, "app:1");
    ok(&a, &["tag", "app:1", "app:2"]);
    let archive = dir.join("out.tar");
    let path = archive.to_str().unwrap();
    ok(
        &a,
        &["save", "--format", format, "-o", path, "app:1", "app:2"],
    );
    let loaded = ok(&b, &["load", "-i", path]);
    assert!(loaded.contains("Loaded image: app:1\n"), "{loaded}");
    assert!(loaded.contains("Loaded image: app:2\n"), "{loaded}");
    assert_eq!(ok(&b, &["images", "-q", "--no-trunc", "app:1"]).trim(), id);
    // Layer digests and the manifest survive load → save unchanged.
    let again = dir.join("again.tar");
    ok(
        &b,
        &[
            "save",
            "--format",
            format,
            "-o",
            again.to_str().unwrap(),
            "app:1",
            "app:2",
        ],
    );
    assert_eq!(
        json_file(&archive, "index.json"),
        json_file(&again, "index.json")
    );
    assert_eq!(
        ok(&a, &["images", "--digests", "--no-trunc", "-q"]),
        ok(&b, &["images", "--digests", "--no-trunc", "-q"])
    );
}

#[test]
fn docker_archive_round_trip_keeps_ids_and_digests() {
    round_trip("docker");
}

#[test]
fn oci_archive_round_trip_keeps_ids_and_digests() {
    round_trip("oci");
}

fn assert_load_fails(name: &str, bytes: &[u8], expect: &str) {
    let dir = scratch(name);
    let root = dir.join("root");
    let bad = dir.join("bad.tar");
    std::fs::write(&bad, bytes).unwrap();
    let out = rbk(&root, &["load", "-i", bad.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{name}: load succeeded");
    assert!(stderr.contains(expect), "{name}: {stderr}");
    assert!(stderr.contains("no image was tagged"), "{name}: {stderr}");
    assert_eq!(
        ok(&root, &["images", "-q"]),
        "",
        "{name}: a tag was created"
    );
}

#[test]
fn load_of_a_bad_archive_fails_clearly_and_tags_nothing() {
    let dir = scratch("bad-source");
    let root = dir.join("root");
    import(&dir, &root, "app:1");
    let archive = dir.join("good.tar");
    ok(&root, &["save", "-o", archive.to_str().unwrap(), "app:1"]);
    let good = std::fs::read(&archive).unwrap();

    assert_load_fails("truncated", &good[..good.len() / 2], "truncated");
    assert_load_fails("empty", b"", "invalid image archive");
    assert_load_fails("not-a-tar", &[b'x'; 2000], "invalid image archive");

    // Flip one byte inside the layer blob: its digest no longer matches.
    let layer = json_file(&archive, "manifest.json")[0]["Layers"][0]
        .as_str()
        .unwrap()
        .to_string();
    let hello = good.windows(6).position(|w| w == b"hello\n").unwrap();
    let mut corrupt = good.clone();
    corrupt[hello] = b'J';
    assert_load_fails("corrupt", &corrupt, "digest mismatch");
    assert!(layer.starts_with("blobs/sha256/"));

    // A manifest.json naming a blob that is not in the archive.
    let mut b = tar::Builder::new(Vec::new());
    let doc = br#"[{"Config":"blobs/sha256/00.json","RepoTags":["x:1"],"Layers":[]}]"#;
    let mut h = tar::Header::new_gnu();
    h.set_size(doc.len() as u64);
    h.set_mode(0o644);
    b.append_data(&mut h, "manifest.json", &doc[..]).unwrap();
    assert_load_fails(
        "missing",
        &b.into_inner().unwrap(),
        "missing from the archive",
    );
}

#[test]
fn import_of_a_non_tar_fails_and_tags_nothing() {
    let dir = scratch("import-bad");
    let root = dir.join("root");
    let bad = dir.join("bad.tar");
    std::fs::write(&bad, vec![b'x'; 3000]).unwrap();
    let out = rbk(&root, &["import", bad.to_str().unwrap(), "bad:1"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("rootfs tarball"), "{stderr}");
    let out = rbk(
        &root,
        &["import", bad.to_str().unwrap(), "x", "-c", "RUN true"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not supported"));
    assert_eq!(ok(&root, &["images", "-q"]), "");
}
