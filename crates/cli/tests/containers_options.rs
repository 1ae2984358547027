//! `rbk run`'s options beyond the process (issue 13): `-v` binds and named
//! volumes, `--mount` (bind, volume, tmpfs), `--read-only`, `--cap-add`/
//! `--cap-drop`, `--privileged`, `--init`, `--env-file`, `--pull`, the
//! `/etc` files, and docker's errors for bad specs.

use std::path::{Path, PathBuf};

mod support;

use support::{context, ok, rbk, stderr, stdout};

fn base(dir: &Path) -> PathBuf {
    let root = support::store(dir);
    let ctx = context(dir, &[("Dockerfile", "FROM rbk-busybox\nCMD [\"sh\"]\n")]);
    ok(&root, &support::build_args(&ctx, &["-t", "base:1"]));
    root
}

/// The effective capability mask of the container's process.
fn cap_eff(root: &Path, extra: &[&str]) -> u64 {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["base:1", "grep", "CapEff", "/proc/self/status"]);
    let out = stdout(&ok(root, &args));
    let hex = out.split_whitespace().nth(1).unwrap();
    u64::from_str_radix(hex, 16).unwrap()
}

#[test]
fn mounts_read_only_caps_init_and_env_files() {
    let dir = support::scratch("containers-options");
    let root = base(&dir);
    let host = dir.join("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "from host\n").unwrap();
    let bind = format!("{}:/data:ro", host.display());
    let out = rbk(
        &root,
        &[
            "run",
            "--rm",
            "-v",
            &bind,
            "-v",
            "cache:/vol",
            "--mount",
            "type=tmpfs,target=/scratch,tmpfs-size=1m",
            "base:1",
            "sh",
            "-c",
            "cat /data/f; echo kept > /vol/v; grep -c ' /scratch tmpfs' /proc/mounts; \
             echo no > /data/g || echo refused",
        ],
    );
    assert_eq!(stdout(&out), "from host\n1\nrefused\n", "{}", stderr(&out));
    assert!(!host.join("g").exists());
    // A named volume outlives the container; --mount type=volume names it too.
    let out = ok(
        &root,
        &[
            "run",
            "--rm",
            "--mount",
            "type=volume,source=cache,target=/v2",
            "base:1",
            "cat",
            "/v2/v",
        ],
    );
    assert_eq!(stdout(&out), "kept\n");
    assert_eq!(
        std::fs::read_to_string(root.join("volumes/cache/_data/v")).unwrap(),
        "kept\n"
    );
    let out = rbk(
        &root,
        &["run", "--rm", "--read-only", "base:1", "touch", "/x"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    // Capabilities: docker's 14 by default; drop all but one; privileged.
    let default = cap_eff(&root, &[]);
    assert_eq!(default.count_ones(), 14, "{default:x}");
    assert_eq!(
        cap_eff(&root, &["--cap-drop", "ALL", "--cap-add", "net_admin"]),
        1 << 12
    );
    assert_eq!(cap_eff(&root, &["--cap-drop", "CHOWN"]), default & !1);
    assert!(cap_eff(&root, &["--privileged"]).count_ones() > 30);
    // --init runs tini as pid 1 with the command under it.
    let out = ok(
        &root,
        &["run", "--rm", "--init", "base:1", "cat", "/proc/1/cmdline"],
    );
    assert_eq!(
        stdout(&out).replace('\0', " ").trim(),
        "/sbin/docker-init -- cat /proc/1/cmdline"
    );
    // --env-file, overridden by -e; the /etc files are there.
    let env = dir.join("env");
    std::fs::write(&env, "# settings\nA=1\n\nB=two words\n").unwrap();
    let out = ok(
        &root,
        &[
            "run", "--rm", "--env-file", env.to_str().unwrap(), "-e", "A=3", "--hostname", "box",
            "base:1", "sh", "-c", "echo $A $B; cat /etc/hostname; grep -c box /etc/hosts; test -f /etc/resolv.conf && echo resolv",
        ],
    );
    assert_eq!(stdout(&out), "3 two words\nbox\n1\nresolv\n");
    // --pull never with a missing image; always with a local-only one fails
    // to reach a registry.
    let never = rbk(
        &root,
        &["run", "--rm", "--pull", "never", "nosuch:1", "true"],
    );
    assert!(
        stderr(&never).contains("No such image"),
        "{}",
        stderr(&never)
    );
    let bad = rbk(
        &root,
        &["run", "--rm", "--pull", "sometimes", "base:1", "true"],
    );
    assert!(
        stderr(&bad).contains("invalid pull policy"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn bad_specs_get_docker_errors_and_make_no_container() {
    let dir = support::scratch("containers-badspecs");
    let root = base(&dir);
    let cases: &[(&[&str], &str)] = &[
        (&["-v", "a:b"], "mount path must be absolute"),
        (&["-v", "/a:/b:rx"], "invalid mode: rx"),
        (&["-v", "a:b:c:d"], "invalid volume specification"),
        (&["-v", "bad/name:/x"], "a host path must be absolute"),
        (
            &["--mount", "type=bind,src=/nonexistent-rbk,dst=/x"],
            "bind source path does not exist",
        ),
        (
            &["--mount", "type=nfs,dst=/x"],
            "mount type 'nfs' is not supported",
        ),
        (
            &["--mount", "type=tmpfs,bogus=1,dst=/x"],
            "invalid field 'bogus'",
        ),
        (&["--mount", "type=tmpfs"], "target is required"),
        (&["--cap-add", "FLY"], "unknown capability: \"CAP_FLY\""),
        (
            &["--env-file", "/nonexistent-rbk-env"],
            "/nonexistent-rbk-env",
        ),
        (&["--network", "bridge2"], "invalid --network"),
        (&["--platform", "linux/amd64,linux/arm64"], "one platform"),
    ];
    for (flags, message) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["base:1", "true"]);
        let out = rbk(&root, &args);
        assert!(!out.status.success(), "{flags:?} succeeded");
        assert!(
            stderr(&out).contains(message),
            "{flags:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(stdout(&ok(&root, &["ps", "-a", "-q"])), "");
}

#[test]
fn volume_create_ls_inspect_rm_and_prune() {
    let dir = support::container_scratch("containers-volumes");
    let root = base(&dir);
    assert_eq!(stdout(&ok(&root, &["volume", "create", "data"])), "data\n");
    // A named volume outlives its container, seen through -v and --mount.
    ok(
        &root,
        &[
            "run",
            "--name",
            "w",
            "-v",
            "data:/v",
            "base:1",
            "sh",
            "-c",
            "echo kept > /v/f",
        ],
    );
    let read = ok(
        &root,
        &[
            "run",
            "--rm",
            "--mount",
            "type=volume,source=data,target=/m",
            "base:1",
            "cat",
            "/m/f",
        ],
    );
    assert_eq!(stdout(&read), "kept\n");
    // `run -v NAME:` makes a volume that does not exist yet.
    ok(&root, &["run", "--rm", "-v", "other:/o", "base:1", "true"]);
    assert_eq!(stdout(&ok(&root, &["volume", "ls", "-q"])), "data\nother\n");
    let table = stdout(&ok(&root, &["volume", "ls"]));
    assert!(
        table.starts_with("DRIVER") && table.contains("local     data"),
        "{table}"
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&ok(&root, &["volume", "inspect", "data"]).stdout).unwrap();
    let mountpoint = doc[0]["Mountpoint"].as_str().unwrap();
    assert_eq!(doc[0]["Name"], "data");
    assert_eq!(
        std::fs::read_to_string(Path::new(mountpoint).join("f")).unwrap(),
        "kept\n"
    );
    // system df counts both, one in use (by w).
    let df = stdout(&ok(
        &root,
        &[
            "system",
            "df",
            "--format",
            "{{.Type}} {{.TotalCount}} {{.Active}}",
        ],
    ));
    assert!(df.contains("Local Volumes 2 1"), "{df}");
    // In use by container w (stopped): rm refuses and prune keeps it.
    let out = rbk(&root, &["volume", "rm", "data"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("volume is in use"),
        "{}",
        stderr(&out)
    );
    let pruned = stdout(&ok(&root, &["volume", "prune", "-f"]));
    assert!(pruned.contains("Deleted Volumes:\nother\n"), "{pruned}");
    assert_eq!(stdout(&ok(&root, &["volume", "ls", "-q"])), "data\n");
    ok(&root, &["rm", "w"]);
    assert_eq!(stdout(&ok(&root, &["volume", "rm", "data"])), "data\n");
    assert_eq!(stdout(&ok(&root, &["volume", "ls", "-q"])), "");
    // Bad input: a volume that does not exist, a name that is not valid.
    for args in [
        &["volume", "rm", "nope"][..],
        &["volume", "inspect", "nope"],
        &["volume", "create", "../x"],
    ] {
        let out = rbk(&root, args);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("no such volume: nope") || err.contains("invalid characters"),
            "{args:?}: {err}"
        );
    }
}
