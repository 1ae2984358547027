//! Issue 11's behaviours where rbk followed neither current BuildKit nor
//! buildx, each checked through the real binary: build-arg driven settings
//! (SOURCE_DATE_EPOCH, BUILDKIT_SANDBOX_HOSTNAME), warnings (unconsumed
//! build args, foreign `# syntax=` frontends), platform checks, `-o -` and
//! the error for an unknown `--target`. Items compared with Docker's own
//! BuildKit (ENV pairs, the scratch config) are in the differential suite,
//! case `env-scratch`; here they are pinned without a Docker engine.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

mod support;

use support::{build, config, context, ok, stderr, store};

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("conformance-{name}"))
}

fn fails(root: &Path, ctx: &Path, extra: &[&str]) -> String {
    let out = build(root, ctx, extra);
    assert!(!out.status.success(), "build succeeded:\n{}", stderr(&out));
    stderr(&out)
}

#[test]
fn env_pairs_see_the_old_values_and_scratch_has_buildkits_config() {
    let dir = scratch("env-scratch");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM scratch\nENV abc=hello\nENV abc=bye def=$abc\nLABEL l=$abc\n",
        )],
    );
    ok(&root, &support::build_args(&ctx, &["-t", "envs"]));
    let cfg = config(&root, "envs");
    let env: Vec<&str> = cfg["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        env,
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "abc=bye",
            "def=hello"
        ]
    );
    assert_eq!(cfg["config"]["WorkingDir"], "/");
    assert_eq!(cfg["config"]["Labels"]["l"], "bye");
}

#[test]
fn source_date_epoch_as_a_build_arg_sets_the_image_times() {
    let dir = scratch("sde");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\nRUN echo hi > /f\nENV A=1\n",
        )],
    );
    let args = ["-t", "sde", "--build-arg", "SOURCE_DATE_EPOCH=1234567890"];
    let out = build(&root, &ctx, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    // A built-in arg: consumed without an ARG, so no warning.
    assert!(!stderr(&out).contains("not consumed"), "{}", stderr(&out));
    let cfg = config(&root, "sde");
    assert_eq!(cfg["created"], "2009-02-13T23:31:30Z");
    let history = cfg["history"].as_array().unwrap();
    let built: Vec<&serde_json::Value> = history.iter().rev().take(2).collect();
    for entry in built {
        assert_eq!(entry["created"], "2009-02-13T23:31:30Z", "{entry}");
    }
}

/// Item 10, outputs: `--build-arg SOURCE_DATE_EPOCH` with
/// `rewrite-timestamp=true` on an image output (BuildKit's option since
/// v0.13, docs/build-repro.md) clamps the file times the build wrote to the
/// epoch; older times (a context file's) stay, and the base image's layers
/// are not rewritten (BuildKit skips the base's diff ids). A build without
/// the epoch ran first: its cached steps must not stand in for the epoch's.
#[test]
fn rewrite_timestamp_takes_the_epoch_from_the_build_arg() {
    use support::flatten::read_archive;
    let dir = scratch("rewrite-timestamp");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox\nCOPY old.txt /old.txt\nRUN echo hi > /new.txt\n",
            ),
            ("old.txt", "from the context\n"),
        ],
    );
    let touched = std::process::Command::new("touch")
        .args(["-d", "@1000000000"])
        .arg(ctx.join("old.txt"))
        .status()
        .unwrap();
    assert!(touched.success());
    ok(&root, &support::build_args(&ctx, &["-t", "no-epoch"]));
    let archive = dir.join("image.tar");
    let spec = format!(
        "type=docker,dest={},rewrite-timestamp=true",
        archive.display()
    );
    let epoch = ["--build-arg", "SOURCE_DATE_EPOCH=1234567890"];
    let mut args = vec!["-t", "epoch", "-o", spec.as_str()];
    args.extend(epoch);
    ok(&root, &support::build_args(&ctx, &args));
    let image = read_archive(&archive);
    assert_eq!(
        image.files["new.txt"].mtime, 1_234_567_890,
        "written by RUN"
    );
    assert_eq!(image.files["old.txt"].mtime, 1_000_000_000, "older: kept");
    assert_eq!(
        image.files["bin/busybox"].mtime, 1_700_000_000,
        "base layer"
    );
    assert_eq!(image.config["created"], "2009-02-13T23:31:30Z");
    let history = image.config["history"].as_array().unwrap();
    for entry in history.iter().rev().take(2) {
        assert_eq!(entry["created"], "2009-02-13T23:31:30Z", "{entry}");
    }
    // The image in the store is the one written out.
    assert_eq!(config(&root, "epoch"), image.config);
    // `false` (BuildKit's default) is not offered: rbk always clamps.
    let spec = format!(
        "type=oci,dest={},rewrite-timestamp=false",
        archive.display()
    );
    let mut args = vec!["-o", spec.as_str()];
    args.extend(epoch);
    let err = fails(&root, &ctx, &args);
    assert!(
        err.contains("rewrite-timestamp=false is not supported"),
        "{err}"
    );
}

/// Item 10, local and tar outputs: under `SOURCE_DATE_EPOCH` (here the
/// build arg) every file they write has the epoch's time, base image files
/// and symlinks included, as BuildKit's local and tar exporters write them
/// (docs/build-repro.md).
#[test]
fn local_and_tar_outputs_date_every_file_to_the_epoch() {
    use std::os::unix::fs::MetadataExt;
    let dir = scratch("epoch-outputs");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\nRUN echo hi > /new.txt && ln -s new.txt /link\n",
        )],
    );
    let epoch = ["--build-arg", "SOURCE_DATE_EPOCH=1234567890"];
    let out = support::export(&root, &ctx, &dir, &epoch);
    for path in ["new.txt", "link", "bin", "bin/busybox", "etc/passwd"] {
        let meta = std::fs::symlink_metadata(out.join(path)).unwrap();
        assert_eq!(meta.mtime(), 1_234_567_890, "{path}");
    }
    let archive = dir.join("fs.tar");
    let spec = format!("type=tar,dest={}", archive.display());
    let mut args = vec!["-o", spec.as_str()];
    args.extend(epoch);
    ok(&root, &support::build_args(&ctx, &args));
    let mut tar = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    let mut seen = 0;
    for entry in tar.entries().unwrap() {
        let entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        assert_eq!(entry.header().mtime().unwrap(), 1_234_567_890, "{name}");
        seen += 1;
    }
    assert!(seen > 3, "{seen} entries");
}

#[test]
fn sandbox_hostname_comes_from_the_build_arg() {
    let dir = scratch("hostname");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[("Dockerfile", "FROM rbk-busybox\nRUN hostname > /h\n")],
    );
    let default = support::export(&root, &ctx, &dir, &[]);
    assert_eq!(
        std::fs::read_to_string(default.join("h")).unwrap(),
        "buildkitsandbox\n"
    );
    let named = support::export(
        &root,
        &ctx,
        &dir,
        &["--build-arg", "BUILDKIT_SANDBOX_HOSTNAME=builder-7"],
    );
    assert_eq!(
        std::fs::read_to_string(named.join("h")).unwrap(),
        "builder-7\n"
    );
}

#[test]
fn unconsumed_build_args_are_warned_about() {
    let dir = scratch("unconsumed");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "ARG GLOBAL\nFROM rbk-busybox AS unused\nARG ONLY_UNUSED\nFROM rbk-busybox\nARG USED\nRUN true\n",
        )],
    );
    let out = build(
        &root,
        &ctx,
        &[
            "--build-arg",
            "USED=1",
            "--build-arg",
            "GLOBAL=1",
            "--build-arg",
            "NOPE=1",
            "--build-arg",
            "ONLY_UNUSED=1",
            "--build-arg",
            "HTTP_PROXY=http://127.0.0.1:9",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    // An ARG in any stage consumes, even one the target does not need;
    // proxy args are built in.
    assert!(
        text.contains("[Warning] One or more build-args [NOPE] were not consumed"),
        "{text}"
    );
}

#[test]
fn a_foreign_syntax_frontend_warns_or_fails_under_strict() {
    let dir = scratch("syntax");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "# syntax=example.com/custom/frontend:2\nFROM rbk-busybox\nRUN true\n",
        )],
    );
    let out = build(&root, &ctx, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "WARNING: # syntax=example.com/custom/frontend:2 names a frontend rbk cannot run"
        ),
        "{}",
        stderr(&out)
    );
    let err = fails(&root, &ctx, &["--strict"]);
    assert!(err.contains("--strict"), "{err}");
    let ours = context(
        &dir,
        &[(
            "Dockerfile",
            "# syntax=docker/dockerfile:1.7\nFROM rbk-busybox\n",
        )],
    );
    let out = build(&root, &ours, &[]);
    assert!(!stderr(&out).contains("WARNING"), "{}", stderr(&out));
}

#[test]
fn a_foreign_platform_needs_its_own_base_and_an_emulator() {
    let dir = scratch("foreign-platform");
    let root = store(&dir);
    // The base exists for the host's platform only.
    let ctx = context(&dir, &[("Dockerfile", "FROM rbk-busybox\nRUN true\n")]);
    let err = fails(&root, &ctx, &["--platform", "linux/s390x"]);
    assert!(
        err.contains("no base for linux/s390x") && err.contains("Dockerfile:1"),
        "{err}"
    );
    // No base image involved, but RUN steps: they need an emulator.
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY --from=rbk-busybox /bin /bin\nRUN true\n",
        )],
    );
    // (No handler registered: an empty binfmt_misc directory stands in.)
    let no_binfmt = dir.join("no-binfmt");
    std::fs::create_dir_all(&no_binfmt).unwrap();
    let out = support::command(
        &root,
        &support::build_args(&ctx, &["--platform", "linux/s390x"]),
    )
    .env("RBK_BINFMT_MISC_DIR", &no_binfmt)
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no emulator is registered for it"),
        "{}",
        stderr(&out)
    );
    // Without RUN steps a foreign platform needs no emulator.
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM scratch\nCOPY --from=rbk-busybox /bin/busybox /\n",
        )],
    );
    let out = build(&root, &ctx, &["--platform", "linux/s390x", "-t", "s390x"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(config(&root, "s390x")["architecture"], "s390x");
}

/// `rbk build -o SPEC` with stdout captured; returns stdout's bytes.
fn build_to_stdout(root: &Path, ctx: &Path, spec: &str) -> Vec<u8> {
    let mut child = support::command(root, &support::build_args(ctx, &["-o", spec]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut bytes = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    bytes
}

fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn dash_outputs_go_to_stdout() {
    let dir = scratch("stdout");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            ("Dockerfile", "FROM scratch\nCOPY hello /\n"),
            ("hello", "hi\n"),
        ],
    );
    for spec in ["-", "type=tar,dest=-"] {
        let names = tar_names(&build_to_stdout(&root, &ctx, spec));
        assert!(
            names.iter().any(|n| n.trim_start_matches("./") == "hello"),
            "{spec}: {names:?}"
        );
    }
    let names = tar_names(&build_to_stdout(&root, &ctx, "type=docker,dest=-"));
    assert!(names.contains(&"manifest.json".to_string()), "{names:?}");
    assert!(!ctx.join("-").exists() && !Path::new("-").exists());
    let err = fails(&root, &ctx, &["-o", "type=local,dest=-"]);
    assert!(err.contains("type=tar,dest=-"), "{err}");
}

#[test]
fn an_unknown_target_names_no_line() {
    let dir = scratch("target");
    let root = store(&dir);
    let ctx = context(&dir, &[("Dockerfile", "FROM rbk-busybox AS a\n")]);
    let err = fails(&root, &ctx, &["--target", "nope"]);
    assert!(
        err.contains("target stage \"nope\" could not be found"),
        "{err}"
    );
    assert!(!err.contains("Dockerfile:0"), "{err}");
}

/// All files under `dir`, relative, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// `COPY --parents` with a `./` pivot and `**` in sources and `--exclude`
/// (current BuildKit, dockerfile 1.7+: Docker 20.10's BuildKit has neither
/// flag, so this pins the documented behaviour: the Dockerfile reference's
/// `COPY --parents` section and moby/patternmatcher's `**`).
#[test]
fn copy_parents_pivot_and_double_star_patterns() {
    let dir = scratch("parents");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY --parents ./x/./y/*.txt /dst/\nCOPY --parents ./src/**/*.txt /p/\nCOPY --exclude=**/*.txt src /e/\n",
            ),
            ("x/y/a.txt", "a"),
            ("x/y/z/b.txt", "b"),
            ("src/a.txt", "1"),
            ("src/x/b.txt", "2"),
            ("src/x/y/c.txt", "3"),
            ("src/x/keep.md", "k"),
        ],
    );
    let out = support::export(&root, &ctx, &dir, &[]);
    assert_eq!(
        tree(&out),
        [
            "dst/y/a.txt",
            "e/x/keep.md",
            "p/src/a.txt",
            "p/src/x/b.txt",
            "p/src/x/y/c.txt"
        ]
    );
    // A file only `**` reaches is part of the step's cache key.
    std::fs::write(ctx.join("src/x/y/c.txt"), "changed").unwrap();
    let out = support::export(&root, &ctx, &dir, &[]);
    assert_eq!(
        std::fs::read_to_string(out.join("p/src/x/y/c.txt")).unwrap(),
        "changed"
    );
}

/// `--chown` with names the image does not know, as BuildKit's file op
/// (`readUser`) treats them: no failure, ids stay 0, an unknown group keeps
/// the user's primary group. `USER` with such a name still fails a RUN
/// (tests/build_faults.rs).
#[test]
fn chown_with_unknown_names_does_not_fail() {
    use std::os::unix::fs::MetadataExt;
    let dir = scratch("chown");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox\nCOPY --chown=ghost f /a\nCOPY --chown=ghost:app f /b\nCOPY --chown=app:ghosts f /c\n",
            ),
            ("f", "x"),
        ],
    );
    let out = support::export(&root, &ctx, &dir, &[]);
    let owner = |name: &str| {
        let m = std::fs::metadata(out.join(name)).unwrap();
        (m.uid(), m.gid())
    };
    assert_eq!(owner("a"), (0, 0));
    assert_eq!(owner("b"), (0, 1000));
    assert_eq!(owner("c"), (1000, 1000));
}

/// `USER name` runs with the user's supplementary groups from /etc/group;
/// `USER name:group` with the named group only (runc's user lookup).
#[test]
fn supplementary_groups_come_with_a_user_named_alone() {
    let dir = scratch("groups");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\nRUN echo staff:x:50:app >> /etc/group\nUSER app\nRUN id -G > /tmp/alone\nUSER app:app\nRUN id -G > /tmp/with-group\n",
        )],
    );
    let out = support::export(&root, &ctx, &dir, &[]);
    let read = |name: &str| std::fs::read_to_string(out.join("tmp").join(name)).unwrap();
    assert_eq!(read("alone"), "1000 50\n");
    assert_eq!(read("with-group"), "1000\n");
}

/// `RUN --mount=type=cache,from=…,source=…` starts a new cache from that
/// path of the stage; `type=tmpfs,size=…` limits the tmpfs.
#[test]
fn cache_mounts_seed_from_a_stage_and_tmpfs_mounts_take_a_size() {
    let dir = scratch("mount-options");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox AS seed\n\
             RUN mkdir -p /seed/sub && echo seeded > /seed/sub/f\n\
             FROM rbk-busybox\n\
             RUN --mount=type=cache,id=seeded,target=/c,from=seed,source=/seed cat /c/sub/f > /out && echo more > /c/new\n\
             RUN --mount=type=cache,id=seeded,target=/c,from=seed,source=/seed ls /c > /list\n\
             RUN --mount=type=tmpfs,target=/t,size=2m df -k /t | tail -1 | awk '{print $2}' > /size\n",
        )],
    );
    let out = support::export(&root, &ctx, &dir, &[]);
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("out"), "seeded\n");
    assert_eq!(read("list"), "new\nsub\n");
    assert_eq!(read("size"), "2048\n");
}

/// `rbk inspect … | head -1` is not an error (a closed pipe ends the
/// output early, as for any Unix filter).
#[test]
fn a_closed_pipe_is_not_a_failure() {
    let dir = scratch("pipe");
    let root = store(&dir);
    // Enough output to fill the pipe before the reader goes away.
    let names = vec!["rbk-busybox"; 200];
    let mut args = vec!["inspect"];
    args.extend(names);
    let mut child = support::command(&root, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(&first, b"[");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
}

/// Plain progress shows a step's stdout and stderr lines in the order the
/// process wrote them (Docker's BuildKit prints `1 2 3 4` here too).
#[test]
fn plain_progress_keeps_the_order_of_stdout_and_stderr() {
    let dir = scratch("order");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\nRUN for i in 1 2 3; do echo out$i; echo err$i >&2; done\n",
        )],
    );
    let out = build(&root, &ctx, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = stderr(&out);
    let lines: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|w| w.starts_with("out") || w.starts_with("err"))
        .collect();
    assert_eq!(
        lines,
        ["out1", "err1", "out2", "err2", "out3", "err3"],
        "{log}"
    );
}

/// BuildKit's `UndefinedVar` check: a word that uses a variable neither ENV
/// nor ARG set is warned about (an ARG declared without a value is not),
/// unless `# check=skip=UndefinedVar` (or `skip=all`) turns it off.
#[test]
fn undefined_variables_are_warned_about_unless_skipped() {
    let dir = scratch("undefined");
    let root = store(&dir);
    let body = "FROM rbk-busybox\nARG DECLARED\nENV A=$NOT_SET B=$DECLARED C=${PATH}\nRUN --mount=type=tmpfs,target=/t$ALSO_NOT_SET true\n";
    let ctx = context(&dir, &[("Dockerfile", body)]);
    let out = build(&root, &ctx, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    assert!(
        text.contains("UndefinedVar: Usage of undefined variable '$NOT_SET' (line 3)"),
        "{text}"
    );
    assert!(
        text.contains("UndefinedVar: Usage of undefined variable '$ALSO_NOT_SET' (line 4)"),
        "{text}"
    );
    assert!(
        !text.contains("$DECLARED") && !text.contains("'$PATH'"),
        "{text}"
    );
    for directive in ["# check=skip=UndefinedVar", "# check=skip=all;error=false"] {
        let ctx = context(&dir, &[("Dockerfile", &format!("{directive}\n{body}"))]);
        let out = build(&root, &ctx, &[]);
        assert!(!stderr(&out).contains("UndefinedVar"), "{}", stderr(&out));
    }
}

/// Item 5: a RUN that writes only into cache and tmpfs mounts (and one
/// that writes nothing, and a COPY of an empty directory, and WORKDIR on
/// a directory that exists) still makes a layer: the empty tar, with a
/// history entry that is not `empty_layer`. Current BuildKit removes the
/// stubs of mount targets it had to create (the fix for CVE-2024-23652),
/// so those RUN layers are empty too; Docker 20.10's BuildKit kept them,
/// which is why the differential case `empty-steps` leaves RUN out.
#[test]
fn steps_that_write_only_into_mounts_still_make_an_empty_layer() {
    const EMPTY: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";
    let dir = scratch("empty-mount-steps");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox\n\
                 RUN --mount=type=cache,target=/var/cache/made echo x > /var/cache/made/f\n\
                 RUN --mount=type=tmpfs,target=/tmp touch /tmp/gone\n\
                 RUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t echo y > /c/y && echo z > /t/z\n\
                 RUN true\n\
                 COPY empty/ /etc/\n\
                 WORKDIR /bin\n",
            ),
            ("empty/.keep-out", ""),
            (".dockerignore", "empty/.keep-out\n"),
        ],
    );
    ok(&root, &support::build_args(&ctx, &["-t", "mounts-only"]));
    let base = config(&root, "rbk-busybox");
    let cfg = config(&root, "mounts-only");
    let base_layers = base["rootfs"]["diff_ids"].as_array().unwrap().len();
    let diff_ids = cfg["rootfs"]["diff_ids"].as_array().unwrap();
    let added: Vec<&str> = diff_ids[base_layers..]
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(added, [EMPTY; 6], "{cfg}");
    let base_history = base["history"].as_array().unwrap().len();
    let history = &cfg["history"].as_array().unwrap()[base_history..];
    assert_eq!(history.len(), 6, "{cfg}");
    for h in history {
        assert_eq!(h.get("empty_layer"), None, "{h}");
    }
    // The layers are real blobs: the image's manifest lists six more.
    let image: serde_json::Value =
        serde_json::from_slice(&ok(&root, &["inspect", "mounts-only"]).stdout).unwrap();
    assert_eq!(
        image[0]["RootFS"]["Layers"].as_array().unwrap().len(),
        base_layers + 6
    );
}

/// The same layer twice in an image (`COPY a /x` after a RUN deleted it,
/// or twice in a row) is one snapshot directory: the steps after it still
/// run, and see the upper copy over the deletion.
#[test]
fn a_layer_that_repeats_in_the_stack_still_mounts() {
    let dir = scratch("repeated-layer");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            (
                "Dockerfile",
                "FROM rbk-busybox\nCOPY a /x\nRUN rm /x\nCOPY a /x\nRUN cat /x > /seen\nCOPY a /y\nCOPY a /y\nRUN ls /y > /listed\n",
            ),
            ("a", "from-context\n"),
        ],
    );
    let out = support::export(&root, &ctx, &dir, &[]);
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(read("seen"), "from-context\n");
    assert_eq!(read("listed"), "/y\n");
    assert_eq!(read("x"), "from-context\n");
}
