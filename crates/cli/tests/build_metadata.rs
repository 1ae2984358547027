//! `--metadata-file` (buildx's keys, written atomically) and `--annotation`
//! (manifest and manifest-descriptor annotations, platform scoping, and the
//! errors for malformed ones), through the binary (issue 16).

use std::path::{Path, PathBuf};

mod support;

use support::{build, context, stderr, store};

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("build-metadata-{name}"))
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(root: &Path, digest: &str) -> serde_json::Value {
    read_json(
        &root
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap()),
    )
}

#[test]
fn metadata_file_has_buildx_keys_and_annotations_land_in_the_manifest() {
    let dir = scratch("keys");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[(
            "Dockerfile",
            "FROM rbk-busybox AS Base\nRUN echo hi > /hi\nCMD cat /hi\n",
        )],
    );
    let meta = dir.join("out/metadata.json");
    std::fs::create_dir_all(meta.parent().unwrap()).unwrap();
    std::fs::write(&meta, "old contents").unwrap();
    let iid = dir.join("iid");
    let out = build(
        &root,
        &ctx,
        &[
            "-t",
            "meta:one",
            "-t",
            "meta:two",
            "--iidfile",
            iid.to_str().unwrap(),
            "--metadata-file",
            meta.to_str().unwrap(),
            "--annotation",
            "org.opencontainers.image.title=rbk test",
            "--annotation",
            "manifest-descriptor:com.example.desc=yes",
            "--annotation",
            "manifest[linux/arm64]:com.example.arm=only-arm",
            "--annotation",
            "manifest,manifest-descriptor[linux/amd64]:com.example.both=1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = read_json(&meta);
    let id = std::fs::read_to_string(&iid).unwrap();
    assert_eq!(doc["containerimage.config.digest"], id.as_str());
    let digest = doc["containerimage.digest"].as_str().unwrap().to_string();
    assert_eq!(doc["containerimage.descriptor"]["digest"], digest.as_str());
    assert_eq!(
        doc["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(doc["containerimage.descriptor"]["platform"]["os"], "linux");
    assert_eq!(
        doc["containerimage.descriptor"]["annotations"],
        serde_json::json!({"com.example.desc": "yes", "com.example.both": "1"})
    );
    assert_eq!(
        doc["image.name"],
        "docker.io/library/meta:one,docker.io/library/meta:two"
    );
    // The manifest blob is the annotated one, and its size is the descriptor's.
    let path = root
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap());
    assert_eq!(
        doc["containerimage.descriptor"]["size"].as_u64().unwrap(),
        std::fs::metadata(&path).unwrap().len()
    );
    let manifest = blob(&root, &digest);
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.title"],
        "rbk test"
    );
    assert_eq!(manifest["annotations"]["com.example.both"], "1");
    assert!(
        manifest["annotations"].get("com.example.arm").is_none(),
        "{manifest}"
    );
    assert!(
        manifest["annotations"].get("com.example.desc").is_none(),
        "{manifest}"
    );
    // The tag points at it.
    let index = read_json(&root.join("index.json"));
    let tagged = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"] == "docker.io/library/meta:one"
        })
        .expect("tagged");
    assert_eq!(tagged["digest"], digest.as_str());
    // Build check warnings, as buildx records them (base64 `short`).
    let warnings = doc["buildx.build.warnings"].as_array().expect("warnings");
    let short: Vec<String> = warnings
        .iter()
        .map(|w| {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(w["short"].as_str().unwrap())
                .unwrap();
            String::from_utf8(bytes).unwrap()
        })
        .collect();
    assert_eq!(
        short,
        [
            "StageNameCasing: Stage name 'Base' should be lowercase (line 1)",
            "JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 3)",
        ]
    );
    assert_eq!(
        warnings[0]["url"],
        "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/"
    );
    assert_eq!(warnings[0]["range"][0]["start"]["line"], 1);
    // Nothing left beside the file.
    let names: Vec<_> = std::fs::read_dir(meta.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("metadata.json")]);
}

#[test]
fn malformed_annotations_fail_before_anything_runs() {
    let dir = scratch("bad");
    let root = store(&dir);
    let ctx = context(
        &dir,
        &[("Dockerfile", "FROM rbk-busybox\nRUN echo must-not-run\n")],
    );
    let meta = dir.join("metadata.json");
    for (flag, message) in [
        ("novalue", "invalid --annotation \"novalue\": expected KEY=VALUE"),
        ("bogus:k=v", "invalid --annotation \"bogus:k=v\": unknown annotation type \"bogus\" (expected manifest, index, manifest-descriptor or index-descriptor)"),
        ("manifest[linux]:k=v", "invalid platform \"linux\" (expected os/arch[/variant])"),
        ("manifest:=v", "the key is empty"),
        ("index:k=v", "--annotation k: this build makes a single image manifest, not an index"),
    ] {
        let out = build(&root, &ctx, &["--annotation", flag, "--metadata-file", meta.to_str().unwrap()]);
        assert!(!out.status.success(), "{flag} was accepted");
        let err = stderr(&out);
        assert!(err.contains(message), "{flag}: {err}");
        assert!(!err.contains("DONE"), "{flag}: a step ran\n{err}");
        assert!(!meta.exists(), "{flag}: metadata written");
    }
}
