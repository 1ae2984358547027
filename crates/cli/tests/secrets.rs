//! `RUN --mount=type=secret` with `rbk build --secret`, and
//! `RUN --mount=type=ssh` with `--ssh`: what the step sees, and that a
//! secret's value reaches neither the image nor the store nor the cache key.
//! Needs root, runc and /usr/bin/busybox, like `build.rs`.

use std::fs;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

mod support;

use support::flatten::read_archive;
use support::{context, ok, rbk, stderr, store};

const VALUE_1: &str = "s3cr3t-value-one-7f1c";
const VALUE_2: &str = "s3cr3t-value-two-93ab";

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("secrets-{name}"))
}

/// Files under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let data = fs::read(&path).unwrap_or_default();
                if data.windows(needle.len()).any(|w| w == needle) {
                    found.push(path);
                }
            }
        }
    }
    found
}

#[test]
fn secrets_are_mounted_for_the_step_and_kept_out_of_image_store_and_cache() {
    let dir = scratch("mounted");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\n\
             RUN --mount=type=secret,id=tok stat -c '%a %u %g' /run/secrets/tok > /perm && wc -c < /run/secrets/tok > /size\n\
             RUN --mount=type=secret,id=tok,env=TOK,target=/etc/tok.txt,mode=0440,uid=1000 \
                 test \"$TOK\" = \"$(cat /etc/tok.txt)\" && stat -c '%a %u' /etc/tok.txt > /envok\n\
             RUN --mount=type=secret,id=tok,env=ONLY_ENV test -n \"$ONLY_ENV\" && test ! -e /run/secrets/tok && echo yes > /env-only\n\
             RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo skipped > /optional\n",
        )],
    );
    let secret = dir.join("tok.txt");
    fs::write(&secret, VALUE_1).unwrap();
    let spec = format!("id=tok,src={}", secret.display());
    let build = |extra: &[&str]| {
        let mut args = vec![
            "build",
            "--progress=plain",
            "-t",
            "sec:1",
            "--secret",
            &spec,
        ];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        let out = rbk(&root, &args);
        assert!(out.status.success(), "build failed:\n{}", stderr(&out));
        stderr(&out)
    };
    let first = build(&[]);
    assert!(
        !first.contains(VALUE_1),
        "the log shows the secret:\n{first}"
    );

    let archive = dir.join("image.tar");
    ok(&root, &["save", "-o", archive.to_str().unwrap(), "sec:1"]);
    let image = read_archive(&archive);
    let text = |p: &str| String::from_utf8(image.files[p].data.clone().unwrap()).unwrap();
    assert_eq!(text("perm"), "400 0 0\n");
    assert_eq!(text("size").trim(), VALUE_1.len().to_string());
    assert_eq!(text("envok"), "440 1000\n");
    assert_eq!(text("env-only"), "yes\n");
    assert_eq!(text("optional"), "skipped\n");
    // The mountpoints were stubs: gone from the image.
    assert!(!image.files.contains_key("run"), "/run left in the image");
    assert!(!image.files.contains_key("etc/tok.txt"));
    // Neither the saved image nor any file of the store holds the value.
    assert!(files_containing(&dir.join("root"), VALUE_1.as_bytes()).is_empty());
    let saved = fs::read(&archive).unwrap();
    assert!(!saved
        .windows(VALUE_1.len())
        .any(|w| w == VALUE_1.as_bytes()));

    // A new value is not a new cache key (as in BuildKit): all cached.
    fs::write(&secret, VALUE_2).unwrap();
    let second = build(&[]);
    // The base image's metadata and the four RUNs.
    assert_eq!(
        second.matches("CACHED").count(),
        5,
        "every RUN should be a cache hit:\n{second}"
    );
}

#[test]
fn a_required_secret_that_was_not_given_fails_the_build() {
    let dir = scratch("required");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\nRUN --mount=type=secret,id=apikey,required=true cat /run/secrets/apikey\n",
        )],
    );
    let out = rbk(
        &root,
        &[
            "build",
            "--progress=plain",
            "-t",
            "req:1",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("secret apikey: not found"), "{err}");
    let images = String::from_utf8(ok(&root, &["images"]).stdout).unwrap();
    assert!(!images.contains("req"), "{images}");
}

#[test]
fn bad_secret_flags_are_named() {
    let dir = scratch("bad-flags");
    let root = store(&dir);
    let ctx = context(&dir, &[("Dockerfile", "FROM rbk-busybox\n")]);
    for (flag, value, says) in [
        (
            "--secret",
            "id=x,src=/nonexistent/secret",
            "/nonexistent/secret",
        ),
        ("--secret", "id=x,colour=red", "unknown key"),
        ("--ssh", "x=", "ID=SOCKET"),
    ] {
        let out = rbk(&root, &["build", flag, value, ctx.to_str().unwrap()]);
        assert!(!out.status.success(), "{flag} {value} was accepted");
        let err = stderr(&out);
        assert!(err.contains(says), "{flag} {value}: {err}");
    }
}

#[test]
fn ssh_mounts_get_a_forwarding_socket_and_ssh_auth_sock() {
    let dir = scratch("ssh");
    let root = store(&dir);
    let agent_path = dir.join("agent.sock");
    // Nothing in busybox speaks to a unix socket: the step checks the
    // socket's presence, type and mode (forwarding is a unit test in exec).
    let _agent = UnixListener::bind(&agent_path).unwrap();
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox\n\
             RUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\" && echo \"$SSH_AUTH_SOCK\" > /sock && stat -c '%a %u' \"$SSH_AUTH_SOCK\" >> /sock\n\
             RUN --mount=type=ssh,id=other,required=false test -z \"$SSH_AUTH_SOCK\" && echo none > /other\n",
        )],
    );
    let ssh = format!("default={}", agent_path.display());
    let out = rbk(
        &root,
        &[
            "build",
            "--progress=plain",
            "--ssh",
            &ssh,
            "-t",
            "ssh:1",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let archive = dir.join("image.tar");
    ok(&root, &["save", "-o", archive.to_str().unwrap(), "ssh:1"]);
    let image = read_archive(&archive);
    let text = |p: &str| String::from_utf8(image.files[p].data.clone().unwrap()).unwrap();
    assert_eq!(text("sock"), "/run/buildkit/ssh_agent.0\n600 0\n");
    assert_eq!(text("other"), "none\n");
    assert!(!image.files.contains_key("run"), "/run left in the image");

    // A required agent that was not given.
    let ctx2 = dir.join("ctx2");
    fs::create_dir_all(&ctx2).unwrap();
    fs::write(
        ctx2.join("Dockerfile"),
        "FROM rbk-busybox\nRUN --mount=type=ssh,required=true true\n",
    )
    .unwrap();
    let out = rbk(
        &root,
        &["build", "--progress=plain", ctx2.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no SSH agent socket"),
        "{}",
        stderr(&out)
    );
}
