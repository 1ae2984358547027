//! Rootless rbk: the real binary run by ordinary users (made by the test,
//! see `support/rootless.rs`) builds in a user namespace mapped over the
//! user's subordinate ids, and gives the layers and image ids of the same
//! build as root; images move between the two with save/load and a
//! registry; without ranges, or with a store of another user, rbk says what
//! to do.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

mod support;

use support::registry::Registry;
use support::rootless::Scratch;
use support::users::{user, NO_RANGES, WITH_RANGES};
use support::DEFAULT_CAPS;
use support::{
    base_tarball, file, header, ok, ran, rbk, stderr, stdout, store_named, tripwire_runtime,
};

const EPOCH: (&str, &str) = ("SOURCE_DATE_EPOCH", "1700000000");

/// Files owned by 1000:1000 and 65534:65534 (COPY --chown and RUN chown),
/// a setuid file, a cache mount, and a directory removed and made again
/// (an opaque directory: overlayfs marks it with an xattr, `user.overlay.*`
/// rootless).
const OWNERS: &str = "FROM rbk-busybox:latest
COPY --chown=1000:1000 a.txt /owned/by-app
COPY --chown=65534:65534 a.txt /owned/by-nobody
RUN mkdir -p /data && echo hi > /data/x && chown -R 1000:1000 /data \
 && cp /bin/busybox /data/suid && chown 65534:65534 /data/suid && chmod 4755 /data/suid
RUN --mount=type=cache,target=/cache echo cached >> /cache/f && cp /cache/f /from-cache
RUN mkdir -p /opq/sub && touch /opq/old /opq/sub/x
RUN rm -rf /opq && mkdir /opq && touch /opq/new
";

fn inspect(out: &std::process::Output) -> (String, Vec<String>) {
    let text = stdout(out);
    let mut lines = text.lines();
    let id = lines.next().unwrap().trim().to_string();
    let layers = serde_json::from_str(lines.next().unwrap().trim()).unwrap();
    (id, layers)
}

const FORMAT: &str = "{{.Id}}\n{{json .RootFS.Layers}}";

/// Id and layers of `name` in the root store `root`.
fn root_image(root: &Path, name: &str) -> (String, Vec<String>) {
    inspect(&ok(root, &["inspect", "-f", FORMAT, name]))
}

/// Id and layers of `name` in the user's store.
fn user_image(s: &Scratch, name: &str) -> (String, Vec<String>) {
    inspect(&s.ok(&["inspect", "-f", FORMAT, name], &[]))
}

/// A root store with the base image, and the same image loaded rootless
/// from its `rbk save` archive.
fn both_stores(s: &Scratch) -> std::path::PathBuf {
    let root = store_named(&s.dir, "root-store");
    let archive = s.dir.join("base.tar");
    ok(
        &root,
        &[
            "save",
            "-o",
            archive.to_str().unwrap(),
            "rbk-busybox:latest",
        ],
    );
    s.share(&archive);
    s.ok(&["load", "-i", archive.to_str().unwrap()], &[]);
    assert_eq!(
        user_image(s, "rbk-busybox:latest"),
        root_image(&root, "rbk-busybox:latest")
    );
    root
}

fn root_build(root: &Path, ctx: &Path, extra: &[&str]) -> String {
    let mut args = vec!["build", "--progress=plain"];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    let out = support::command(root, &args)
        .env(EPOCH.0, EPOCH.1)
        .output()
        .unwrap();
    assert!(out.status.success(), "root build failed:\n{}", stderr(&out));
    stderr(&out)
}

fn user_build(s: &Scratch, ctx: &Path, extra: &[&str]) -> String {
    let mut args = vec!["build", "--progress=plain"];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    stderr(&s.ok(&args, &[EPOCH]))
}

/// Both stores with the base image, and a context with `OWNERS`.
fn owners_context(s: &Scratch) -> (std::path::PathBuf, std::path::PathBuf) {
    let root = both_stores(s);
    let ctx = s.dir.join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), OWNERS).unwrap();
    fs::write(ctx.join("a.txt"), "hello\n").unwrap();
    s.share(&ctx);
    (root, ctx)
}

/// `prefix…` (run by root) ending with the command `inner`, with its
/// environment and directory.
fn wrapped(prefix: &[&str], inner: &std::process::Command) -> std::process::Command {
    let mut cmd = std::process::Command::new(prefix[0]);
    cmd.args(&prefix[1..])
        .arg(inner.get_program())
        .args(inner.get_args())
        .env_clear()
        .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))));
    if let Some(dir) = inner.get_current_dir() {
        cmd.current_dir(dir);
    }
    cmd
}

#[test]
fn a_rootless_build_gives_the_layers_and_image_ids_of_a_root_build() {
    let s = Scratch::new("same", &user(WITH_RANGES));
    let (root, ctx) = owners_context(&s);

    root_build(&root, &ctx, &["-t", "owners:1"]);
    let log = user_build(&s, &ctx, &["-t", "owners:1"]);
    assert!(!log.contains("warning"), "{log}");
    let (id, layers) = user_image(&s, "owners:1");
    assert_eq!(
        (&id, &layers),
        (
            &root_image(&root, "owners:1").0,
            &root_image(&root, "owners:1").1
        )
    );
    assert_eq!(layers.len(), 7, "{layers:?}");

    // The default store is $XDG_DATA_HOME/rbk, the user's, and files the
    // image owns as 1000 are the user's subordinate id 1000 on disk:
    // mapped, never squashed to the user.
    let store = s.store();
    assert_eq!(fs::metadata(&store).unwrap().uid(), s.user.uid);
    let (start, _) = s.user.subuids.unwrap();
    let owned = find(&store.join("snapshots"), "by-app").expect("by-app in a snapshot");
    let meta = fs::symlink_metadata(&owned).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (start + 999, meta.gid()),
        "{owned:?}"
    );
    let suid = find(&store.join("snapshots"), "suid").expect("suid in a snapshot");
    let meta = fs::symlink_metadata(&suid).unwrap();
    assert_eq!(meta.uid(), start + 65533);
    assert_eq!(meta.permissions().mode() & 0o7777, 0o4755);

    // The multi-stage example.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/multistage");
    let example_copy = s.dir.join("multistage");
    fs::create_dir(&example_copy).unwrap();
    for f in ["Dockerfile", "hello.sh"] {
        fs::copy(example.join(f), example_copy.join(f)).unwrap();
    }
    s.share(&example_copy);
    root_build(&root, &example_copy, &["-t", "multi:1"]);
    user_build(&s, &example_copy, &["-t", "multi:1"]);
    assert_eq!(user_image(&s, "multi:1"), root_image(&root, "multi:1"));

    // The cache mount kept its contents between rootless builds.
    let again = user_build(&s, &ctx, &["--no-cache", "-t", "owners:2"]);
    assert!(again.contains("DONE"), "{again}");

    // A rootless `save` loads as root into a fresh store, same image.
    let archive = s.dir.join("home/owners.tar");
    s.ok(&["save", "-o", archive.to_str().unwrap(), "owners:1"], &[]);
    let fresh = s.dir.join("fresh-root-store");
    ok(&fresh, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(root_image(&fresh, "owners:1"), (id, layers));

    // Root's save loads rootless into another store of the user's, whose
    // snapshots are unpacked from the layers: owners, the setuid bit and
    // the opaque directory come back.
    let archive = s.dir.join("owners-root.tar");
    ok(
        &root,
        &["save", "-o", archive.to_str().unwrap(), "owners:1"],
    );
    s.share(&archive);
    let other = s.dir.join("home/other-store");
    let other = other.to_str().unwrap();
    s.ok(
        &["--root", other, "load", "-i", archive.to_str().unwrap()],
        &[],
    );
    let out = s.ok(
        &[
            "--root",
            other,
            "run",
            "--rm",
            "owners:1",
            "sh",
            "-c",
            "ls /opq; stat -c '%u:%g %a' /owned/by-app /owned/by-nobody /data/suid",
        ],
        &[],
    );
    assert_eq!(
        stdout(&out),
        "new\n1000:1000 644\n65534:65534 644\n65534:65534 4755\n"
    );
}

fn find(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        let path = entry.path();
        if entry.file_name() == name {
            return Some(path);
        }
        if entry.file_type().ok()?.is_dir() {
            if let Some(found) = find(&path, name) {
                return Some(found);
            }
        }
    }
    None
}

#[test]
fn rootless_run_steps_use_the_host_network_and_push_and_pull_work() {
    let s = Scratch::new("network", &user(WITH_RANGES));
    let root = both_stores(&s);
    let registry = Registry::start(&s.dir.join("registry"), None);
    let url = format!("http://{}/v2/", registry.host);
    let ctx = s.dir.join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM rbk-busybox:latest\nRUN wget -q -O /reply {url} && cat /reply\n\
             RUN --network=none ip link | grep -c ': ' > /links\n"
        ),
    )
    .unwrap();
    s.share(&ctx);
    let log = user_build(&s, &ctx, &["-t", "net:1"]);
    assert!(log.contains("{}"), "the registry's reply: {log}");
    // --network=none: a namespace of its own, with only loopback.
    let out = s.ok(&["run", "--rm", "net:1", "cat", "/links"], &[]);
    assert_eq!(stdout(&out).trim(), "1");

    // Push rootless, pull as root: the same image; and back.
    let name = format!("{}/rootless/net:1", registry.host);
    s.ok(&["tag", "net:1", &name], &[]);
    s.ok(&["push", &name], &[]);
    ok(&root, &["pull", &name]);
    assert_eq!(root_image(&root, &name), user_image(&s, &name));
    let from_root = format!("{}/root/base:1", registry.host);
    ok(&root, &["tag", "rbk-busybox:latest", &from_root]);
    ok(&root, &["push", &from_root]);
    s.ok(&["rmi", "rbk-busybox:latest"], &[]);
    s.ok(&["pull", &from_root], &[]);
    assert_eq!(user_image(&s, &from_root), root_image(&root, &from_root));
    // ~/.docker is the user's own, and rbk wrote nothing as another user
    // into the home.
    let home = fs::metadata(s.dir.join("home")).unwrap();
    assert_eq!(home.uid(), s.user.uid);
}

#[test]
fn rootless_run_commit_and_exec() {
    let s = Scratch::new("commit", &user(WITH_RANGES));
    s.ok(
        &[
            "import",
            base_tarball().to_str().unwrap(),
            "rbk-busybox:latest",
        ],
        &[],
    );
    // Import unpacked the base in the namespace, as root's does, so the
    // first run does not pay for it.
    let snapshots: Vec<_> = fs::read_dir(s.store().join("snapshots"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| !name.to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
    s.ok(
        &[
            "run",
            "--name",
            "c1",
            "rbk-busybox:latest",
            "sh",
            "-c",
            "echo made > /made && chown 1000:1000 /made",
        ],
        &[],
    );
    s.ok(&["commit", "c1", "committed:1"], &[]);
    let out = s.ok(
        &[
            "run",
            "--rm",
            "committed:1",
            "stat",
            "-c",
            "%u:%g %n",
            "/made",
        ],
        &[],
    );
    assert_eq!(stdout(&out).trim(), "1000:1000 /made");

    // A detached container lives in the namespaces of the rbk that started
    // it; a later `rbk exec` joins them.
    s.ok(
        &["run", "-d", "--name", "d1", "committed:1", "sleep", "60"],
        &[],
    );
    let out = s.ok(&["exec", "d1", "cat", "/made"], &[]);
    assert_eq!(stdout(&out), "made\n");
    let out = s.rbk(&["exec", "d1", "sh", "-c", "exit 3"], &[]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    s.ok(&["stop", "-t", "1", "d1"], &[]);
    s.ok(&["rm", "d1"], &[]);
}

/// `rbk import TARBALL NAME` then, if it took it, `rbk run --rm NAME true`:
/// the first that fails (import unpacks what it takes).
fn import_then_run(s: &Scratch, tarball: &Path, name: &str) -> std::process::Output {
    let out = s.rbk(&["import", tarball.to_str().unwrap(), name], &[]);
    if !out.status.success() {
        return out;
    }
    s.rbk(&["run", "--rm", name, "true"], &[])
}

/// An image whose one file `path` is owned by `id:id`, which the user's
/// namespace does not map: import or first run fails naming the file, the
/// owner and the namespace's `range`.
fn refused_owner(s: &Scratch, path: &str, id: u64, range: &str) {
    let tarball = s.dir.join(format!("owned-{id}.tar"));
    let mut b = tar::Builder::new(fs::File::create(&tarball).unwrap());
    let mut h = header(tar::EntryType::Regular, 0o644, 2);
    h.set_uid(id);
    h.set_gid(id);
    b.append_data(&mut h, path, &b"x\n"[..]).unwrap();
    b.into_inner().unwrap();
    s.share(&tarball);
    let out = import_then_run(s, &tarball, &format!("owned-{id}:1"));
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(path), "{err}");
    assert!(
        err.contains(&format!("owner {id}:{id} is outside")),
        "{err}"
    );
    assert!(err.contains(range), "the range: {err}");
}

#[test]
fn without_subordinate_ids_rbk_maps_one_id_and_says_how_to_add_more() {
    let s = Scratch::new("noranges", &user(NO_RANGES));
    assert!(s.user.subuids.is_none());
    // Root-owned images work with the one id; the fallback is said once.
    let out = s.ok(
        &[
            "import",
            base_tarball().to_str().unwrap(),
            "rbk-busybox:latest",
        ],
        &[],
    );
    let err = stderr(&out);
    assert_eq!(err.matches("usermod --add-subuids").count(), 1, "{err}");
    assert!(err.contains(NO_RANGES), "{err}");
    let ctx = s.dir.join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM rbk-busybox:latest\nRUN echo ok > /ok\n",
    )
    .unwrap();
    s.share(&ctx);
    user_build(&s, &ctx, &["-t", "one-id:1"]);

    // An image with a file owned by 1000: the error names the file and
    // the range, and the store keeps working.
    refused_owner(&s, "home/app-file", 1000, "(0)");
    s.ok(&["images"], &[]);
}

#[test]
fn rootless_device_nodes_and_foreign_stores_are_refused() {
    let s = Scratch::new("refused", &user(WITH_RANGES));
    // A device node: the kernel refuses mknod in a user namespace, and a
    // placeholder would change the layer, so it is an error saying so.
    let tarball = s.dir.join("dev.tar");
    let mut b = tar::Builder::new(fs::File::create(&tarball).unwrap());
    file(&mut b, "etc/ok", 0o644, b"ok\n");
    let mut h = header(tar::EntryType::Char, 0o666, 0);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    b.append_data(&mut h, "dev/null-copy", std::io::empty())
        .unwrap();
    b.into_inner().unwrap();
    s.share(&tarball);
    let out = import_then_run(&s, &tarball, "dev:1");
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("dev/null-copy"), "{err}");
    assert!(err.contains("user namespace"), "{err}");

    // An owner past the subordinate range (65,536 ids from 1): the error
    // names the file and the range.
    refused_owner(&s, "srv/far-file", 100_000, "(0, 1-65536)");

    // A store of another user (root's here) is refused and left as it was.
    let foreign = s.dir.join("root-store");
    ok(&foreign, &["images"]);
    let before = fs::metadata(&foreign).unwrap();
    let out = s.rbk(&["--root", foreign.to_str().unwrap(), "images"], &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(foreign.to_str().unwrap()), "{err}");
    assert!(err.contains("belongs to another user"), "{err}");
    let after = fs::metadata(&foreign).unwrap();
    assert_eq!(
        (after.uid(), after.mode()),
        (before.uid(), before.mode()),
        "never chowned or chmodded"
    );
    // The store root of root stays usable by root.
    let out = rbk(&foreign, &["images"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Cache keys: the cache a rootless build exports is a full hit for the
/// same build as root (which is given a runtime that fails if called, so
/// no step runs), and the plans with their digests are the same.
#[test]
fn a_rootless_builds_cache_is_a_full_hit_for_the_same_build_as_root() {
    let s = Scratch::new("cachekeys", &user(WITH_RANGES));
    let (root, ctx) = owners_context(&s);

    let plan = |out: std::process::Output| stdout(&out);
    let ctx_arg = ctx.to_str().unwrap();
    assert_eq!(
        plan(s.ok(&["debug", "plan", ctx_arg], &[])),
        plan(ok(&root, &["debug", "plan", ctx_arg]))
    );

    let cache = s.dir.join("home/cache");
    let to = format!("type=local,dest={},mode=max", cache.display());
    user_build(&s, &ctx, &["--cache-to", &to, "-t", "owners:1"]);
    s.share(&cache);
    let (tripwire, mark) = tripwire_runtime(&s.dir);
    let from = format!("type=local,src={}", cache.display());
    let log = root_build(
        &root,
        &ctx,
        &[
            "--cache-from",
            &from,
            "--runtime",
            tripwire.to_str().unwrap(),
            "-t",
            "owners:1",
        ],
    );
    assert!(!mark.exists(), "root ran a step: {log}");
    let steps: Vec<String> = ran(&log)
        .into_iter()
        .filter(|l| l.contains("RUN") || l.contains("COPY"))
        .collect();
    assert_eq!(steps, Vec::<String>::new(), "{log}");
    assert!(log.matches("CACHED").count() >= 6, "{log}");
    assert_eq!(root_image(&root, "owners:1"), user_image(&s, "owners:1"));
}

/// Without `newuidmap` (hidden in a mount namespace) the error names the
/// package; with user namespaces
/// disabled (`user.max_user_namespaces` set to 0 in a user namespace the
/// test makes as root, so the rest of the machine keeps them) it names the
/// sysctl.
#[test]
fn a_missing_newuidmap_and_disabled_user_namespaces_say_what_to_do() {
    // newuidmap and newgidmap hidden (by /dev/null, not a file) in a
    // mount namespace of the test's, so the machine keeps them.
    let s = Scratch::new("no-newuidmap", &user(WITH_RANGES));
    let inner = s.command(&["images"], &[]);
    let out = wrapped(
        &[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            "mount --bind /dev/null /usr/bin/newuidmap && \
             mount --bind /dev/null /usr/bin/newgidmap && exec \"$@\"",
            "sh",
        ],
        &inner,
    )
    .output()
    .unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("newuidmap and newgidmap were not found"),
        "{err}"
    );
    assert!(err.contains("install the `uidmap` package"), "{err}");

    let n = Scratch::new("no-userns", &user(NO_RANGES));
    let inner = n.command(&["images"], &[]);
    // The first shell waits for its maps, then execs a second one, which
    // (now uid 0 of the namespace) holds the capabilities to set the sysctl.
    let mut cmd = wrapped(
        &[
            "unshare",
            "--user",
            "--",
            "sh",
            "-c",
            "read go; exec sh -c \
             'echo 0 > /proc/sys/user/max_user_namespaces && exec \"$@\"' sh \"$@\"",
            "sh",
        ],
        &inner,
    );
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let ours = fs::read_link("/proc/self/ns/user").unwrap();
    let theirs = format!("/proc/{}/ns/user", child.id());
    let mut tries = 0;
    while fs::read_link(&theirs).unwrap() == ours {
        tries += 1;
        assert!(tries < 1000, "unshare --user made no namespace");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for map in ["uid_map", "gid_map"] {
        fs::write(format!("/proc/{}/{map}", child.id()), "0 0 65536\n").unwrap();
    }
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("user namespaces are disabled"), "{err}");
    assert!(err.contains("sysctl -w user.max_user_namespaces="), "{err}");
}

/// hardening.rs's capability and `--output type=local` checks, rootless:
/// RUN steps get the same explicit capability sets as root's (Docker's
/// default set for root, nothing for another user, nothing inheritable or
/// ambient); the local output strips setuid/setgid, writes no device node
/// (the kernel lets none be made in the namespace, so `mknod` in a RUN
/// fails and leaves none to write), and everything it writes belongs to
/// the user or its subordinate ids, never to root or anybody else.
#[test]
fn rootless_run_capabilities_and_local_output_are_hardened() {
    let s = Scratch::new("hardening", &user(WITH_RANGES));
    let base = base_tarball().to_str().unwrap();
    s.ok(&["import", base, "rbk-busybox:latest"], &[]);
    let ctx = s.dir.join("ctx");
    fs::create_dir(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM rbk-busybox:latest\n\
         RUN cat /proc/self/status > /root.status\n\
         RUN cp /bin/busybox /suid && chmod 4755 /suid \
          && cp /bin/busybox /sgid && chmod 2755 /sgid && mkfifo /fifo \
          && if mknod /dev-null-copy c 1 3; then echo made > /mknod; fi\n\
         USER 1000:1000\n\
         RUN cat /proc/self/status > /tmp/uid.status\n",
    )
    .unwrap();
    s.share(&ctx);
    let out = s.dir.join("home/out");
    let spec = format!("type=local,dest={}", out.display());
    user_build(&s, &ctx, &["--output", &spec]);

    let root_caps = support::cap_sets(&fs::read_to_string(out.join("root.status")).unwrap());
    for (set, want) in [
        ("CapEff", DEFAULT_CAPS),
        ("CapPrm", DEFAULT_CAPS),
        ("CapBnd", DEFAULT_CAPS),
        ("CapInh", 0),
        ("CapAmb", 0),
    ] {
        assert_eq!(root_caps[set], want, "{set}: {root_caps:x?}");
    }
    let caps = support::cap_sets(&fs::read_to_string(out.join("tmp/uid.status")).unwrap());
    for set in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
        assert_eq!(caps[set], 0, "{set}: {caps:x?}");
    }
    assert_eq!(caps["CapBnd"], DEFAULT_CAPS, "{caps:x?}");

    assert!(!out.join("mknod").exists(), "mknod worked in the namespace");
    assert!(fs::symlink_metadata(out.join("dev-null-copy")).is_err());
    support::assert_local_output_stripped(&out);
    let (start, count) = s.user.subuids.unwrap();
    let ours = |uid: u32| uid == s.user.uid || (start..start + count).contains(&uid);
    let mut stack = vec![out.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            assert!(
                ours(meta.uid()),
                "{} owned by {}",
                path.display(),
                meta.uid()
            );
            assert_eq!(meta.mode() & 0o6000, 0, "{} keeps setid", path.display());
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
}
