//! Helpers shared by the `rbk build` end-to-end tests: a store per test with
//! a base image made from Debian's busybox-static, contexts, and the binary.
//! Each test crate uses a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub(crate) const BUSYBOX: &str = "/usr/bin/busybox";

pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("build-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) fn command(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbk"));
    cmd.arg("--root")
        .arg(root)
        .args(args)
        .env_remove("RBK_ROOT")
        .env_remove("SOURCE_DATE_EPOCH");
    cmd
}

/// `rbk build --progress=plain --iidfile <root>.iid EXTRA... CTX` with a
/// fixed SOURCE_DATE_EPOCH, so that runners sharing a cache make the same
/// image id; not started yet.
pub(crate) fn runner_build(root: &Path, ctx: &Path, extra: &[&str]) -> Command {
    let iid = root.with_extension("iid");
    let mut args = vec![
        "build",
        "--progress=plain",
        "--iidfile",
        iid.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    let mut cmd = command(root, &args);
    cmd.env("SOURCE_DATE_EPOCH", "1700000000");
    cmd
}

pub(crate) fn rbk(root: &Path, args: &[&str]) -> Output {
    command(root, args).output().unwrap()
}

/// `rbk args` with `input` on its stdin (then closed).
pub(crate) fn rbk_with_stdin(root: &Path, args: &[&str], input: &[u8]) -> Output {
    use std::process::Stdio;
    let mut child = command(root, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

pub(crate) fn ok(root: &Path, args: &[&str]) -> Output {
    let out = rbk(root, args);
    assert!(
        out.status.success(),
        "rbk {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A rootfs tarball: busybox with its applet links, passwd/group with an
/// `app` user, /tmp. Built once per test process.
pub(crate) fn base_tarball() -> &'static Path {
    static TARBALL: OnceLock<PathBuf> = OnceLock::new();
    TARBALL.get_or_init(|| {
        assert!(
            Path::new(BUSYBOX).is_file(),
            "{BUSYBOX} is missing: install Debian's busybox-static (cargo xtask ci does)"
        );
        assert!(
            rustix::process::geteuid().is_root(),
            "the build tests run containers and need root"
        );
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("busybox-rootfs.tar");
        busybox_tarball(Path::new(BUSYBOX), &path);
        path
    })
}

/// Writes a busybox rootfs tarball to `path` around the `busybox` binary
/// (the applet links are the host busybox's list: the same Debian package
/// for every architecture).
pub(crate) fn busybox_tarball(busybox: &Path, path: &Path) {
    let applets = Command::new(BUSYBOX).arg("--list").output().unwrap();
    let applets = String::from_utf8(applets.stdout).unwrap();
    // Unique per process: several test binaries may build it at once.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut b = tar::Builder::new(fs::File::create(&tmp).unwrap());
    for (dir, mode) in [
        ("bin/", 0o755),
        ("etc/", 0o755),
        ("root/", 0o700),
        ("tmp/", 0o1777),
    ] {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        b.append_data(&mut h, dir, std::io::empty()).unwrap();
    }
    file(&mut b, "bin/busybox", 0o755, &fs::read(busybox).unwrap());
    for applet in applets.lines().filter(|a| !a.is_empty() && *a != "busybox") {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    let passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    file(&mut b, "etc/passwd", 0o644, passwd.as_bytes());
    file(
        &mut b,
        "etc/group",
        0o644,
        b"root:x:0:\napp:x:1000:\nnogroup:x:65534:\n",
    );
    b.into_inner().unwrap().sync_all().unwrap();
    fs::rename(&tmp, path).unwrap();
}

pub(crate) fn file<W: Write>(b: &mut tar::Builder<W>, name: &str, mode: u32, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
    b.append_data(&mut h, name, data).unwrap();
}

pub(crate) fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h
}

/// A store under `dir/<name>` with the base image as `rbk-busybox:latest`.
pub(crate) fn store_named(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(name);
    ok(
        &root,
        &[
            "import",
            base_tarball().to_str().unwrap(),
            "rbk-busybox:latest",
        ],
    );
    root
}

/// A store under `dir/<name>` with the very same base image as the store
/// `like` (saved from it and loaded: one base pulled by two runners).
pub(crate) fn store_like(dir: &Path, name: &str, like: &Path) -> PathBuf {
    let root = dir.join(name);
    let base = dir.join(format!("{name}-base.tar"));
    ok(like, &["save", "-o", base.to_str().unwrap(), "rbk-busybox"]);
    ok(&root, &["load", "-i", base.to_str().unwrap()]);
    let _ = fs::remove_file(&base);
    root
}

pub(crate) fn store(dir: &Path) -> PathBuf {
    store_named(dir, "root")
}

/// Writes `files` (path, contents) under `dir/ctx` and returns it.
/// Unpacks the tar archive `archive` into `dest` (created) with tar(1).
pub(crate) fn untar(archive: &Path, dest: &Path) {
    fs::create_dir_all(dest).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(dest)
        .status()
        .unwrap();
    assert!(status.success(), "tar -xf {}", archive.display());
}

pub(crate) fn context(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let ctx = dir.join("ctx");
    for (name, text) in files {
        let path = ctx.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    ctx
}
pub(crate) mod browser;
pub(crate) mod debian;
pub(crate) mod docker;
pub(crate) mod flatten;
pub(crate) mod platforms;
pub(crate) mod registry;
pub(crate) mod remote;
pub(crate) mod rootless;
pub(crate) mod tmux;
pub(crate) mod tools;
pub(crate) mod users;

/// A runtime that answers `--version` like runc and fails, leaving a mark,
/// for anything else: a build with it provably starts no container.
pub(crate) fn tripwire_runtime(dir: &Path) -> (PathBuf, PathBuf) {
    let mark = dir.join("runtime-was-called");
    let script = dir.join("tripwire-runtime");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then exec runc --version; fi\n\
             echo \"$@\" >> {}\nexit 1\n",
            mark.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    (script, mark)
}

/// Dockerfile steps that ran (not cached) in a plain progress log, by label.
/// Each vertex's first line follows a blank line: `#N label`; it ran when a
/// later `#N DONE` line follows. Only steps count (`[stage 2/4] RUN …`):
/// internal vertices, source loads and the export run on every build.
pub(crate) fn ran(log: &str) -> Vec<String> {
    let mut labels = std::collections::BTreeMap::new();
    let mut done = Vec::new();
    let mut after_blank = true;
    for line in log.lines() {
        if let Some((n, text)) = line.strip_prefix('#').and_then(|r| r.split_once(' ')) {
            if after_blank {
                if is_step(text) {
                    labels.insert(n.to_string(), text.to_string());
                }
            } else if text.starts_with("DONE") {
                done.extend(labels.get(n).cloned());
            }
        }
        after_blank = line.is_empty();
    }
    done
}

/// Whether a vertex label names a Dockerfile step: `[stage 2/4] RUN …`.
fn is_step(label: &str) -> bool {
    label
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(name, _)| name.rsplit(' ').next())
        .is_some_and(|position| position.contains('/'))
}

/// The arguments of `rbk build --progress=plain EXTRA... CTX`.
pub(crate) fn build_args<'a>(ctx: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["build", "--progress=plain"];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    args
}

/// `rbk build --progress=plain EXTRA... CTX` on the store at `root`.
pub(crate) fn build(root: &Path, ctx: &Path, extra: &[&str]) -> Output {
    rbk(root, &build_args(ctx, extra))
}

/// The image's final filesystem, through `--output type=local` into
/// `dir/out` (which must build).
pub(crate) fn export(root: &Path, ctx: &Path, dir: &Path, extra: &[&str]) -> PathBuf {
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);
    let spec = format!("type=local,dest={}", out.display());
    let mut args = vec!["--output", spec.as_str()];
    args.extend_from_slice(extra);
    let result = build(root, ctx, &args);
    assert!(
        result.status.success(),
        "build failed:\n{}",
        stderr(&result)
    );
    out
}

/// The image config of `name` (`latest` when untagged) read straight from
/// the store's OCI layout.
pub(crate) fn config(root: &Path, name: &str) -> serde_json::Value {
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let index = read(root.join("index.json"));
    let tagged = if name.contains(':') {
        name.to_string()
    } else {
        format!("{name}:latest")
    };
    let full = format!("docker.io/library/{tagged}");
    let manifest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == full.as_str())
        .unwrap_or_else(|| panic!("{full} not tagged"));
    let blob = |digest: &serde_json::Value| {
        let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
        read(root.join("blobs/sha256").join(hex))
    };
    let manifest = blob(&manifest["digest"]);
    blob(&manifest["config"]["digest"])
}

/// A store under `dir` with `base:1` built `FROM rbk-busybox` plus
/// `dockerfile_tail` (the container tests' image).
pub(crate) fn container_store(dir: &Path, dockerfile_tail: &str) -> PathBuf {
    let root = store(dir);
    let dockerfile = format!("FROM rbk-busybox\n{dockerfile_tail}");
    let ctx = context(dir, &[("Dockerfile", dockerfile.as_str())]);
    ok(&root, &build_args(&ctx, &["-t", "base:1"]));
    root
}

/// The mount points under `root` (none may be left once containers and
/// copies are done).
pub(crate) fn mounts_under(root: &Path) -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = root.to_str().unwrap();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(root))
        .map(str::to_string)
        .collect()
}

/// [`scratch`] for tests that run containers: the containers a failed
/// earlier run left running (which keep their mounts, and so the
/// directory) are removed first.
pub(crate) fn container_scratch(name: &str) -> PathBuf {
    let old = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("build-{name}"))
        .join("root");
    if old.join("containers").exists() {
        let ids = stdout(&rbk(&old, &["ps", "-a", "-q", "--no-trunc"]));
        for id in ids.lines() {
            rbk(&old, &["rm", "-f", id]);
        }
    }
    scratch(name)
}

/// Docker's default capability set, as RUN steps get it: CHOWN
/// DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE
/// NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
pub(crate) const DEFAULT_CAPS: u64 = 0x0000_0000_a804_25fb;

/// The `Cap*` lines of a /proc/PID/status, as name → hex mask.
pub(crate) fn cap_sets(status: &str) -> std::collections::BTreeMap<String, u64> {
    status
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.starts_with("Cap"))
        .map(|(k, v)| (k.to_string(), u64::from_str_radix(v.trim(), 16).unwrap()))
        .collect()
}

/// What `local_output_makes_no_devices_and_strips_setid` builds, as an
/// `--output type=local` tree `out`: the FIFO `fifo` kept, `suid` and
/// `sgid` written with their setuid/setgid bits cleared.
pub(crate) fn assert_local_output_stripped(out: &Path) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    assert!(std::fs::symlink_metadata(out.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    for file in ["suid", "sgid"] {
        let mode = std::fs::metadata(out.join(file)).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o755, "{file} kept mode {mode:o}");
    }
}
