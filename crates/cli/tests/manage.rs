//! Image management through the real binary: rmi, inspect, history,
//! system df/verify, prune, concurrency and SIGKILL safety of `load`,
//! decompression bombs, and skopeo/umoci acceptance of what rbk writes.
//! Each test has its own `--root` under the cargo temp dir; the base image
//! is made with `rbk import` from Debian's /usr/bin/busybox.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("manage-{name}"));
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
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(root: &Path, args: &[&str]) -> String {
    let out = rbk(root, args);
    assert!(
        out.status.success(),
        "rbk {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(root: &Path, args: &[&str]) -> String {
    let out = rbk(root, args);
    assert!(!out.status.success(), "rbk {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A tar of /usr/bin/busybox as /bin/busybox with a `sh` link, plus
/// `extra` bytes at /data when given.
fn busybox_tar(dir: &Path, name: &str, extra: Option<&[u8]>) -> PathBuf {
    let path = dir.join(name);
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    b.mode(tar::HeaderMode::Deterministic);
    let busybox = std::fs::read("/usr/bin/busybox").expect("busybox-static must be installed");
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o755);
    h.set_size(busybox.len() as u64);
    b.append_data(&mut h, "bin/busybox", &busybox[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "bin/sh", "busybox").unwrap();
    if let Some(extra) = extra {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(extra.len() as u64);
        b.append_data(&mut h, "data", extra).unwrap();
    }
    b.into_inner().unwrap().flush().unwrap();
    path
}

/// Imports `tarball` as `name`; returns the image id.
fn import(root: &Path, tarball: &Path, name: &str, message: &str) -> String {
    let t = tarball.to_str().unwrap();
    ok(root, &["import", t, name, "-c", "ENV A=1", "-m", message])
        .trim()
        .to_string()
}

fn blobs(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn inspect(root: &Path, name: &str) -> serde_json::Value {
    let out: serde_json::Value = serde_json::from_str(&ok(root, &["inspect", name])).unwrap();
    out[0].clone()
}

fn layer_of(root: &Path, name: &str) -> String {
    let doc = inspect(root, name);
    let layer = doc["RootFS"]["Layers"][0].as_str().unwrap();
    layer.strip_prefix("sha256:").unwrap().to_string()
}

#[test]
fn rmi_untags_then_deletes_only_unshared_blobs() {
    let dir = scratch("rmi");
    let root = dir.join("root");
    let tar = busybox_tar(&dir, "bb.tar", None);
    let a = import(&root, &tar, "a:1", "a");
    ok(&root, &["tag", "a:1", "a:2"]);
    let b = import(&root, &tar, "b", "b");
    assert_ne!(a, b, "different configs, same layer");
    let layer = layer_of(&root, "a:1");
    assert_eq!(layer, layer_of(&root, "b"));

    assert_eq!(ok(&root, &["rmi", "a:1"]), "Untagged: a:1\n");
    let out = ok(&root, &["rmi", "a:2"]);
    assert!(
        out.starts_with(&format!("Untagged: a:2\nDeleted: {a}\n")),
        "{out}"
    );
    assert!(
        !out.contains(&layer),
        "the shared layer must survive: {out}"
    );
    assert!(blobs(&root).contains(&layer));
    assert!(!blobs(&root).contains(&a[7..].to_string()));

    let out = ok(&root, &["rmi", "b"]);
    assert!(out.contains(&format!("Deleted: sha256:{layer}")), "{out}");
    assert!(blobs(&root).is_empty(), "{:?}", blobs(&root));
    assert!(ok(&root, &["images", "-q"]).is_empty());

    let err = fails(&root, &["rmi", "nosuch"]);
    assert!(err.contains("No such image: nosuch"), "{err}");
}

#[test]
fn rmi_by_id_needs_force_across_repositories() {
    let dir = scratch("rmi-id");
    let root = dir.join("root");
    let tar = busybox_tar(&dir, "bb.tar", None);
    let id = import(&root, &tar, "x", "x");
    ok(&root, &["tag", "x", "y:1"]);
    let short = &id[7..19];
    let err = fails(&root, &["rmi", short]);
    assert!(
        err.contains(&format!("unable to delete {short} (must be forced) - image is referenced in multiple repositories")),
        "{err}"
    );
    let out = ok(&root, &["rmi", "-f", short]);
    assert!(
        out.contains("Untagged: x:latest\nUntagged: y:1\nDeleted: "),
        "{out}"
    );
    assert!(blobs(&root).is_empty());
}

#[test]
fn inspect_shows_docker_fields_and_formats() {
    let dir = scratch("inspect");
    let root = dir.join("root");
    let tar = busybox_tar(&dir, "bb.tar", None);
    let id = import(&root, &tar, "app:1", "hello");
    let doc = inspect(&root, "app:1");
    assert_eq!(doc["Id"], id.as_str());
    assert_eq!(doc["RepoTags"], serde_json::json!(["app:1"]));
    assert_eq!(doc["RepoDigests"], serde_json::json!([]));
    assert_eq!(doc["Parent"], "");
    assert_eq!(doc["Os"], "linux");
    assert_eq!(doc["Config"]["Env"], serde_json::json!(["A=1"]));
    assert_eq!(doc["RootFS"]["Type"], "layers");
    assert_eq!(doc["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert!(doc["Size"].as_u64().unwrap() > 1_000_000);
    assert!(doc["Created"].as_str().unwrap().ends_with('Z'));
    assert!(doc["Metadata"]["LastTagTime"].is_string());
    // By short id too, and with a template.
    let out = ok(
        &root,
        &[
            "inspect",
            "-f",
            "{{.Id}} {{.Config.Env}} {{json .RepoTags}}",
            &id[7..19],
        ],
    );
    assert_eq!(out, format!("{id} [A=1] [\"app:1\"]\n"));
    let err = fails(&root, &["inspect", "app:1", "nosuch"]);
    assert!(err.contains("No such image: nosuch"), "{err}");
}

#[test]
fn history_lists_steps_newest_first() {
    let dir = scratch("history");
    let root = dir.join("root");
    let tar = busybox_tar(&dir, "bb.tar", None);
    let id = import(&root, &tar, "app", "the message");
    let out = ok(&root, &["history", "app"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("IMAGE"), "{out}");
    for column in ["CREATED", "CREATED BY", "SIZE", "COMMENT"] {
        assert!(lines[0].contains(column), "{out}");
    }
    assert!(lines[1].starts_with(&id[7..19]), "{out}");
    assert!(
        lines[1].contains("rbk import") && lines[1].ends_with("the message"),
        "{out}"
    );
    let size = std::fs::metadata(&tar).unwrap().len();
    assert!(
        lines[1].contains(&format!("{:.2}MB", size as f64 / 1e6)),
        "{out}"
    );
    assert_eq!(
        ok(&root, &["history", "-q", "--no-trunc", "app"]),
        format!("{id}\n")
    );
    let out = ok(
        &root,
        &[
            "history",
            "--format",
            "{{.ID}}|{{.CreatedBy}}|{{.Comment}}",
            "app",
        ],
    );
    assert_eq!(out, format!("{}|rbk import|the message\n", &id[7..19]));
}

fn df_row<'a>(out: &'a str, kind: &str) -> Vec<&'a str> {
    let line = out.lines().find(|l| l.starts_with(kind)).unwrap();
    line[kind.len()..].split_whitespace().collect()
}

#[test]
fn system_df_counts_a_shared_layer_once() {
    let dir = scratch("df");
    let root = dir.join("root");
    let tar = busybox_tar(&dir, "bb.tar", None);
    import(&root, &tar, "a", "a");
    import(&root, &tar, "b", "b");
    let layer = std::fs::metadata(&tar).unwrap().len();
    let total: u64 = blobs(&root)
        .iter()
        .map(|b| {
            std::fs::metadata(root.join("blobs/sha256").join(b))
                .unwrap()
                .len()
        })
        .sum();
    assert!(total < 2 * layer, "the layer is stored once");
    let out = ok(&root, &["system", "df"]);
    let images = df_row(&out, "Images");
    // ACTIVE counts images a container uses: none. Sizes are uncompressed
    // layer sizes, the shared layer once; all of it is reclaimable.
    let size = format!("{:.3}MB", layer as f64 / 1e6);
    assert_eq!(
        images,
        ["2", "0", size.as_str(), size.as_str(), "(100%)"],
        "{out}"
    );
    assert_eq!(df_row(&out, "Containers"), ["0", "0", "0B", "0B"]);
    let out = ok(&root, &["system", "df", "-v"]);
    let shared = format!("{:.3}MB", layer as f64 / 1e6);
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("a ") || l.starts_with("b "))
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    for row in rows {
        let cells: Vec<&str> = row
            .split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(cells[cells.len() - 3], shared, "SHARED SIZE: {out}");
    }
}

/// Writes a cache record for an uncompressed layer, and the layer's
/// snapshot (a record without its snapshot is unusable, so pruned).
fn cache_record(root: &Path, key_hex: &str, layer_hex: &str) {
    std::fs::create_dir_all(root.join("snapshots").join(layer_hex)).unwrap();
    let size = std::fs::metadata(root.join("blobs/sha256").join(layer_hex))
        .unwrap()
        .len();
    let digest = format!("sha256:{layer_hex}");
    let record = serde_json::json!({
        "layers": [{"diff_id": digest, "blob": {
            "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size}}],
        "last_used": 1, "description": "RUN test",
    });
    std::fs::create_dir_all(root.join("db/cache")).unwrap();
    std::fs::write(
        root.join(format!("db/cache/{key_hex}.json")),
        record.to_string(),
    )
    .unwrap();
}

#[test]
fn prune_removes_dangling_cache_unreferenced_blobs_and_leftovers() {
    let dir = scratch("prune");
    let root = dir.join("root");
    let gone = import(&root, &busybox_tar(&dir, "x.tar", Some(b"x")), "x", "x");
    import(&root, &busybox_tar(&dir, "y.tar", Some(b"y")), "y", "y");
    let (lx, ly) = (layer_of(&root, "x"), layer_of(&root, "y"));
    cache_record(&root, &"1".repeat(64), &lx);
    cache_record(&root, &"2".repeat(64), &ly);
    // The cache record keeps x's layer alive through rmi.
    let out = ok(&root, &["rmi", "x"]);
    assert!(
        out.contains(&format!("Deleted: {gone}")) && !out.contains(&lx),
        "{out}"
    );
    std::fs::write(root.join("ingest/tmp-leftover"), b"half a blob").unwrap();

    let err = fails(&root, &["prune"]);
    assert!(err.contains("pass -f"), "{err}");
    let out = ok(&root, &["prune", "-f"]);
    assert!(
        out.contains(&format!("Deleted: cache sha256:{}", "1".repeat(64))),
        "{out}"
    );
    assert!(out.contains(&format!("Deleted: sha256:{lx}")), "{out}");
    assert!(
        !out.contains(&ly),
        "y's record is backed by an image: {out}"
    );
    assert!(
        out.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("Total reclaimed space: "),
        "{out}"
    );
    assert!(!blobs(&root).contains(&lx));
    assert!(!root.join("ingest/tmp-leftover").exists());
    assert!(!root.join("snapshots").join(&lx).exists());
    assert!(root.join("snapshots").join(&ly).exists());

    let out = ok(&root, &["prune", "-a", "-f"]);
    assert!(
        out.contains(&format!("Deleted: cache sha256:{}", "2".repeat(64))),
        "{out}"
    );
    assert!(blobs(&root).contains(&ly), "y still uses it");
    ok(&root, &["system", "verify"]);
}

#[test]
fn verify_passes_then_names_a_flipped_blob() {
    let dir = scratch("verify");
    let root = dir.join("root");
    import(&root, &busybox_tar(&dir, "bb.tar", None), "app", "m");
    assert!(ok(&root, &["system", "verify"]).contains("verified 3 blobs, 1 images"));
    let layer = root.join("blobs/sha256").join(layer_of(&root, "app"));
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[1000] ^= 1;
    std::fs::set_permissions(&layer, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&layer, bytes).unwrap();
    let out = rbk(&root, &["system", "verify"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{}: content hashes to", layer.display())),
        "{stdout}"
    );
}

#[test]
fn concurrent_loads_of_overlapping_archives_leave_a_valid_store() {
    let dir = scratch("concurrent");
    let src = dir.join("src");
    let tar = busybox_tar(&dir, "bb.tar", None);
    import(&src, &tar, "a", "a");
    import(&src, &busybox_tar(&dir, "b.tar", Some(b"b")), "b", "b");
    let archives = [dir.join("a.tar"), dir.join("ab.tar")];
    ok(&src, &["save", "-o", archives[0].to_str().unwrap(), "a"]);
    ok(
        &src,
        &["save", "-o", archives[1].to_str().unwrap(), "a", "b"],
    );
    let root = dir.join("root");
    let children: Vec<_> = (0..8)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_rbk"))
                .arg("--root")
                .arg(&root)
                .args(["load", "-q", "-i"])
                .arg(&archives[i % 2])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    ok(&root, &["system", "verify"]);
    assert_eq!(ok(&root, &["images", "-q"]).lines().count(), 2);
}

/// `rmi` and `prune` empty the store's trash without the GC lock, so two of
/// them at once both list the same entries. The 2026-12-06 concurrency
/// soak's `prune` failed "deleting <root>/trash/t-…: No such file or
/// directory" beside an `rmi` that had deleted the entry first.
#[test]
fn concurrent_rmi_and_prune_empty_the_trash_together() {
    let dir = scratch("trash-race");
    let root = dir.join("root");
    import(&root, &busybox_tar(&dir, "bb.tar", None), "base", "base");
    let tags: Vec<String> = (0..8).map(|i| format!("t{i}:latest")).collect();
    for tag in &tags {
        ok(&root, &["tag", "base", tag]);
    }
    // What killed and finished builds leave there: work dirs of files.
    for i in 0..300 {
        let work = root.join(format!("trash/t-work{i}/upper"));
        std::fs::create_dir_all(&work).unwrap();
        for j in 0..20 {
            std::fs::write(work.join(format!("f{j}")), b"x").unwrap();
        }
    }
    let spawn = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rbk"))
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut children: Vec<_> = tags.iter().map(|t| spawn(&["rmi", t])).collect();
    children.push(spawn(&["prune", "-f"]));
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // No emptied-trash check: one process empties it at a time, within a
    // budget, and the others leave the rest to a later command.
    assert_eq!(ok(&root, &["images", "-q"]).lines().count(), 1);
    ok(&root, &["system", "verify"]);
}

/// Incompressible pseudo-random bytes (xorshift), so the archive is big on disk.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn load_killed_at_random_instants_never_corrupts_the_store() {
    let dir = scratch("sigkill");
    let src = dir.join("src");
    import(
        &src,
        &busybox_tar(&dir, "big.tar", Some(&noise(48 << 20))),
        "big",
        "m",
    );
    let archive = dir.join("big-archive.tar");
    ok(&src, &["save", "-o", archive.to_str().unwrap(), "big"]);
    let root = dir.join("root");
    for round in 0..20 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rbk"))
            .arg("--root")
            .arg(&root)
            .args(["load", "-q", "-i"])
            .arg(&archive)
            .spawn()
            .unwrap();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        std::thread::sleep(Duration::from_millis(u64::from(nanos % 400) + round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Every blob hashes to its name, and any tag points at whole content.
        ok(&root, &["system", "verify"]);
    }
    ok(&root, &["load", "-q", "-i", archive.to_str().unwrap()]);
    ok(&root, &["system", "verify"]);
    ok(&root, &["prune", "-f"]);
    let leftovers: Vec<_> = std::fs::read_dir(root.join("ingest")).unwrap().collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(inspect(&root, "big")["Id"], inspect(&src, "big")["Id"]);
}

/// A zstd stream of a tar holding one `size`-byte file of zeros, built from
/// one compressed 64 MiB frame repeated: about 1 MB that expands to `size`.
fn zstd_bomb(size: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_path("zeros").unwrap();
    header.set_mode(0o644);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    let mut out = zstd::encode_all(&header.as_bytes()[..], 1).unwrap();
    let chunk = 64u64 << 20;
    let frame = zstd::encode_all(std::io::repeat(0).take(chunk), 1).unwrap();
    for _ in 0..size / chunk {
        out.extend_from_slice(&frame);
    }
    out
}

use std::io::Read as _;

/// A docker-archive at `path` of one image `bomb:latest` whose one layer is
/// `layer`, with `diff_id` in its config.
fn docker_archive(path: &Path, layer: Vec<u8>, diff_id: &str) {
    let config = serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]}});
    let manifest = serde_json::json!([{"Config": "config.json", "RepoTags": ["bomb:latest"],
        "Layers": ["layer.tar"]}]);
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in [
        ("config.json", config.to_string().into_bytes()),
        ("layer.tar", layer),
        ("manifest.json", manifest.to_string().into_bytes()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        b.append_data(&mut h, name, &bytes[..]).unwrap();
    }
    b.into_inner().unwrap().flush().unwrap();
}

#[test]
fn decompression_bombs_are_stopped_by_a_limit_and_tag_nothing() {
    let dir = scratch("bomb");
    let root = dir.join("root");
    let bomb = zstd_bomb(10 << 30);
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    let path = dir.join("bomb.tar.zst");
    std::fs::write(&path, &bomb).unwrap();
    let err = fails(&root, &["import", path.to_str().unwrap(), "bomb"]);
    assert!(err.contains("decompression bomb"), "{err}");

    // The same bomb as a layer of a docker-archive.
    let archive = dir.join("bomb-archive.tar");
    docker_archive(&archive, bomb, &format!("sha256:{}", "0".repeat(64)));
    let err = fails(&root, &["load", "-i", archive.to_str().unwrap()]);
    assert!(err.contains("decompression bomb"), "{err}");
    assert!(ok(&root, &["images", "-q"]).is_empty());

    // Under the total limit, the expansion ratio stops a bomb on every
    // route: ADD from the context and import alike.
    let small = zstd_bomb(3 << 30);
    let ctx = dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("bomb.tar.zst"), &small).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nADD bomb.tar.zst /\n").unwrap();
    let err = fails(
        &root,
        &[
            "build",
            "--progress=plain",
            "-t",
            "bomb",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(err.contains("expands more than"), "{err}");
    let err = fails(
        &root,
        &["import", ctx.join("bomb.tar.zst").to_str().unwrap(), "bomb"],
    );
    assert!(err.contains("expands more than"), "{err}");
    assert!(ok(&root, &["images", "-q"]).is_empty());
    ok(&root, &["system", "verify"]);

    // A GNU sparse file: a few KB of tar describing 8 GiB of zeros. Files
    // count at their logical size, so the same ratio stops it.
    let src = dir.join("sparse-src");
    std::fs::create_dir_all(&src).unwrap();
    let zeros = std::fs::File::create(src.join("zeros")).unwrap();
    zeros.set_len(8 << 30).unwrap();
    let sparse_ctx = dir.join("sparse-ctx");
    std::fs::create_dir_all(&sparse_ctx).unwrap();
    let sparse = sparse_ctx.join("sparse.tar");
    let tar = Command::new("tar")
        .args(["--sparse", "--format=gnu", "-cf"])
        .arg(&sparse)
        .arg("-C")
        .arg(&src)
        .arg("zeros")
        .output()
        .unwrap();
    assert!(tar.status.success(), "{tar:?}");
    let size = std::fs::metadata(&sparse).unwrap().len();
    assert!(size < 1 << 20, "GNU tar wrote {size} bytes");
    std::fs::write(
        sparse_ctx.join("Dockerfile"),
        "FROM scratch\nADD sparse.tar /\n",
    )
    .unwrap();
    let err = fails(
        &root,
        &[
            "build",
            "--progress=plain",
            "-t",
            "sparse",
            sparse_ctx.to_str().unwrap(),
        ],
    );
    assert!(err.contains("sparse file"), "{err}");
    // import and load unpack the layer as they take it: refused there,
    // not at the first build.
    let err = fails(&root, &["import", sparse.to_str().unwrap(), "sparse"]);
    assert!(err.contains("sparse file"), "{err}");
    let bytes = std::fs::read(&sparse).unwrap();
    let diff_id = format!(
        "sha256:{:x}",
        <sha2::Sha256 as sha2::Digest>::digest(&bytes)
    );
    let archive = dir.join("sparse-archive.tar");
    docker_archive(&archive, bytes, &diff_id);
    let err = fails(&root, &["load", "-i", archive.to_str().unwrap()]);
    assert!(err.contains("sparse file"), "{err}");
    assert!(ok(&root, &["images", "-q"]).is_empty());
    ok(&root, &["system", "verify"]);
}

fn tool(name: &str) -> &'static str {
    let found = ["/usr/bin", "/usr/sbin", "/usr/local/bin"]
        .iter()
        .any(|d| Path::new(d).join(name).is_file());
    assert!(
        found,
        "{name} is not installed: these acceptance tests need it (`cargo xtask ci` installs it)"
    );
    match name {
        "skopeo" => "skopeo",
        _ => "umoci",
    }
}

fn run_tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(tool(program)).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn skopeo_layers(transport: &str) -> serde_json::Value {
    let out = run_tool("skopeo", &["inspect", "--raw", transport]);
    let manifest: serde_json::Value = serde_json::from_str(&out).unwrap();
    let digests: Vec<_> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].clone())
        .collect();
    serde_json::Value::Array(digests)
}

#[test]
fn skopeo_and_umoci_accept_archives_and_the_store() {
    let dir = scratch("skopeo");
    let root = dir.join("root");
    import(&root, &busybox_tar(&dir, "bb.tar", None), "app:1", "m");
    let docker = dir.join("app-docker.tar");
    let oci = dir.join("app-oci.tar");
    ok(&root, &["save", "-o", docker.to_str().unwrap(), "app:1"]);
    ok(
        &root,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            oci.to_str().unwrap(),
            "app:1",
        ],
    );
    let docker_ref = format!("docker-archive:{}", docker.display());
    let inspected: serde_json::Value =
        serde_json::from_str(&run_tool("skopeo", &["inspect", &docker_ref])).unwrap();
    assert_eq!(inspected["Os"], "linux");
    let layers = skopeo_layers(&docker_ref);
    let copy = dir.join("copy");
    run_tool(
        "skopeo",
        &["copy", &docker_ref, &format!("oci:{}:app", copy.display())],
    );
    run_tool(
        "skopeo",
        &["inspect", &format!("oci-archive:{}", oci.display())],
    );
    assert_eq!(
        skopeo_layers(&format!("oci-archive:{}", oci.display())),
        layers
    );

    // Layer digests survive load → save.
    let other = dir.join("other");
    ok(&other, &["load", "-i", docker.to_str().unwrap()]);
    let again = dir.join("again.tar");
    ok(&other, &["save", "-o", again.to_str().unwrap(), "app:1"]);
    assert_eq!(
        skopeo_layers(&format!("docker-archive:{}", again.display())),
        layers
    );

    // The store itself is an OCI layout.
    let listed = run_tool("umoci", &["ls", "--layout", root.to_str().unwrap()]);
    assert!(listed.contains("docker.io/library/app:1"), "{listed}");
    let store_ref = format!("oci:{}:docker.io/library/app:1", root.display());
    assert_eq!(skopeo_layers(&store_ref), layers);
}
