//! Real Dockerfiles on a real distribution: a Debian bookworm base made
//! with debootstrap and `docker import` (see `support::debian`), loaded into
//! rbk, built on with apt, useradd, a Python venv with pip and Node with
//! npm, and the resulting images run by Docker (`docker load` + `docker run
//! --network none`). The Dockerfiles are under `testdata/real-debian/`.
//!
//! Builds are kept few, because apt, pip and npm are slow: one multi-stage
//! app (two apt steps, one of them the ~400-package npm install, pip, npm
//! under a cache mount, a slim final stage), one small apt build with its
//! cache in cache mounts (built twice), and one network-free Dockerfile
//! for users and the container's devices.

mod support;

use std::path::{Path, PathBuf};

use support::{debian, docker, ok, stderr, stdout};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/real-debian")
        .join(name)
}

/// A fresh store under the test's scratch dir with the Debian base loaded.
fn store_with_base(name: &str) -> (PathBuf, PathBuf) {
    let archive = debian::base_archive(docker::engine());
    let dir = support::scratch(&format!("real-debian-{name}"));
    let root = dir.join("root");
    let out = ok(&root, &["load", "-i", archive.to_str().unwrap()]);
    assert!(
        stdout(&out).contains(debian::IMAGE),
        "rbk load did not name {}: {}",
        debian::IMAGE,
        stdout(&out)
    );
    (dir, root)
}

/// `rbk build -t TAG EXTRA... CTX`, failing with the build log.
fn build(root: &Path, ctx: &Path, tag: &str, extra: &[String]) -> String {
    let mut args = vec!["build", "--progress=plain", "-t", tag];
    args.extend(extra.iter().map(String::as_str));
    args.push(ctx.to_str().unwrap());
    let out = support::rbk(root, &args);
    let log = stderr(&out);
    assert!(out.status.success(), "rbk build of {ctx:?} failed:\n{log}");
    log
}

/// Saves `tag` from rbk's store, loads it into Docker and runs it with no
/// network; returns what it printed.
fn docker_run(root: &Path, dir: &Path, tag: &str, cmd: &[&str]) -> String {
    let docker = docker::engine();
    let archive = dir.join("image.tar");
    ok(root, &["save", "-o", archive.to_str().unwrap(), tag]);
    docker.ok(&["load", "-i", archive.to_str().unwrap()]);
    let mut args = vec!["run", "--rm", "--network", "none", tag];
    args.extend_from_slice(cmd);
    String::from_utf8_lossy(&docker.ok(&args).stdout).into_owned()
}

/// The config blob of the image tagged `full` in the store's OCI layout.
fn stored_config(root: &Path, full: &str) -> serde_json::Value {
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let blob = |digest: &serde_json::Value| {
        let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
        read(root.join("blobs/sha256").join(hex))
    };
    let index = read(root.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == full)
        .unwrap_or_else(|| panic!("{full} not tagged in {index}"));
    blob(&blob(&entry["digest"])["config"]["digest"])
}

#[test]
fn the_apt_mirror_is_read_from_either_source_format() {
    let deb822 = "Types: deb\nURIs: http://m.example/debian-security\n\
                  Suites: bookworm-security\n\n\
                  Types: deb\nURIs: http://m.example/debian\n\
                  Suites: bookworm bookworm-updates\nComponents: main\n";
    assert_eq!(
        debian::deb822_mirror(deb822).as_deref(),
        Some("http://m.example/debian")
    );
    let classic = "# c\ndeb [arch=amd64] http://m.example/d bookworm main\n";
    assert_eq!(
        debian::classic_mirror(classic).as_deref(),
        Some("http://m.example/d")
    );
    assert_eq!(debian::classic_mirror("deb http://x bullseye main\n"), None);
    assert!(debian::mirror().starts_with("http"));
}

#[test]
fn the_imported_base_keeps_dockers_config_and_runs() {
    let (dir, root) = store_with_base("base");
    // Docker's own config, with its nulls, is what rbk holds.
    let config = stored_config(&root, &format!("docker.io/{}", debian::IMAGE));
    let explicit_null = |key: &str| config["config"].get(key).is_some_and(|v| v.is_null());
    assert!(
        explicit_null("Env") && explicit_null("Entrypoint"),
        "{config}"
    );
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
    let ctx = support::context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-real/debian:bookworm\n\
             RUN . /etc/os-release && echo \"$ID $VERSION_CODENAME\" > /os\n\
             CMD [\"cat\", \"/os\"]\n",
        )],
    );
    build(&root, &ctx, "real-base:test", &[]);
    assert_eq!(
        docker_run(&root, &dir, "real-base:test", &[]),
        "debian bookworm\n"
    );
}

/// useradd + USER + WORKDIR and what a real RUN step expects of its
/// container; the step writes a report that the image's CMD prints.
#[test]
fn users_workdir_and_the_containers_devices() {
    let (dir, root) = store_with_base("user");
    build(&root, &testdata("user"), "real-user:test", &[]);
    let report = docker_run(&root, &dir, "real-user:test", &[]);
    // The step's open-file limit is the builder's own (as in BuildKit),
    // not oci-spec's or runc's default of 1024.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let nofile = format!("nofile={}", limit.current.unwrap_or(u64::MAX));
    let expected = [
        "id=app:builders groups=builders,staff,users",
        "home=/home/app cwd=/home/app/work owner=app:builders",
        "tmp=1777 mktemp=tmp",
        "null=1,3",
        "urandom=16",
        "pty=/dev/pts/N",
        "proc=1",
        "setuid=app:L",
        "privs=0000000000000000 0000000000000000 0 ",
        &nofile,
        "hosts=127.0.0.1",
        "resolv=1",
    ];
    assert_eq!(report.lines().collect::<Vec<_>>(), expected, "{report}");
}

/// apt, a pip venv and npm (cache mount), copied into a slim final stage
/// that runs as a user made with useradd.
#[test]
fn a_python_and_node_app_in_a_slim_final_stage() {
    let (dir, root) = store_with_base("app");
    let log = build(
        &root,
        &testdata("app"),
        "real-app:test",
        &debian::package_args(),
    );
    assert!(log.contains("Successfully installed six-1.16.0"), "{log}");
    assert!(log.contains("added 1 package"), "{log}");
    let out = docker_run(&root, &dir, "real-app:test", &[]);
    assert_eq!(
        out,
        "python 3 six 1.16.0 True\nnode v18 is-number 7.0.0 true\n\
         user=app home=/home/app cwd=/app\n"
    );
    // Slim: the interpreters and the venv, but no npm, no apt lists and
    // nothing of the npm cache mount.
    let check = "command -v npm || echo no-npm; \
                 /opt/venv/bin/python -m pip --version >/dev/null 2>&1 && echo pip-in-venv; \
                 ls /var/lib/apt/lists | wc -l; \
                 test -e /root/.npm && echo npm-cache; true";
    let slim = docker_run(&root, &dir, "real-app:test", &["sh", "-c", check]);
    assert_eq!(slim, "no-npm\npip-in-venv\n0\n", "{slim}");
}

/// apt with its cache and lists in `sharing=locked` cache mounts: the
/// second build (`--no-cache`) finds the first one's packages.
#[test]
fn apt_with_cache_mounts_reuses_downloads() {
    let (dir, root) = store_with_base("apt-cache");
    let ctx = testdata("apt-cache");
    build(&root, &ctx, "real-apt:test", &[]);
    let first = docker_run(&root, &dir, "real-apt:test", &[]);
    assert_eq!(first, "0\nsymbolic link to dash\n");
    build(&root, &ctx, "real-apt:test", &["--no-cache".to_string()]);
    let second = docker_run(&root, &dir, "real-apt:test", &[]);
    let debs: u32 = second.lines().next().unwrap().parse().unwrap();
    assert!(debs >= 2, "the cache mount lost the packages: {second}");
    assert!(second.ends_with("\nsymbolic link to dash\n"), "{second}");
}
