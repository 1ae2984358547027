//! SBOM and provenance attestations (issue 16): stored as attestation
//! manifests in the image index the way BuildKit stores them, readable with
//! `rbk inspect --attestations`, pushed with the image (checked with
//! `skopeo inspect --raw` against a real docker-registry), never holding a
//! secret; a corrupt package database only warns; and the SBOM of the real
//! Debian base lists exactly what `dpkg-query -W` lists inside it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::Digest as _;

mod support;

use support::registry::Registry;
use support::tools::Tool;
use support::{build, context, docker, ok, stderr, stdout, store};

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("attestations-{name}"))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The manifest digest (`sha256:HEX`) an in-toto statement is about.
fn subject(statement: &Value) -> String {
    let hex = statement["subject"][0]["digest"]["sha256"].as_str();
    format!(
        "sha256:{}",
        hex.unwrap_or_else(|| panic!("no subject: {statement}"))
    )
}

/// A registry, a store and an image built from a one-RUN Dockerfile with
/// `extra` flags (the image's name `{registry}/{repo_tag}`).
fn attested_in_registry(name: &str, repo_tag: &str, extra: &[&str]) -> (PathBuf, Registry, String) {
    let dir = scratch(name);
    let reg = Registry::start(&dir.join("registry"), None);
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[("Dockerfile", "FROM rbk-busybox\nRUN echo hi > /hi\n")],
    );
    let image = format!("{}/{repo_tag}", reg.host);
    let mut args = vec!["-t", image.as_str()];
    args.extend_from_slice(extra);
    let out = build(&root, &ctx, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    (root, reg, image)
}

fn blob(root: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(
        root.join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap()),
    )
    .unwrap()
}

fn tagged(root: &Path, full: &str) -> Value {
    let index = read_json(&root.join("index.json"));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == full)
        .unwrap_or_else(|| panic!("{full} not tagged"))
        .clone()
}

const DOCKERFILE: &str = "FROM rbk-busybox\n\
    RUN --mount=type=secret,id=token cat /run/secrets/token > /dev/null && mkdir -p /var/lib/dpkg /usr/lib/python3/dist-packages/requests-2.31.0.dist-info /app && \
    printf 'Package: foo\\nStatus: install ok installed\\nVersion: 1.2-3\\nArchitecture: amd64\\n\\nPackage: old\\nStatus: purge ok not-installed\\n\\n' > /var/lib/dpkg/status && \
    printf 'Metadata-Version: 2.1\\nName: requests\\nVersion: 2.31.0\\n' > /usr/lib/python3/dist-packages/requests-2.31.0.dist-info/METADATA\n\
    COPY package-lock.json /app/\n";

const LOCK: &str = r#"{"name":"app","lockfileVersion":3,"packages":{"":{"name":"app"},"node_modules/left-pad":{"version":"1.3.0"}}}"#;

#[test]
fn sbom_and_provenance_live_in_the_index_and_keep_secrets_out() {
    let dir = scratch("store");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[("Dockerfile", DOCKERFILE), ("package-lock.json", LOCK)],
    );
    let secret = dir.join("token");
    std::fs::write(&secret, "TOPSECRET-VALUE-42\n").unwrap();
    let out = build(
        &root,
        &ctx,
        &[
            "-t",
            "attested:1",
            "--sbom=true",
            "--attest",
            "type=provenance,mode=max",
            "--secret",
            &format!("id=token,src={}", secret.display()),
            "--build-arg",
            "GREETING=hello",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // The tag names an OCI index: the image, then its attestation manifest.
    let entry = tagged(&root, "docker.io/library/attested:1");
    assert_eq!(
        entry["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let index: Value =
        serde_json::from_slice(&blob(&root, entry["digest"].as_str().unwrap())).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2, "{index}");
    let image = &manifests[0];
    assert_eq!(image["platform"]["os"], "linux");
    let att = &manifests[1];
    assert_eq!(
        att["platform"],
        serde_json::json!({"architecture": "unknown", "os": "unknown"})
    );
    assert_eq!(
        att["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(
        att["annotations"]["vnd.docker.reference.digest"],
        image["digest"]
    );
    let att_manifest: Value =
        serde_json::from_slice(&blob(&root, att["digest"].as_str().unwrap())).unwrap();
    let layers = att_manifest["layers"].as_array().unwrap();
    let types: Vec<&str> = layers
        .iter()
        .map(|l| {
            assert_eq!(l["mediaType"], "application/vnd.in-toto+json");
            l["annotations"]["in-toto.io/predicate-type"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(
        types,
        [
            "https://spdx.dev/Document",
            "https://slsa.dev/provenance/v1"
        ]
    );

    // No blob of the attestations holds the secret's value.
    for d in [
        att["digest"].as_str().unwrap(),
        att_manifest["config"]["digest"].as_str().unwrap(),
    ]
    .into_iter()
    .chain(layers.iter().map(|l| l["digest"].as_str().unwrap()))
    {
        let text = String::from_utf8_lossy(&blob(&root, d)).into_owned();
        assert!(!text.contains("TOPSECRET"), "secret in {d}: {text}");
    }

    // `rbk inspect --attestations` gives the statements.
    let statements: Value =
        serde_json::from_slice(&ok(&root, &["inspect", "--attestations", "attested:1"]).stdout)
            .unwrap();
    let statements = statements.as_array().unwrap();
    assert_eq!(statements.len(), 2);
    let image_hex = image["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    for s in statements {
        assert_eq!(s["_type"], "https://in-toto.io/Statement/v0.1");
        assert_eq!(s["subject"][0]["digest"]["sha256"], image_hex);
    }
    let sbom = &statements[0]["predicate"];
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3");
    let mut purls: Vec<&str> = sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["externalRefs"][0]["referenceLocator"].as_str().unwrap())
        .collect();
    purls.sort();
    assert_eq!(
        purls,
        [
            "pkg:deb/debian/foo@1.2-3?arch=amd64",
            "pkg:npm/left-pad@1.3.0",
            "pkg:pypi/requests@2.31.0"
        ]
    );

    let prov = &statements[1]["predicate"];
    let dockerfile_hex = hex(&sha2::Sha256::digest(DOCKERFILE.as_bytes()));
    assert_eq!(
        prov["buildDefinition"]["externalParameters"]["configSource"]["digest"]["sha256"],
        dockerfile_hex.as_str()
    );
    let base = tagged(&root, "docker.io/library/rbk-busybox:latest");
    let deps = prov["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    assert_eq!(deps.len(), 1, "{deps:?}");
    assert_eq!(
        deps[0]["uri"],
        "pkg:docker/docker.io/library/rbk-busybox:latest?platform=linux%2Famd64"
    );
    assert_eq!(
        deps[0]["digest"]["sha256"],
        base["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap()
    );
    let request = &prov["buildDefinition"]["externalParameters"]["request"];
    assert_eq!(request["args"]["build-arg:GREETING"], "hello");
    assert_eq!(request["secrets"], serde_json::json!([{"id": "token"}]));
    let steps = prov["buildDefinition"]["internalParameters"]["buildConfig"]["llbDefinition"]
        .as_array()
        .unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["name"].as_str().unwrap().contains("RUN")),
        "{steps:?}"
    );

    // The tag still works as an image.
    let listed = stdout(&ok(
        &root,
        &["run", "--rm", "attested:1", "cat", "/var/lib/dpkg/status"],
    ));
    assert!(listed.contains("Package: foo"), "{listed}");

    // mode=min leaves build args and steps out.
    let out = build(
        &root,
        &ctx,
        &[
            "-t",
            "attested:min",
            "--provenance=mode=min",
            "--build-arg",
            "GREETING=hello",
            "--secret",
            &format!("id=token,src={}", secret.display()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let statements: Value =
        serde_json::from_slice(&ok(&root, &["inspect", "--attestations", "attested:min"]).stdout)
            .unwrap();
    let prov = &statements[0]["predicate"];
    assert!(
        prov["buildDefinition"]["externalParameters"]["request"]["args"]
            .get("build-arg:GREETING")
            .is_none()
    );
    assert!(prov["buildDefinition"]["internalParameters"]
        .get("buildConfig")
        .is_none());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_corrupt_package_database_warns_and_the_build_succeeds() {
    let dir = scratch("corrupt");
    let root = store(&dir);
    let text = "FROM rbk-busybox\nRUN mkdir -p /var/lib/dpkg /app /var/lib/rpm && printf 'this is not a status file\\n' > /var/lib/dpkg/status && printf '{broken' > /app/package-lock.json && printf 'not sqlite' > /var/lib/rpm/rpmdb.sqlite\n";
    let ctx = context(&dir, &[("Dockerfile", text)]);
    let out = build(&root, &ctx, &["-t", "corrupt:1", "--sbom"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("WARNING: SBOM: skipped /var/lib/dpkg/status, which cannot be read as a package database: line 1: expected a `Field: value` line"),
        "{err}"
    );
    assert!(
        err.contains("WARNING: SBOM: skipped /app/package-lock.json"),
        "{err}"
    );
    assert!(
        err.contains("WARNING: SBOM: skipped /var/lib/rpm/rpmdb.sqlite, which cannot be read as a package database: SQLite: "),
        "{err}"
    );
    let statements: Value =
        serde_json::from_slice(&ok(&root, &["inspect", "--attestations", "corrupt:1"]).stdout)
            .unwrap();
    assert_eq!(
        statements[0]["predicate"]["packages"],
        serde_json::json!([])
    );
}

/// An RPM package for `rpmbuild`: name, epoch, version, release.
fn rpm_spec(name: &str, epoch: Option<u32>, version: &str, release: &str) -> String {
    let epoch = epoch.map(|e| format!("Epoch: {e}\n")).unwrap_or_default();
    format!(
        "Name: {name}\n{epoch}Version: {version}\nRelease: {release}\nSummary: rbk SBOM test\nLicense: MIT\nBuildArch: noarch\n%description\nA package for rbk's SBOM test.\n%files\n"
    )
}

#[test]
fn the_sbom_lists_rpm_packages_and_go_modules() {
    let dir = scratch("rpm-go");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[
            ("Dockerfile", "FROM rbk-busybox\nCOPY rootfs/ /\n"),
            (
                "greet/go.mod",
                "module example.com/greet\n\ngo 1.19\n",
            ),
            (
                "greet/greet.go",
                "package greet\n\nfunc Hello() string { return \"hello\" }\n",
            ),
            (
                "hello/go.mod",
                "module example.com/hello\n\ngo 1.19\n\nrequire example.com/greet v1.0.0\n\nreplace example.com/greet => ../greet\n",
            ),
            (
                "hello/main.go",
                "package main\n\nimport \"example.com/greet\"\n\nfunc main() { println(greet.Hello()) }\n",
            ),
        ],
    );
    let rootfs = ctx.join("rootfs");

    // A real RPM database, made by Debian's rpm: two packages built with
    // rpmbuild, recorded with `rpm --justdb`.
    let top = dir.join("rpmbuild");
    let mut rpms = Vec::new();
    for (name, epoch, version, release) in [
        ("rbk-hello", None, "1.2", "3"),
        ("rbk-tools", Some(4), "0.9.1", "1.fc39"),
    ] {
        let spec = dir.join(format!("{name}.spec"));
        std::fs::write(&spec, rpm_spec(name, epoch, version, release)).unwrap();
        Tool::rpmbuild().ok(&[
            "--define",
            &format!("_topdir {}", top.display()),
            "--define",
            &format!("_dbpath {}", dir.join("rpmbuild-db").display()),
            "-bb",
            spec.to_str().unwrap(),
        ]);
        rpms.push(top.join(format!("RPMS/noarch/{name}-{version}-{release}.noarch.rpm")));
    }
    let rpm_args = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "--root".to_string(),
            rootfs.display().to_string(),
            "--dbpath".to_string(),
            "/var/lib/rpm".to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let run_rpm = |extra: &[&str]| {
        let args = rpm_args(extra);
        Tool::rpm().text(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    run_rpm(&["--initdb"]);
    let mut install = vec!["-i", "--justdb", "--nodeps", "--noscripts"];
    install.extend(rpms.iter().map(|p| p.to_str().unwrap()));
    run_rpm(&install);
    assert!(rootfs.join("var/lib/rpm/rpmdb.sqlite").is_file());
    let listed = run_rpm(&[
        "-qa",
        "--qf",
        "pkg:rpm/%{NAME}@%{VERSION}-%{RELEASE}?arch=%{ARCH}%|EPOCH?{&epoch=%{EPOCH}}:{}|\n",
    ]);
    let mut expected: Vec<String> = listed.lines().map(str::to_string).collect();
    assert_eq!(expected.len(), 2, "{listed}");

    // A Go binary built by Debian's golang-go, and what `go version -m`
    // says it holds.
    let bin = rootfs.join("usr/local/bin/hello");
    let out = Tool::go()
        .command(&["build", "-buildvcs=false", "-o", bin.to_str().unwrap(), "."])
        .current_dir(ctx.join("hello"))
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("CGO_ENABLED", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let modules = Tool::go().text(&["version", "-m", bin.to_str().unwrap()]);
    let go_version = modules.lines().next().unwrap().rsplit(' ').next().unwrap();
    expected.push(format!("pkg:golang/stdlib@{go_version}"));
    // A `=>` line replaces the module of the line before; its version is
    // the one built.
    let mut go_packages: Vec<(String, String)> = Vec::new();
    for line in modules.lines().skip(1) {
        match line.trim_start().split('\t').collect::<Vec<_>>().as_slice() {
            ["mod" | "dep", path, version, ..] => {
                go_packages.push((path.to_string(), version.to_string()))
            }
            ["=>", _, version, ..] => go_packages.last_mut().unwrap().1 = version.to_string(),
            _ => {}
        }
    }
    assert!(
        go_packages.iter().any(|(p, _)| p == "example.com/greet"),
        "{modules}"
    );
    expected.extend(
        go_packages
            .iter()
            .map(|(p, v)| format!("pkg:golang/{p}@{v}")),
    );
    expected.sort();

    let out = build(&root, &ctx, &["-t", "rpm-go:1", "--sbom"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("SBOM: skipped"), "{}", stderr(&out));
    let statements: Value =
        serde_json::from_slice(&ok(&root, &["inspect", "--attestations", "rpm-go:1"]).stdout)
            .unwrap();
    let packages = statements[0]["predicate"]["packages"].as_array().unwrap();
    let mut purls: Vec<String> = packages
        .iter()
        .map(|p| {
            p["externalRefs"][0]["referenceLocator"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    purls.sort();
    assert_eq!(purls, expected);
    let hello = packages.iter().find(|p| p["name"] == "rbk-hello").unwrap();
    assert_eq!(
        hello["sourceInfo"],
        "acquired package info from /var/lib/rpm/rpmdb.sqlite"
    );
    let greet = packages
        .iter()
        .find(|p| p["name"] == "example.com/greet")
        .unwrap();
    assert_eq!(
        greet["sourceInfo"],
        "acquired package info from /usr/local/bin/hello"
    );
}

#[test]
fn unknown_attestation_types_and_modes_are_refused() {
    let dir = scratch("bad");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[("Dockerfile", "FROM rbk-busybox\nRUN echo must-not-run\n")],
    );
    for (flags, message) in [
        (
            vec!["--attest", "type=vex"],
            "--attest \"type=vex\": unknown attestation type \"vex\" (expected sbom or provenance)",
        ),
        (
            vec!["--attest", "mode=max"],
            "--attest \"mode=max\": type= is required",
        ),
        (
            vec!["--provenance=mode=full"],
            "unknown mode \"full\" (expected min or max)",
        ),
        (
            vec!["--sbom=maybe"],
            "--sbom=\"maybe\": expected true, false or key=value pairs",
        ),
    ] {
        let out = build(&root, &ctx, &flags);
        assert!(!out.status.success(), "{flags:?} accepted");
        assert!(
            stderr(&out).contains(message),
            "{flags:?}: {}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("DONE"), "a step ran");
    }
}

#[test]
fn attestations_are_pushed_with_the_image() {
    let (_, reg, name) = attested_in_registry(
        "push",
        "attested:1",
        &["--sbom", "--provenance=true", "--push"],
    );
    let raw = Tool::skopeo().ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{name}"),
    ]);
    let index: Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    let m = index["manifests"].as_array().unwrap();
    assert_eq!(m.len(), 2, "{index}");
    assert_eq!(
        m[1]["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(
        m[1]["annotations"]["vnd.docker.reference.digest"],
        m[0]["digest"]
    );
    // The attestation manifest and its statements are in the registry too.
    let att_ref = format!(
        "docker://{}/attested@{}",
        reg.host,
        m[1]["digest"].as_str().unwrap()
    );
    let att: Value = serde_json::from_slice(
        &Tool::skopeo()
            .ok(&["inspect", "--raw", "--tls-verify=false", &att_ref])
            .stdout,
    )
    .unwrap();
    for layer in att["layers"].as_array().unwrap() {
        assert!(
            reg.blob_file(layer["digest"].as_str().unwrap()).is_file(),
            "{layer}"
        );
    }
    // The pushed image's manifest is what the statements name.
    let prov_layer = &att["layers"][1];
    let statement: Value = read_json(&reg.blob_file(prov_layer["digest"].as_str().unwrap()));
    assert_eq!(subject(&statement), m[0]["digest"].as_str().unwrap());
}

/// `rbk push` of an attested image built earlier: its layers are
/// compressed on the way out (zstd, then gzip to another tag), so the
/// registry gets new image manifests, and the attestation manifests go
/// with them, made about the manifests sent (index annotation and every
/// statement's subject). Read back with skopeo and with `rbk pull` into a
/// fresh store and `rbk inspect --attestations`.
#[test]
fn a_later_push_that_recompresses_keeps_the_attestations() {
    let (root, reg, built) = attested_in_registry(
        "push-later",
        "later:built",
        &["--sbom", "--provenance=mode=max"],
    );
    let stored = tagged(&root, &built);
    let stored_index: Value =
        serde_json::from_slice(&blob(&root, stored["digest"].as_str().unwrap())).unwrap();
    let stored_image = stored_index["manifests"][0]["digest"].clone();

    let raw = |reference: &str| -> Value {
        serde_json::from_slice(
            &Tool::skopeo()
                .ok(&[
                    "inspect",
                    "--raw",
                    "--tls-verify=false",
                    &format!("docker://{reference}"),
                ])
                .stdout,
        )
        .unwrap()
    };
    let mut sent_images = Vec::new();
    for (compression, layer_type) in [
        ("zstd", "application/vnd.oci.image.layer.v1.tar+zstd"),
        ("gzip", "application/vnd.oci.image.layer.v1.tar+gzip"),
    ] {
        let name = format!("{}/later:{compression}", reg.host);
        ok(&root, &["tag", &built, &name]);
        ok(&root, &["push", "--compression", compression, &name]);
        let index = raw(&name);
        assert_eq!(
            index["mediaType"], "application/vnd.oci.image.index.v1+json",
            "{index}"
        );
        let m = index["manifests"].as_array().unwrap();
        assert_eq!(m.len(), 2, "{index}");
        let sent = m[0]["digest"].as_str().unwrap();
        assert_ne!(
            m[0]["digest"], stored_image,
            "the layers were compressed on the way out"
        );
        let image = raw(&format!("{}/later@{sent}", reg.host));
        for layer in image["layers"].as_array().unwrap() {
            assert_eq!(layer["mediaType"], layer_type, "{image}");
        }
        assert_eq!(m[1]["platform"]["os"], "unknown", "{index}");
        assert_eq!(
            m[1]["annotations"]["vnd.docker.reference.type"],
            "attestation-manifest"
        );
        assert_eq!(m[1]["annotations"]["vnd.docker.reference.digest"], sent);
        let att = raw(&format!(
            "{}/later@{}",
            reg.host,
            m[1]["digest"].as_str().unwrap()
        ));
        let layers = att["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2, "{att}");
        let config = read_json(&reg.blob_file(att["config"]["digest"].as_str().unwrap()));
        for (i, layer) in layers.iter().enumerate() {
            let digest = layer["digest"].as_str().unwrap();
            assert_eq!(config["rootfs"]["diff_ids"][i], digest, "{config}");
            let file = reg.blob_file(digest);
            let bytes = std::fs::read(&file).unwrap();
            assert_eq!(
                format!("sha256:{}", hex(&sha2::Sha256::digest(&bytes))),
                digest
            );
            let statement: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(
                layer["annotations"]["in-toto.io/predicate-type"],
                statement["predicateType"]
            );
            assert_eq!(subject(&statement), sent, "{compression}: {statement}");
        }
        sent_images.push(sent.to_string());
    }
    assert_ne!(sent_images[0], sent_images[1]);

    // The store's own index is untouched: its attestations name the stored
    // image.
    let again = tagged(&root, &built);
    assert_eq!(again["digest"], stored["digest"]);
    assert_eq!(
        stored_index["manifests"][1]["annotations"]["vnd.docker.reference.digest"],
        stored_image
    );

    // Another runner pulls the zstd push and reads the attestations.
    let other = support::store_named(root.parent().unwrap(), "other");
    let pushed = format!("{}/later:zstd", reg.host);
    ok(&other, &["pull", "--all-platforms", &pushed]);
    let statements: Value =
        serde_json::from_slice(&ok(&other, &["inspect", "--attestations", &pushed]).stdout)
            .unwrap();
    let statements = statements.as_array().unwrap();
    let types: Vec<&str> = statements
        .iter()
        .map(|s| s["predicateType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "https://spdx.dev/Document",
            "https://slsa.dev/provenance/v1"
        ]
    );
    for s in statements {
        assert_eq!(subject(s), sent_images[0]);
    }
}

/// `-o type=oci` and `-o type=docker` of an attested image: the archive's
/// `index.json` names the index of the image and its attestation manifest,
/// whose blobs are in the archive; a docker-archive's `manifest.json` still
/// lists the one image (what `docker load` reads).
#[test]
fn attestations_travel_in_oci_and_docker_archives() {
    let dir = scratch("archives");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[("Dockerfile", DOCKERFILE), ("package-lock.json", LOCK)],
    );
    let secret = dir.join("token");
    std::fs::write(&secret, "TOPSECRET-VALUE-42\n").unwrap();
    for format in ["oci", "docker"] {
        let tar = dir.join(format!("{format}.tar"));
        let out = build(
            &root,
            &ctx,
            &[
                "-t",
                "archived:1",
                "--sbom",
                "--provenance=mode=max",
                "--annotation",
                "index:org.opencontainers.image.description=attested",
                "--secret",
                &format!("id=token,src={}", secret.display()),
                "-o",
                &format!("type={format},dest={}", tar.display()),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let unpacked = dir.join(format!("{format}-unpacked"));
        support::untar(&tar, &unpacked);
        let top = read_json(&unpacked.join("index.json"));
        let entry = &top["manifests"][0];
        assert_eq!(
            entry["mediaType"], "application/vnd.oci.image.index.v1+json",
            "{top}"
        );
        let index: Value =
            serde_json::from_slice(&blob(&unpacked, entry["digest"].as_str().unwrap())).unwrap();
        assert_eq!(
            index["annotations"]["org.opencontainers.image.description"],
            "attested"
        );
        let m = index["manifests"].as_array().unwrap();
        assert_eq!(m.len(), 2, "{index}");
        assert_eq!(
            m[1]["annotations"]["vnd.docker.reference.digest"],
            m[0]["digest"]
        );
        let att: Value =
            serde_json::from_slice(&blob(&unpacked, m[1]["digest"].as_str().unwrap())).unwrap();
        let statements: Vec<Value> = att["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                serde_json::from_slice(&blob(&unpacked, l["digest"].as_str().unwrap())).unwrap()
            })
            .collect();
        assert_eq!(statements.len(), 2);
        for s in &statements {
            assert_eq!(subject(s), m[0]["digest"].as_str().unwrap());
            assert!(!s.to_string().contains("TOPSECRET"));
        }
        // The image itself reads back with skopeo.
        let transport = match format {
            "oci" => format!("oci-archive:{}", tar.display()),
            _ => format!("docker-archive:{}", tar.display()),
        };
        let shown: Value =
            serde_json::from_slice(&Tool::skopeo().ok(&["inspect", &transport]).stdout).unwrap();
        assert_eq!(shown["Architecture"], "amd64", "{shown}");
        if format == "docker" {
            let listed = read_json(&unpacked.join("manifest.json"));
            assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
            assert_eq!(listed[0]["RepoTags"][0], "archived:1");
        }
    }
}

/// The SBOM of the real Debian base lists the packages `dpkg-query -W`
/// lists inside it, no more and no fewer.
#[test]
fn the_debian_sbom_matches_dpkg_query() {
    let archive = support::debian::base_archive(docker::engine());
    let dir = scratch("debian");
    let root = dir.join("root");
    ok(&root, &["load", "-i", archive.to_str().unwrap()]);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            &format!("FROM {}\nLABEL sbom=yes\n", support::debian::IMAGE),
        )],
    );
    let out = build(&root, &ctx, &["-t", "deb-sbom:1", "--sbom"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = stdout(&ok(
        &root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            support::debian::IMAGE,
            "dpkg-query",
            "-W",
            "-f",
            "${Package}\\n",
        ],
    ));
    let dpkg: Vec<&str> = listed.lines().filter(|l| !l.is_empty()).collect();
    let statements: Value =
        serde_json::from_slice(&ok(&root, &["inspect", "--attestations", "deb-sbom:1"]).stdout)
            .unwrap();
    let sbom: Vec<String> = statements[0]["predicate"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["externalRefs"][0]["referenceLocator"]
                .as_str()
                .unwrap()
                .starts_with("pkg:deb/")
        })
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert!(dpkg.len() > 50, "dpkg-query listed {} packages", dpkg.len());
    assert_eq!(
        sbom.len(),
        dpkg.len(),
        "SBOM {} vs dpkg-query {}",
        sbom.len(),
        dpkg.len()
    );
    let a: BTreeSet<&str> = dpkg.iter().copied().collect();
    let b: BTreeSet<&str> = sbom.iter().map(String::as_str).collect();
    assert_eq!(a, b);
}
