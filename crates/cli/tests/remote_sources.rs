//! `ADD <url>` and `ADD <git url>` through the binary, against real servers
//! on loopback: a Python `http.server` (ETag, Last-Modified, conditional
//! requests, redirects, stalls, lying lengths, a proxy) and `git daemon`
//! serving repositories made here with tags, branches and a submodule.
//! Needs root, runc and /usr/bin/busybox like `build.rs`, and python3 and git.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

mod support;

use support::remote::{git, GitDaemon, HttpServer};
use support::{build, context, export, ran, stderr, store};

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("remote-{name}"))
}

fn set_mtime(path: &Path, secs: u64) {
    let f = fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

fn write_dockerfile(ctx: &Path, text: &str) {
    fs::create_dir_all(ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), text).unwrap();
}

#[test]
fn add_url_is_cached_by_content_and_revalidated() {
    let dir = scratch("http-cache");
    let root = store(&dir);
    let server = HttpServer::start(&dir);
    let served = server.dir.join("a.txt");
    fs::write(&served, "one\n").unwrap();
    set_mtime(&served, 1_600_000_000);
    let ctx = context(&dir, &[]);
    write_dockerfile(
        &ctx,
        &format!(
            "FROM rbk-busybox\nRUN echo before > /before\nADD {} /a.txt\n\
             RUN cat /a.txt > /after && stat -c '%a %Y' /a.txt >> /after\n",
            server.url("/f/a.txt")
        ),
    );
    let out = export(&root, &ctx, &dir, &[]);
    // BuildKit's mode and time: 0600, Last-Modified.
    assert_eq!(
        fs::read_to_string(out.join("after")).unwrap(),
        "one\n600 1600000000\n"
    );
    let meta = fs::metadata(out.join("a.txt")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(meta.mtime(), 1_600_000_000);

    // Unchanged: a conditional request answered 304, every step cached.
    let before = server.requests().len();
    let second = build(&root, &ctx, &[]);
    assert!(second.status.success(), "{}", stderr(&second));
    let log = stderr(&second);
    let steps = ran(&log);
    assert!(
        steps.iter().all(|s| s.contains("load http://")),
        "steps re-ran with an unchanged remote file: {steps:?}\n{log}"
    );
    let requests = server.requests();
    let new = &requests[before..];
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(
        new[0].contains(" 304 cond=yes bytes=0"),
        "no conditional request: {new:?}"
    );

    // Changed: only the steps after the ADD run again.
    fs::write(&served, "two\n").unwrap();
    set_mtime(&served, 1_700_000_000);
    let third = build(&root, &ctx, &[]);
    assert!(third.status.success(), "{}", stderr(&third));
    let steps = ran(&stderr(&third));
    assert!(
        steps.iter().any(|s| s.contains("RUN cat /a.txt")),
        "{steps:?}"
    );
    assert!(steps.iter().any(|s| s.contains("ADD http://")), "{steps:?}");
    assert!(
        !steps.iter().any(|s| s.contains("RUN echo before")),
        "a step before the ADD re-ran: {steps:?}"
    );
    let last = server.requests().last().cloned().unwrap();
    assert!(last.contains(" 200 cond=yes bytes=4"), "{last}");
    let out = export(&root, &ctx, &dir, &[]);
    assert_eq!(
        fs::read_to_string(out.join("after")).unwrap(),
        "two\n600 1700000000\n"
    );
}

#[test]
fn add_url_names_checksums_modes_redirects_and_proxies() {
    let dir = scratch("http-forms");
    let root = store(&dir);
    let server = HttpServer::start(&dir);
    fs::write(server.dir.join("tool.sh"), "#!/bin/sh\necho tool\n").unwrap();
    fs::write(server.dir.join("named.txt"), "named\n").unwrap();
    let sum = support::remote::sha256_hex(b"#!/bin/sh\necho tool\n");
    let ctx = context(&dir, &[]);
    write_dockerfile(
        &ctx,
        &format!(
            "FROM rbk-busybox\n\
             ADD --checksum=sha256:{sum} --chmod=0755 {tool} /bin/\n\
             ADD {redirect} /r/\n\
             ADD {cd} /dl/\n\
             ADD http://rbk-proxied.invalid/f/named.txt /proxied.txt\n",
            tool = server.url("/f/tool.sh"),
            redirect = server.url("/redirect/named.txt"),
            cd = server.url("/cd/?name=named.txt"),
        ),
    );
    let proxy = format!("http://127.0.0.1:{}", server.port);
    let out = {
        let outdir = dir.join("out");
        let spec = format!("type=local,dest={}", outdir.display());
        let result = support::command(
            &root,
            &support::build_args(&ctx, &["--output", spec.as_str()]),
        )
        .env("HTTP_PROXY", &proxy)
        .env("NO_PROXY", "127.0.0.1")
        .output()
        .unwrap();
        assert!(result.status.success(), "{}", stderr(&result));
        outdir
    };
    let tool = out.join("bin/tool.sh");
    assert_eq!(
        fs::metadata(&tool).unwrap().permissions().mode() & 0o7777,
        0o755
    );
    // The name comes from the URL path, after the redirect the original one.
    assert_eq!(
        fs::read_to_string(out.join("r/named.txt")).unwrap(),
        "named\n"
    );
    // No name in the URL path: Content-Disposition names the file.
    assert_eq!(
        fs::read_to_string(out.join("dl/named.txt")).unwrap(),
        "named\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("proxied.txt")).unwrap(),
        "named\n"
    );
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/f/named.txt 200") && r.contains("proxied=yes")),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .filter(|r| r.contains("127.0.0.1") || !r.contains("proxied=yes"))
            .all(|r| !r.contains("proxied=yes")),
        "NO_PROXY was not honoured: {requests:?}"
    );
}

/// Builds `ADD <url> /x` and returns the failing build's stderr.
fn failing_add(root: &Path, dir: &Path, url: &str, flags: &str, env: &[(&str, &str)]) -> String {
    let ctx = dir.join(format!(
        "ctx-{}",
        support::remote::sha256_hex(url.as_bytes())
    ));
    write_dockerfile(&ctx, &format!("FROM rbk-busybox\nADD {flags} {url} /x\n"));
    let mut cmd = support::command(root, &support::build_args(&ctx, &[]));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "ADD {url} built");
    stderr(&out)
}

#[test]
fn add_url_bad_inputs_fail_clearly() {
    let dir = scratch("http-bad");
    let root = store(&dir);
    let server = HttpServer::start(&dir);
    fs::write(server.dir.join("a.txt"), "0123456789abcdef\n").unwrap();
    let quick = [("RBK_HTTP_TIMEOUT", "1"), ("RBK_HTTP_RETRIES", "1")];

    let err = failing_add(&root, &dir, &server.url("/f/missing"), "", &quick);
    assert!(err.contains("HTTP 404"), "{err}");
    assert!(err.contains("/f/missing"), "{err}");

    let err = failing_add(&root, &dir, &server.url("/loop/0"), "", &quick);
    assert!(err.contains("redirect"), "{err}");

    let err = failing_add(&root, &dir, &server.url("/stall/a.txt"), "", &quick);
    assert!(err.contains("no data for 1s"), "{err}");
    assert!(err.contains("gave up after 2 attempts"), "{err}");

    let err = failing_add(&root, &dir, &server.url("/short/a.txt"), "", &quick);
    assert!(err.contains("reading the body"), "{err}");

    let err = failing_add(&root, &dir, &server.url("/status/500"), "", &quick);
    assert!(err.contains("HTTP 500"), "{err}");
    assert!(err.contains("gave up after 2 attempts"), "{err}");

    let big = [("RBK_HTTP_MAX_SIZE", "8")];
    let err = failing_add(&root, &dir, &server.url("/f/a.txt"), "", &big);
    assert!(err.contains("larger than the limit of 8 bytes"), "{err}");

    let wrong = format!("--checksum=sha256:{}", "0".repeat(64));
    let err = failing_add(&root, &dir, &server.url("/f/a.txt"), &wrong, &quick);
    let actual = support::remote::sha256_hex(b"0123456789abcdef\n");
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(err.contains(&format!("sha256:{}", "0".repeat(64))), "{err}");
    assert!(err.contains(&format!("sha256:{actual}")), "{err}");

    // Nothing the failures fetched reached a layer, and the store verifies.
    let verify = support::rbk(&root, &["system", "verify"]);
    assert!(verify.status.success(), "{}", stderr(&verify));

    // A server that fails twice, then answers: retried with backoff.
    let ctx = dir.join("ctx-flaky");
    write_dockerfile(
        &ctx,
        &format!(
            "FROM rbk-busybox\nADD {} /x\n",
            server.url("/flaky/2/a.txt")
        ),
    );
    let out = build(&root, &ctx, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let flaky: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.contains("/flaky/"))
        .collect();
    assert_eq!(flaky.len(), 3, "{flaky:?}");
}

#[test]
fn add_url_body_longer_than_content_length_never_reaches_the_build() {
    let dir = scratch("http-overlong");
    let root = store(&dir);
    let server = HttpServer::start(&dir);
    fs::write(server.dir.join("a.txt"), "0123456789abcdef\n").unwrap();
    let ctx = context(&dir, &[]);
    write_dockerfile(
        &ctx,
        &format!(
            "FROM rbk-busybox\nADD {} /x\n",
            server.url("/overlong/a.txt")
        ),
    );
    let out = build(&root, &ctx, &[]);
    let text = stderr(&out);
    // The client reads no further than Content-Length: the build either
    // fails or sees exactly the declared bytes, never the excess.
    if out.status.success() {
        let out = export(&root, &ctx, &dir, &[]);
        assert_eq!(fs::read_to_string(out.join("x")).unwrap(), "0123456789ab");
    } else {
        assert!(text.contains("Content-Length"), "{text}");
    }
}

/// A repository with a tag, a branch, a subdirectory and a submodule
/// (served from `base`), and the commit ids of `v1` and `dev`.
fn make_repos(base: &Path) -> (String, String) {
    let sub = base.join("sub.git");
    let work = base.join("work-sub");
    fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    fs::write(work.join("lib.txt"), "from the submodule\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "sub"]);
    git(base, &["clone", "-q", "--bare", "work-sub", "sub.git"]);
    assert!(sub.is_dir());

    let work = base.join("work-main");
    fs::create_dir_all(work.join("app")).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    fs::write(work.join("README"), "v1\n").unwrap();
    fs::write(work.join("app/run.sh"), "#!/bin/sh\necho app\n").unwrap();
    fs::set_permissions(work.join("app/run.sh"), fs::Permissions::from_mode(0o775)).unwrap();
    std::os::unix::fs::symlink("app/run.sh", work.join("link")).unwrap();
    git(
        &work,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            "../sub.git",
            "vendor/sub",
        ],
    );
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "v1"]);
    git(&work, &["tag", "-a", "v1", "-m", "v1"]);
    let v1 = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["checkout", "-q", "-b", "dev"]);
    fs::write(work.join("README"), "dev\n").unwrap();
    git(&work, &["commit", "-q", "-am", "dev"]);
    let dev = git(&work, &["rev-parse", "HEAD"]);
    git(&work, &["checkout", "-q", "main"]);
    git(base, &["clone", "-q", "--bare", "work-main", "repo.git"]);
    git(
        &base.join("repo.git"),
        &["fetch", "-q", "../work-main", "dev:dev"],
    );
    (v1, dev)
}

#[test]
fn add_git_checks_out_refs_subdirs_and_submodules() {
    let dir = scratch("git-refs");
    let root = store(&dir);
    let served = dir.join("served");
    fs::create_dir_all(&served).unwrap();
    let (v1, dev) = make_repos(&served);
    let daemon = GitDaemon::start(&served);
    let repo = daemon.url("repo.git");
    let ctx = context(&dir, &[]);
    write_dockerfile(
        &ctx,
        &format!(
            "FROM rbk-busybox\n\
             ADD {repo}#v1 /v1\n\
             ADD {repo}#dev:app /dev-app\n\
             ADD {repo}#{dev} /by-id\n\
             ADD --keep-git-dir {repo}#main /kept\n\
             ADD {repo} /head\n"
        ),
    );
    let out = export(&root, &ctx, &dir, &[]);
    assert_eq!(fs::read_to_string(out.join("v1/README")).unwrap(), "v1\n");
    assert_eq!(
        fs::read_to_string(out.join("v1/vendor/sub/lib.txt")).unwrap(),
        "from the submodule\n"
    );
    assert!(!out.join("v1/.git").exists());
    assert!(!out.join("v1/vendor/sub/.git").exists());
    assert_eq!(
        fs::read_link(out.join("v1/link")).unwrap(),
        Path::new("app/run.sh")
    );
    let run = fs::metadata(out.join("v1/app/run.sh")).unwrap();
    assert_eq!(run.permissions().mode() & 0o7777, 0o755);
    assert_eq!(run.mtime(), 0);
    assert_eq!(
        fs::metadata(out.join("v1/README"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o644
    );
    assert!(out.join("dev-app/run.sh").is_file());
    assert!(!out.join("dev-app/README").exists());
    assert_eq!(
        fs::read_to_string(out.join("by-id/README")).unwrap(),
        "dev\n"
    );
    assert!(out.join("kept/.git").is_dir());
    assert_eq!(fs::read_to_string(out.join("head/README")).unwrap(), "v1\n");
    assert_ne!(v1, dev);
}

/// The diff ids of image `name` in the store at `root`.
fn diff_ids(root: &Path, name: &str) -> Vec<String> {
    support::config(root, name)["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn add_git_is_deterministic_and_follows_a_moving_branch() {
    let dir = scratch("git-determinism");
    let served = dir.join("served");
    fs::create_dir_all(&served).unwrap();
    make_repos(&served);
    let daemon = GitDaemon::start(&served);
    let repo = daemon.url("repo.git");
    let ctx = context(&dir, &[]);
    write_dockerfile(
        &ctx,
        &format!("FROM rbk-busybox\nADD {repo}#dev /src\nRUN cat /src/README > /seen\n"),
    );
    let one = store(&dir.join("one"));
    let two = store(&dir.join("two"));
    for root in [&one, &two] {
        let out = build(root, &ctx, &["-t", "g:1"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let (a, b) = (diff_ids(&one, "g:1"), diff_ids(&two, "g:1"));
    assert_eq!(a[a.len() - 2], b[b.len() - 2], "the ADD layers differ");

    // Unchanged branch: everything cached.
    let again = build(&one, &ctx, &[]);
    let steps = ran(&stderr(&again));
    assert!(steps.iter().all(|s| s.contains("load git://")), "{steps:?}");
    // The branch moves: the ADD and what follows run again.
    let work = served.join("work-main");
    git(&work, &["checkout", "-q", "dev"]);
    fs::write(work.join("README"), "dev2\n").unwrap();
    git(&work, &["commit", "-q", "-am", "dev2"]);
    git(
        &served.join("repo.git"),
        &["fetch", "-q", "../work-main", "+dev:dev"],
    );
    let moved = build(&one, &ctx, &["-t", "g:2"]);
    assert!(moved.status.success(), "{}", stderr(&moved));
    let steps = ran(&stderr(&moved));
    assert!(steps.iter().any(|s| s.contains("RUN cat")), "{steps:?}");
    assert_ne!(diff_ids(&one, "g:2"), a);
}

#[test]
fn add_git_bad_inputs_fail_clearly() {
    let dir = scratch("git-bad");
    let root = store(&dir);
    let served = dir.join("served");
    fs::create_dir_all(&served).unwrap();
    make_repos(&served);
    let daemon = GitDaemon::start(&served);
    let repo = daemon.url("repo.git");

    let err = failing_add(&root, &dir, &format!("{repo}#no-such-ref"), "", &[]);
    assert!(err.contains("\"no-such-ref\" not found"), "{err}");

    let err = failing_add(&root, &dir, &format!("{repo}#v1:nope"), "", &[]);
    assert!(err.contains("subdirectory \"nope\" not found"), "{err}");

    let err = failing_add(&root, &dir, &daemon.url("missing.git"), "", &[]);
    assert!(err.contains("git ls-remote failed"), "{err}");

    // A repository behind HTTP auth: without a token git is not allowed to
    // prompt and fails; with GIT_AUTH_TOKEN.<host> it checks out (dumb HTTP).
    let server = HttpServer::start(&dir.join("http"));
    for repo in ["repo.git", "sub.git"] {
        git(&served.join(repo), &["update-server-info"]);
        std::os::unix::fs::symlink(served.join(repo), server.dir.join(repo)).unwrap();
    }
    let url = server.url("/auth/s3cret/repo.git");
    let err = failing_add(&root, &dir, &format!("{url}#v1"), "", &[]);
    assert!(
        err.contains("terminal prompts disabled") || err.contains("Authentication failed"),
        "{err}"
    );
    assert!(!err.contains("s3cret\n"), "{err}");
    let ctx = dir.join("ctx-auth");
    write_dockerfile(&ctx, &format!("FROM rbk-busybox\nADD {url}#v1 /src\n"));
    let token = dir.join("token");
    fs::write(&token, "s3cret").unwrap();
    let secret = format!("id=GIT_AUTH_TOKEN.127.0.0.1,src={}", token.display());
    let out = export(&root, &ctx, &dir, &["--secret", secret.as_str()]);
    assert_eq!(fs::read_to_string(out.join("src/README")).unwrap(), "v1\n");
}

#[test]
fn build_contexts_replace_stages_images_and_from_names() {
    let dir = scratch("named");
    let root = store(&dir);
    let served = dir.join("served");
    fs::create_dir_all(&served).unwrap();
    make_repos(&served);
    let daemon = GitDaemon::start(&served);
    let extra = dir.join("extra");
    fs::create_dir_all(&extra).unwrap();
    fs::write(extra.join("data.txt"), "extra data\n").unwrap();
    fs::write(extra.join("secret.txt"), "not for the build\n").unwrap();
    fs::write(extra.join(".dockerignore"), "secret.txt\n").unwrap();
    let tools = dir.join("tools");
    fs::create_dir_all(&tools).unwrap();
    fs::write(tools.join("tool"), "from the context\n").unwrap();
    let unused = dir.join("unused");
    fs::create_dir_all(&unused).unwrap();
    let ctx = context(&dir, &[]);
    write_dockerfile(
        &ctx,
        "FROM rbk-busybox AS tools\nRUN echo from the stage > /tool\n\
         FROM base\n\
         COPY --from=extra /data.txt /data.txt\n\
         RUN --mount=from=extra,target=/m ls /m > /listing\n\
         COPY --from=extra / /extra/\n\
         COPY --from=tools /tool /tool\n\
         COPY --from=repo /README /repo-readme\n\
         COPY --from=docker-image://rbk-busybox /etc/group /direct-group\n",
    );
    let contexts = [
        format!("extra={}", extra.display()),
        format!("tools={}", tools.display()),
        "base=docker-image://rbk-busybox".to_string(),
        format!("repo={}#v1", daemon.url("repo.git")),
        format!("unused={}", unused.display()),
    ];
    let mut args: Vec<&str> = Vec::new();
    for c in &contexts {
        args.extend(["--build-context", c.as_str()]);
    }
    let outdir = dir.join("out");
    let spec = format!("type=local,dest={}", outdir.display());
    args.extend(["--output", spec.as_str()]);
    let result = build(&root, &ctx, &args);
    let log = stderr(&result);
    assert!(result.status.success(), "{log}");
    assert!(
        log.contains("build context \"unused\" (--build-context) is not used by any stage"),
        "{log}"
    );
    assert!(
        !log.contains("\"extra\" (--build-context) is not used"),
        "{log}"
    );
    assert_eq!(
        fs::read_to_string(outdir.join("data.txt")).unwrap(),
        "extra data\n"
    );
    let listing = fs::read_to_string(outdir.join("listing")).unwrap();
    assert!(listing.contains("data.txt"), "{listing}");
    // COPY sees the context through its own .dockerignore. (A bind mount
    // shows the directory whole, as it does for the main context.)
    assert!(outdir.join("extra/data.txt").is_file());
    assert!(
        !outdir.join("extra/secret.txt").exists(),
        "its .dockerignore was ignored"
    );
    // The named context overrides the stage of the same name.
    assert_eq!(
        fs::read_to_string(outdir.join("tool")).unwrap(),
        "from the context\n"
    );
    assert_eq!(
        fs::read_to_string(outdir.join("repo-readme")).unwrap(),
        "v1\n"
    );
    assert!(fs::read_to_string(outdir.join("direct-group"))
        .unwrap()
        .contains("app:x:1000"));

    // Bad values and uses fail naming the context.
    let bad = build(&root, &ctx, &["--build-context", "x=oci-layout:///nowhere"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("build context \"x\": oci-layout /nowhere: reading index.json"),
        "{}",
        stderr(&bad)
    );
    let missing = format!("x={}", dir.join("nope").display());
    let bad = build(&root, &ctx, &["--build-context", missing.as_str()]);
    assert!(
        stderr(&bad).contains("is not a directory"),
        "{}",
        stderr(&bad)
    );
    let local_base = format!("base={}", tools.display());
    let bad = build(&root, &ctx, &["--build-context", local_base.as_str()]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("build context \"base\" is a directory"),
        "{}",
        stderr(&bad)
    );
}

/// A gzip tar of `entries` (name, data); names are written raw, so they
/// may climb out (`../x`). `links` are symlinks (name, target).
fn tarball(entries: &[(&str, &str)], links: &[(&str, &str)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let raw_name = |h: &mut tar::Header, name: &str| {
        let bytes = &mut h.as_old_mut().name;
        bytes.fill(0);
        bytes[..name.len()].copy_from_slice(name.as_bytes());
    };
    for (name, target) in links {
        let mut h = support::header(tar::EntryType::Symlink, 0o777, 0);
        raw_name(&mut h, name);
        h.set_link_name(target).unwrap();
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
    }
    for (name, data) in entries {
        let mut h = support::header(tar::EntryType::Regular, 0o644, data.len() as u64);
        raw_name(&mut h, name);
        h.set_cksum();
        b.append(&h, data.as_bytes()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

#[test]
fn remote_build_contexts_from_tarballs_and_git() {
    let dir = scratch("remote-ctx");
    let root = store(&dir);
    let server = HttpServer::start(&dir.join("http"));
    fs::write(
        server.dir.join("ctx.tar.gz"),
        tarball(
            &[
                ("sub/Dockerfile", "FROM rbk-busybox\nCOPY a.txt /a.txt\n"),
                ("a.txt", "from the tarball\n"),
            ],
            &[],
        ),
    )
    .unwrap();
    // -f names a path inside the remote context.
    let outdir = dir.join("out");
    let spec = format!("type=local,dest={}", outdir.display());
    let url = server.url("/f/ctx.tar.gz");
    let out = support::rbk(
        &root,
        &[
            "build",
            "--progress=plain",
            "-f",
            "sub/Dockerfile",
            "--output",
            &spec,
            &url,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(outdir.join("a.txt")).unwrap(),
        "from the tarball\n"
    );

    // A git context with the Dockerfile from stdin (-f -).
    let served = dir.join("served");
    fs::create_dir_all(&served).unwrap();
    make_repos(&served);
    let daemon = GitDaemon::start(&served);
    let git_url = format!("{}#v1:app", daemon.url("repo.git"));
    let outdir = dir.join("out-git");
    let spec = format!("type=local,dest={}", outdir.display());
    let mut child = support::command(
        &root,
        &[
            "build",
            "--progress=plain",
            "-f",
            "-",
            "--output",
            &spec,
            &git_url,
        ],
    )
    .stdin(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM rbk-busybox\nCOPY run.sh /run.sh\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fs::read_to_string(outdir.join("run.sh"))
        .unwrap()
        .contains("echo app"));

    // Hostile archives: `../` entries and a symlink out, then a file
    // through it. Nothing lands outside the context.
    fs::write(
        server.dir.join("escape.tar.gz"),
        tarball(
            &[
                ("Dockerfile", "FROM rbk-busybox\n"),
                ("../escaped.txt", "out\n"),
            ],
            &[],
        ),
    )
    .unwrap();
    let link_target = dir.join("outside");
    fs::create_dir_all(&link_target).unwrap();
    let target = link_target.display().to_string();
    fs::write(
        server.dir.join("link.tar.gz"),
        tarball(
            &[
                ("Dockerfile", "FROM rbk-busybox\n"),
                ("out/pwned.txt", "out\n"),
            ],
            &[("out", target.as_str())],
        ),
    )
    .unwrap();
    // The store's extractor confines both: the build may go on, but every
    // byte stays inside the context.
    for name in ["escape.tar.gz", "link.tar.gz"] {
        let url = server.url(&format!("/f/{name}"));
        let out = support::rbk(&root, &["build", "--progress=plain", &url]);
        let text = stderr(&out);
        assert!(
            out.status.success() || text.contains("reading the build context"),
            "{name}: {text}"
        );
    }
    assert!(!link_target.join("pwned.txt").exists());

    // The same archive as a named context.
    let ctx = context(&dir, &[]);
    write_dockerfile(
        &ctx,
        "FROM rbk-busybox\nCOPY --from=arch /a.txt /from-archive\n",
    );
    let named = format!("arch={url}");
    let out = export(&root, &ctx, &dir, &["--build-context", named.as_str()]);
    assert_eq!(
        fs::read_to_string(out.join("from-archive")).unwrap(),
        "from the tarball\n"
    );
    assert_eq!(fs::read_dir(&link_target).unwrap().count(), 0);
    for path in walk_paths(&root) {
        if path.file_name().is_some_and(|n| n == "escaped.txt") {
            let parent = path.parent().unwrap().file_name().unwrap();
            assert_eq!(parent, "context", "escaped the context: {}", path.display());
        }
    }
    assert!(!dir.join("escaped.txt").exists());
}

fn walk_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            paths.push(e.path());
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(e.path());
            }
        }
    }
    paths
}

#[test]
fn oci_layout_build_contexts() {
    let dir = scratch("oci-layout");
    let root = store(&dir);
    // An OCI layout of the base image: rbk save --format oci, unpacked.
    let archive = dir.join("base.tar");
    support::ok(
        &root,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            archive.to_str().unwrap(),
            "rbk-busybox",
        ],
    );
    let layout = dir.join("layout");
    fs::create_dir_all(&layout).unwrap();
    tar::Archive::new(fs::File::open(&archive).unwrap())
        .unpack(&layout)
        .unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let ctx = context(&dir, &[]);
    write_dockerfile(&ctx, "FROM base\nRUN echo built > /built\n");
    let by_digest = format!("base=oci-layout://{}@{digest}", layout.display());
    let out = export(&root, &ctx, &dir, &["--build-context", by_digest.as_str()]);
    assert_eq!(fs::read_to_string(out.join("built")).unwrap(), "built\n");
    assert!(out.join("bin/busybox").is_file());

    // A broken index fails naming the layout, before any step.
    fs::write(layout.join("index.json"), "{\"manifests\": [").unwrap();
    let bad = build(&root, &ctx, &["--build-context", by_digest.as_str()]);
    assert!(!bad.status.success());
    let text = stderr(&bad);
    assert!(text.contains("index.json is not valid JSON"), "{text}");
    assert!(text.contains(&layout.display().to_string()), "{text}");
}
