//! More `rbk build` end to end: ADD, heredocs, RUN mounts, every output
//! type, reproducibility, parallel stages, image metadata, bad input and
//! recovery after a killed build. Same setup as `build.rs`: root, runc and
//! /usr/bin/busybox, one store per test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod support;

use support::{
    build, build_args, command, config, context, export, file, header, ok, stderr, stdout, store,
    store_named,
};

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("more-{name}"))
}

/// Whether `rbk images` lists `repo`.
fn tagged(root: &Path, repo: &str) -> bool {
    let list = stdout(&ok(root, &["images"]));
    list.lines()
        .any(|l| l.split_whitespace().next() == Some(repo))
}

/// Mount points (field 5 of mountinfo) under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let prefix = dir.to_str().unwrap();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn add_extracts_local_archives_and_copies_plain_files() {
    let dir = scratch("add");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox\nADD bundle.tar.gz /opt/\nADD plain.txt /plain.txt\n",
            ),
            ("plain.txt", "plain\n"),
        ],
    );
    let gz = flate2::write::GzEncoder::new(
        fs::File::create(ctx.join("bundle.tar.gz")).unwrap(),
        flate2::Compression::default(),
    );
    let mut b = tar::Builder::new(gz);
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, "pkg/", std::io::empty()).unwrap();
    file(&mut b, "pkg/inside.txt", 0o644, b"inside\n");
    b.into_inner().unwrap().finish().unwrap();
    let out = export(&root, &ctx, &dir, &[]);
    assert_eq!(
        fs::read_to_string(out.join("opt/pkg/inside.txt")).unwrap(),
        "inside\n"
    );
    assert!(
        !out.join("opt/bundle.tar.gz").exists(),
        "the archive itself is not copied"
    );
    assert_eq!(
        fs::read_to_string(out.join("plain.txt")).unwrap(),
        "plain\n"
    );
}

#[test]
fn heredocs_run_scripts_and_write_files() {
    let dir = scratch("heredoc");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\n\
             RUN <<EOF\n\
             echo one > /h1\n\
             echo two >> /h1\n\
             EOF\n\
             COPY <<EOF /file\n\
             hello\n\
             world\n\
             EOF\n",
        )],
    );
    let out = export(&root, &ctx, &dir, &[]);
    assert_eq!(fs::read_to_string(out.join("h1")).unwrap(), "one\ntwo\n");
    assert_eq!(
        fs::read_to_string(out.join("file")).unwrap(),
        "hello\nworld\n"
    );
}

#[test]
fn cache_mounts_persist_across_builds_and_stay_out_of_the_image() {
    let dir = scratch("cache-mount");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\n\
             RUN --mount=type=cache,target=/cache \
             if [ -f /cache/mark ]; then cp /cache/mark /seen; fi; echo x >> /cache/mark\n",
        )],
    );
    let first = export(&root, &ctx, &dir, &["--no-cache"]);
    assert!(!first.join("seen").exists(), "the cache starts empty");
    assert!(!first.join("cache/mark").exists(), "cache contents leaked");
    let second = export(&root, &ctx, &dir, &["--no-cache"]);
    assert_eq!(fs::read_to_string(second.join("seen")).unwrap(), "x\n");
    assert!(!second.join("cache/mark").exists(), "cache contents leaked");

    // `prune -a` drops cache-mount contents, as `builder prune --all` does;
    // a plain prune keeps them.
    let prune = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rbk"))
            .arg("--root")
            .arg(&root)
            .arg("prune")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "prune: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(!prune(&["-f"]).contains("cache-mounts/"));
    let third = export(&root, &ctx, &dir, &["--no-cache"]);
    assert_eq!(fs::read_to_string(third.join("seen")).unwrap(), "x\nx\n");
    assert!(prune(&["-a", "-f"]).contains("Deleted: cache-mounts/"));
    assert!(!root.join("cache-mounts").exists());
    let fourth = export(&root, &ctx, &dir, &["--no-cache"]);
    assert!(
        !fourth.join("seen").exists(),
        "the cache starts empty again"
    );
}

#[test]
fn bind_mounts_read_the_context_and_leave_no_mountpoint() {
    let dir = scratch("bind-mount");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox\nRUN --mount=type=bind,source=x,target=/mnt cat /mnt > /got\n",
            ),
            ("x", "from context\n"),
        ],
    );
    let out = export(&root, &ctx, &dir, &[]);
    assert_eq!(
        fs::read_to_string(out.join("got")).unwrap(),
        "from context\n"
    );
    assert!(!out.join("mnt").exists(), "/mnt left in the image");
}

/// A8 and A9 of security.md: a bind source of `../..` and one symlinked to
/// `/` (mounted rw) resolve inside the stage they name; mount targets
/// under a symlink (to a host path, to a dir of the root) are made inside
/// the root. Nothing is written on the host and no stub is left in the
/// image.
#[test]
fn bind_sources_and_targets_through_links_stay_inside_the_root() {
    let dir = scratch("bind-links");
    let root = store(&dir);
    let host = dir.join("host");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("marker"), "host\n").unwrap();
    let host = host.display();
    let dockerfile = format!(
        "FROM rbk-busybox AS src\n\
         RUN mkdir /s && echo inside > /s/marker && ln -s / /s/root\n\
         FROM rbk-busybox\n\
         RUN --mount=type=bind,from=src,source=../..,target=/m cat /m/s/marker > /dotdot\n\
         RUN --mount=type=bind,from=src,source=s/root,target=/m,rw \
         sh -c 'cat /m/s/marker > /viaroot && echo x > /m/rbk-a8-written'\n\
         RUN --mount=type=bind,source=../..,target=/c cat /c/f > /ctx\n\
         RUN mkdir /real && ln -s {host} /link && ln -s /real /inner\n\
         RUN --mount=type=bind,source=f,target=/link/m cat /link/m > /underlink\n\
         RUN --mount=type=bind,source=f,target=/inner/m cat /inner/m > /underinner\n"
    );
    let ctx = context(&dir, &[("Dockerfile", &dockerfile), ("f", "context\n")]);
    let out = export(&root, &ctx, &dir, &[]);
    let read = |name: &str| fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("dotdot"), "inside\n");
    assert_eq!(read("viaroot"), "inside\n");
    assert_eq!(read("ctx"), "context\n");
    assert_eq!(read("underlink"), "context\n");
    assert_eq!(read("underinner"), "context\n");
    // The rw write went to the mount's scratch copy: not the host's root, not
    // the image, not the stage.
    assert!(!Path::new("/rbk-a8-written").exists());
    assert!(!out.join("rbk-a8-written").exists());
    let host = dir.join("host");
    let on_host: Vec<_> = fs::read_dir(&host)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(on_host, ["marker"], "a mount target was made on the host");
    assert!(!out.join("m").exists() && !out.join("c").exists());
    // The stubs of targets under links were made at the resolved paths and
    // removed from there (before, they were looked for at the lexical path
    // and stayed in the layer).
    assert_eq!(fs::read_dir(out.join("real")).unwrap().count(), 0);
    assert!(!out.join("work").exists(), "the stub of /link/m was left");
}

/// The manifest skopeo reads from `transport` (`--raw`: this skopeo is too
/// old to report `LayersData`).
fn skopeo_inspect(transport: &str) -> Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", transport])
        .output()
        .expect("skopeo is installed");
    assert!(
        out.status.success(),
        "skopeo inspect {transport}: {}",
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Each member of a tarball: manifest.json whole, others' first bytes.
fn archive_member_heads(path: &Path) -> std::collections::HashMap<String, Vec<u8>> {
    let mut heads = std::collections::HashMap::new();
    let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        let limit = if name == "manifest.json" { u64::MAX } else { 2 };
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut entry, limit), &mut data).unwrap();
        heads.insert(name, data);
    }
    heads
}

const GZIP_TYPES: [&str; 2] = [
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.v1.tar+gzip",
];

#[test]
fn archive_outputs_are_readable_by_skopeo_and_ids_agree() {
    let dir = scratch("outputs");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox\nCOPY hello.txt /hello.txt\n",
            ),
            ("hello.txt", "hello\n"),
        ],
    );
    let (docker, oci, tarball) = (dir.join("d.tar"), dir.join("o.tar"), dir.join("t.tar"));
    let iid = dir.join("iid");
    let specs = [
        format!("type=docker,dest={}", docker.display()),
        format!("type=oci,dest={}", oci.display()),
        format!("type=tar,dest={}", tarball.display()),
    ];
    let iid_arg = iid.to_str().unwrap();
    let mut extra = vec!["-q", "-t", "outs:1", "--iidfile", iid_arg];
    for spec in &specs {
        extra.extend(["--output", spec.as_str()]);
    }
    let result = build(&root, &ctx, &extra);
    assert!(result.status.success(), "{}", stderr(&result));
    let printed = stdout(&result).trim().to_string();
    assert!(
        printed.starts_with("sha256:"),
        "-q prints the id: {printed:?}"
    );
    assert_eq!(fs::read_to_string(&iid).unwrap().trim(), printed);
    let inspected = stdout(&ok(&root, &["inspect", "-f", "{{.Id}}", "outs:1"]));
    assert_eq!(inspected.trim(), printed);
    let listed = stdout(&ok(&root, &["images", "--no-trunc", "-q"]));
    assert!(listed.lines().any(|l| l.trim() == printed), "{listed}");

    for transport in [
        format!("docker-archive:{}", docker.display()),
        format!("oci-archive:{}", oci.display()),
    ] {
        let info = skopeo_inspect(&transport);
        let layers = info["layers"].as_array().expect("layers");
        assert_eq!(layers.len(), 2, "{transport}: {info}");
        for layer in layers {
            let mime = layer["mediaType"].as_str().unwrap_or_default();
            assert!(GZIP_TYPES.contains(&mime), "{transport}: {mime}");
        }
    }
    // skopeo names every docker-archive layer gzip whatever it holds: check
    // the layer files themselves start with gzip's magic.
    let gzipped = archive_member_heads(&docker);
    let manifest: Value = serde_json::from_slice(&gzipped["manifest.json"]).unwrap();
    for layer in manifest[0]["Layers"].as_array().unwrap() {
        let head = &gzipped[layer.as_str().unwrap()];
        assert!(head.starts_with(&[0x1f, 0x8b]), "{layer} is not gzip");
    }

    let mut names = Vec::new();
    let mut hello = String::new();
    let mut archive = tar::Archive::new(fs::File::open(&tarball).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name.trim_start_matches("./") == "hello.txt" {
            std::io::Read::read_to_string(&mut entry, &mut hello).unwrap();
        }
        names.push(name);
    }
    assert_eq!(hello, "hello\n", "{names:?}");
    assert!(
        names
            .iter()
            .any(|n| n.trim_start_matches("./") == "bin/busybox"),
        "{names:?}"
    );
}

#[test]
fn source_date_epoch_makes_builds_reproducible_across_stores() {
    let dir = scratch("repro");
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox\n\
                 COPY a.txt /a.txt\n\
                 RUN echo made > /made && mkdir -p /d && touch /d/f\n\
                 ENV X=1\n",
            ),
            ("a.txt", "a\n"),
        ],
    );
    // `rbk import` stamps the base image with the time of import, as
    // `docker import` does: the second store starts as a copy of the first
    // so both builds start from the same base.
    store_named(&dir, "one");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(dir.join("one"))
        .arg(dir.join("two"))
        .status()
        .unwrap();
    assert!(copied.success());
    let ids: Vec<String> = ["one", "two"]
        .iter()
        .map(|name| {
            let root = dir.join(name);
            let out = command(&root, &build_args(&ctx, &["--no-cache", "-q"]))
                .env("SOURCE_DATE_EPOCH", "0")
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            // Different wall-clock seconds for the two builds' files.
            std::thread::sleep(Duration::from_millis(1100));
            stdout(&out).trim().to_string()
        })
        .collect();
    assert!(ids[0].starts_with("sha256:"), "{ids:?}");
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn independent_stages_run_in_parallel() {
    let dir = scratch("parallel");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox AS a\nRUN sleep 2 && echo a > /a\n\
             FROM rbk-busybox AS b\nRUN sleep 2 && echo b > /b\n\
             FROM rbk-busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
        )],
    );
    let start = Instant::now();
    let out = export(&root, &ctx, &dir, &[]);
    let took = start.elapsed();
    assert_eq!(fs::read_to_string(out.join("a")).unwrap(), "a\n");
    assert_eq!(fs::read_to_string(out.join("b")).unwrap(), "b\n");
    assert!(
        took < Duration::from_millis(3500),
        "two 2 s stages took {took:?}: they did not overlap"
    );
}

#[test]
fn metadata_instructions_land_in_the_config_and_history() {
    let dir = scratch("metadata");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox\n\
                 ENV FOO=bar\n\
                 LABEL com.example.k=v\n\
                 EXPOSE 8080/tcp\n\
                 COPY a.txt /a.txt\n\
                 RUN echo ran > /ran\n\
                 USER app\n\
                 WORKDIR /work\n\
                 STOPSIGNAL SIGTERM\n\
                 HEALTHCHECK --interval=30s --timeout=5s CMD wget -q localhost || exit 1\n\
                 VOLUME /data\n\
                 ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
                 CMD [\"echo hi\"]\n",
            ),
            ("a.txt", "a\n"),
        ],
    );
    let result = build(&root, &ctx, &["-t", "meta:1"]);
    assert!(result.status.success(), "{}", stderr(&result));
    let inspected = stdout(&ok(&root, &["inspect", "meta:1"]));
    let inspected: Value = serde_json::from_str(&inspected).unwrap();
    let c = &inspected[0]["Config"];
    assert!(
        c["Env"].as_array().unwrap().contains(&json!("FOO=bar")),
        "{c}"
    );
    assert_eq!(c["Labels"]["com.example.k"], "v");
    assert_eq!(c["ExposedPorts"], json!({"8080/tcp": {}}));
    assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], json!(["echo hi"]));
    assert_eq!(c["User"], "app");
    assert_eq!(c["WorkingDir"], "/work");
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(c["Volumes"], json!({"/data": {}}));
    let hc = &c["Healthcheck"];
    assert_eq!(
        hc["Test"],
        json!(["CMD-SHELL", "wget -q localhost || exit 1"])
    );
    assert_eq!(hc["Interval"], 30_000_000_000_u64);
    assert_eq!(hc["Timeout"], 5_000_000_000_u64);

    let history = config(&root, "meta:1")["history"].clone();
    let entry = |prefix: &str| -> Value {
        history
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["created_by"].as_str().unwrap_or("").starts_with(prefix))
            .unwrap_or_else(|| panic!("no history entry {prefix:?}: {history:#}"))
            .clone()
    };
    assert_eq!(
        entry("RUN ")["created_by"],
        "RUN /bin/sh -c echo ran > /ran # buildkit"
    );
    assert_ne!(entry("RUN ")["empty_layer"], true);
    assert_eq!(entry("COPY ")["created_by"], "COPY a.txt /a.txt # buildkit");
    assert_ne!(entry("COPY ")["empty_layer"], true);
    assert_eq!(entry("ENV ")["created_by"], "ENV FOO=bar");
    assert_eq!(entry("USER ")["created_by"], "USER app");
    assert_eq!(entry("STOPSIGNAL ")["created_by"], "STOPSIGNAL SIGTERM");
    for metadata in [
        "ENV ",
        "LABEL ",
        "EXPOSE ",
        "USER ",
        "STOPSIGNAL ",
        "HEALTHCHECK ",
        "VOLUME ",
        "ENTRYPOINT ",
        "CMD ",
    ] {
        assert_eq!(
            entry(metadata)["empty_layer"],
            true,
            "{metadata}: {history:#}"
        );
    }
}

#[test]
fn an_unknown_user_is_a_clear_error_and_tags_nothing() {
    let dir = scratch("bad-user");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\nUSER nosuchuser\nRUN true\n",
        )],
    );
    let result = build(&root, &ctx, &["-t", "baduser"]);
    let log = stderr(&result);
    assert!(!result.status.success(), "{log}");
    assert!(log.contains("nosuchuser"), "{log}");
    assert!(!tagged(&root, "baduser"));
}

#[test]
fn copying_from_outside_the_context_fails_and_tags_nothing() {
    let dir = scratch("outside");
    let root = store(&dir);
    fs::write(dir.join("outside"), "secret\n").unwrap();
    let ctx = context(
        &dir,
        &[("Dockerfile", "FROM rbk-busybox\nCOPY ../outside /x\n")],
    );
    let result = build(&root, &ctx, &["-t", "escaped"]);
    let log = stderr(&result);
    assert!(!result.status.success(), "{log}");
    assert!(
        log.contains("outside") && log.contains("not found"),
        "{log}"
    );
    assert!(!tagged(&root, "escaped"));
}

#[test]
fn host_networking_needs_the_entitlement() {
    let dir = scratch("network-host");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[("Dockerfile", "FROM rbk-busybox\nRUN --network=host true\n")],
    );
    let result = build(&root, &ctx, &["-t", "hostnet"]);
    let log = stderr(&result);
    assert!(!result.status.success(), "{log}");
    assert!(log.contains("network.host"), "{log}");
    assert!(!tagged(&root, "hostnet"));
}

#[test]
fn a_killed_build_leaves_nothing_mounted_after_the_next_build() {
    let dir = scratch("killed");
    let root = store(&dir);
    let slow = context(&dir, &[("Dockerfile", "FROM rbk-busybox\nRUN sleep 5\n")]);
    let mut child = command(&root, &build_args(&slow, &[]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tmp = root.join("tmp");
    let deadline = Instant::now() + Duration::from_secs(10);
    // Kill it once the RUN's overlay is up.
    while mounts_under(&tmp).is_empty() {
        assert!(Instant::now() < deadline, "the RUN step never mounted");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !mounts_under(&tmp).is_empty(),
        "the killed build left its mounts"
    );

    let other = dir.join("other");
    fs::create_dir_all(&other).unwrap();
    fs::write(
        other.join("Dockerfile"),
        "FROM rbk-busybox\nRUN echo next > /next\n",
    )
    .unwrap();
    let result = build(&root, &other, &["-t", "next"]);
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(tagged(&root, "next"));
    assert_eq!(mounts_under(&tmp), Vec::<String>::new());
}

#[test]
fn a_relative_store_root_works_for_run_steps() {
    let dir = scratch("relative-root");
    store(&dir);
    let ctx = context(
        &dir,
        &[("Dockerfile", "FROM rbk-busybox\nRUN echo ok > /ok\n")],
    );
    // runc gets the container's rootfs by path: a relative --root must not
    // leak into it relative to the bundle directory.
    let result = Command::new(env!("CARGO_BIN_EXE_rbk"))
        .current_dir(&dir)
        .args(["--root", "root", "build", "--progress=plain", "-t", "rel"])
        .arg(&ctx)
        .env_remove("RBK_ROOT")
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", stderr(&result));
    assert!(tagged(&dir.join("root"), "rel"));
}

/// The context bytes `rbk build --progress=plain` reports reading (the
/// `load build context` vertex's transfer line).
fn context_bytes(out: &std::process::Output) -> String {
    let err = stderr(out);
    let vertex = err
        .lines()
        .find_map(|l| l.strip_suffix(" [internal] load build context"))
        .unwrap_or_else(|| panic!("no load build context vertex:\n{err}"));
    let prefix = format!("{vertex} transferring context: ");
    err.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|bytes| bytes.trim_end_matches(" done").to_string())
        .unwrap_or_else(|| panic!("no context transfer line:\n{err}"))
}

/// Issue 19: a build reads only the parts of the context its Dockerfile
/// copies from (BuildKit's FollowPaths), with `.dockerignore` still
/// applied inside them; a build of the whole context afterwards is whole
/// and keeps its own stat cache; a path through a symlink reads it all.
#[test]
fn only_the_context_paths_the_dockerfile_names_are_read() {
    let dir = scratch("context-paths");
    let root = store(&dir);
    let big = "z".repeat(100_000);
    let ctx = context(
        &dir,
        &[
            ("Dockerfile", "FROM scratch\nCOPY keep /keep\n"),
            ("all.Dockerfile", "FROM scratch\nCOPY . /all\n"),
            (".dockerignore", "keep/*.log\n"),
            ("keep/a.txt", "a\n"),
            ("keep/sub/b.txt", "bb\n"),
            ("keep/x.log", "log\n"),
            ("other/big.bin", &big),
        ],
    );
    let part = export(&root, &ctx, &dir, &[]);
    assert_eq!(fs::read_to_string(part.join("keep/a.txt")).unwrap(), "a\n");
    assert_eq!(
        fs::read_to_string(part.join("keep/sub/b.txt")).unwrap(),
        "bb\n"
    );
    assert!(!part.join("keep/x.log").exists() && !part.join("other").exists());
    let out = build(&root, &ctx, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(context_bytes(&out), "5B", "only keep/'s two files");

    let all = ctx.join("all.Dockerfile");
    let whole = export(&root, &ctx, &dir, &["-f", all.to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(whole.join("all/other/big.bin")).unwrap(),
        big
    );
    assert_eq!(
        fs::read_to_string(whole.join("all/keep/a.txt")).unwrap(),
        "a\n"
    );
    assert!(!whole.join("all/keep/x.log").exists());
    let caches = fs::read_dir(root.join("db/statcache")).unwrap().count();
    assert_eq!(
        caches, 2,
        "one stat cache for keep/, one for the whole context"
    );

    // `link/f` is `real/f`: the COPY follows the link out of the path it
    // names, so the whole context is read and the file is found.
    let linked = context(
        &dir.join("linked"),
        &[
            ("Dockerfile", "FROM scratch\nCOPY link/f /f\n"),
            ("real/f", "r\n"),
        ],
    );
    std::os::unix::fs::symlink("real", linked.join("link")).unwrap();
    let out = export(&root, &linked, &dir.join("linked"), &[]);
    assert_eq!(fs::read_to_string(out.join("f")).unwrap(), "r\n");
}
