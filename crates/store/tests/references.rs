//! Docker reference normalisation and grammar, and the image index.

use rbk_store::{Descriptor, Digest, Error, Reference, Store, REF_NAME_ANNOTATION};

fn norm(s: &str) -> String {
    s.parse::<Reference>()
        .unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
        .to_string()
}

#[test]
fn normalises_like_docker() {
    let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let cases = [
        ("app", "docker.io/library/app:latest"),
        ("app:1.0", "docker.io/library/app:1.0"),
        ("user/app:1", "docker.io/user/app:1"),
        ("docker.io/app", "docker.io/library/app:latest"),
        (
            "index.docker.io/library/app",
            "docker.io/library/app:latest",
        ),
        ("registry:5000/x/y:tag", "registry:5000/x/y:tag"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/a/b/c", "localhost:5000/a/b/c:latest"),
        (
            "example.com/a.b_c__d-e---f",
            "example.com/a.b_c__d-e---f:latest",
        ),
        ("[::1]:5000/app:v", "[::1]:5000/app:v"),
        ("Registry.Example/app", "Registry.Example/app:latest"),
        ("app:A_b.c-D", "docker.io/library/app:A_b.c-D"),
    ];
    for (input, want) in cases {
        assert_eq!(norm(input), want, "{input}");
    }
    let pinned = format!("app@sha256:{hex}");
    assert_eq!(norm(&pinned), format!("docker.io/library/app@sha256:{hex}"));
    let both = format!("user/app:1@sha256:{hex}");
    let r: Reference = both.parse().unwrap();
    assert_eq!(r.tag(), Some("1"));
    assert_eq!(r.digest().map(Digest::hex), Some(hex.to_string()));
}

#[test]
fn familiar_names() {
    for (input, want) in [
        ("app", "app:latest"),
        ("user/app:1", "user/app:1"),
        ("registry:5000/x/y:tag", "registry:5000/x/y:tag"),
        ("docker.io/library/a/b", "library/a/b:latest"),
    ] {
        assert_eq!(
            input.parse::<Reference>().unwrap().familiar(),
            want,
            "{input}"
        );
    }
}

#[test]
fn rejects_invalid_references_with_a_reason() {
    let long_tag = format!("app:{}", "a".repeat(129));
    let long_name = format!("{}/x", "a".repeat(255));
    let bad = [
        ("", "empty"),
        ("App", "lowercase"),
        ("user/App", "lowercase"),
        ("app:", "invalid tag"),
        ("app:-x", "invalid tag"),
        ("app:.x", "invalid tag"),
        (long_tag.as_str(), "invalid tag"),
        ("app:a/b", "domain"),
        ("-app", "path component"),
        ("app-", "path component"),
        ("a..b", "path component"),
        ("a___b", "path component"),
        ("a//b", "path component"),
        ("/app", "path component"),
        ("app/", "path component"),
        ("app@sha256:abc", "digest"),
        ("app@md5:abc", "algorithm"),
        ("-reg.io/app", "domain"),
        ("reg.io:port/app", "domain"),
        (
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "64-byte",
        ),
        (long_name.as_str(), "255"),
    ];
    for (input, reason) in bad {
        match input.parse::<Reference>() {
            Ok(r) => panic!("{input:?} should be rejected, parsed as {r}"),
            Err(Error::InvalidReference {
                input: got,
                reason: why,
            }) => {
                assert_eq!(got, input);
                assert!(
                    why.contains(reason),
                    "{input:?}: reason {why:?} should mention {reason:?}"
                );
            }
            Err(e) => panic!("{input:?}: unexpected error {e:?}"),
        }
    }
}

#[test]
fn image_index_round_trips_and_mirrors_index_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("root")).unwrap();
    let desc = Descriptor {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: Digest::sha256_of(b"manifest"),
        size: 8,
        annotations: Default::default(),
    };
    let app: Reference = "app".parse().unwrap();
    assert!(store.resolve(&app).unwrap_err().is_not_found());
    store.tag(&app, desc.clone()).unwrap();
    store
        .tag(&"user/app:1".parse().unwrap(), desc.clone())
        .unwrap();
    assert_eq!(
        store
            .resolve(&"docker.io/library/app:latest".parse().unwrap())
            .unwrap(),
        desc
    );
    let names: Vec<String> = store
        .images()
        .unwrap()
        .into_iter()
        .map(|(r, _)| r.to_string())
        .collect();
    assert_eq!(
        names,
        ["docker.io/library/app:latest", "docker.io/user/app:1"]
    );

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("root/index.json")).unwrap())
            .unwrap();
    let refs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["annotations"][REF_NAME_ANNOTATION].as_str().unwrap())
        .collect();
    assert_eq!(
        refs,
        ["docker.io/library/app:latest", "docker.io/user/app:1"]
    );
    assert_eq!(index["manifests"][0]["digest"], desc.digest.to_string());

    assert_eq!(store.untag(&app).unwrap(), desc);
    assert!(store.untag(&app).unwrap_err().is_not_found());
    assert_eq!(store.images().unwrap().len(), 1);
}
