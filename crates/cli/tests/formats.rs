//! `images REPO` with a registry port (issue 11, item 17), sizes in
//! `images`/`inspect`/`system df` (item 18), and `--format` Go templates
//! plus `images --filter`/`-a` (item 19), through the real binary.

mod support;

use std::path::Path;

use support::{build, context, ok, rbk, scratch, stderr, stdout, store};

fn text(root: &Path, args: &[&str]) -> String {
    stdout(&ok(root, args))
}

/// Builds `dockerfile` in `dir/ctx` with `extra` flags.
fn build_ok(root: &Path, dir: &Path, dockerfile: &str, extra: &[&str]) {
    let ctx = context(dir, &[("Dockerfile", dockerfile)]);
    let out = build(root, &ctx, extra);
    assert!(out.status.success(), "build failed:\n{}", stderr(&out));
}

#[test]
fn images_repository_argument_keeps_a_registry_port() {
    let dir = scratch("fmt-repo");
    let root = store(&dir);
    ok(&root, &["tag", "rbk-busybox", "localhost:5000/foo:1"]);
    ok(&root, &["tag", "rbk-busybox", "foo:2"]);
    let rows = |args: &[&str]| {
        let mut all = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        all.extend_from_slice(args);
        text(&root, &all)
    };
    assert_eq!(rows(&["localhost:5000/foo"]), "localhost:5000/foo:1\n");
    assert_eq!(rows(&["localhost:5000/foo:1"]), "localhost:5000/foo:1\n");
    assert_eq!(rows(&["localhost:5000/foo:2"]), "");
    assert_eq!(rows(&["foo"]), "foo:2\n");
    assert_eq!(rows(&["-f", "reference=*:2"]), "foo:2\n");
    assert_eq!(
        rows(&["-f", "reference=localhost:5000/*"]),
        "localhost:5000/foo:1\n"
    );
}

/// The image id, uncompressed size (inspect), and `images` SIZE of `name`.
fn sizes(root: &Path, name: &str) -> (String, String) {
    let inspect = text(root, &["inspect", "--format", "{{.Id}} {{.Size}}", name]);
    let listed = text(root, &["images", "--format", "{{.Size}}", name]);
    (inspect.trim().to_string(), listed.trim().to_string())
}

#[test]
fn sizes_are_uncompressed_whatever_the_origin_and_df_adds_up() {
    let dir = scratch("fmt-sizes");
    let root = store(&dir);
    build_ok(
        &root,
        &dir,
        "FROM rbk-busybox\nRUN head -c 300000 /dev/zero > /zeros\n",
        &["-t", "app"],
    );
    // An OCI archive keeps gzip layers as they are: the other store holds
    // compressed blobs for the same image id.
    let archive = dir.join("app.oci.tar");
    ok(
        &root,
        &[
            "save",
            "--format",
            "oci",
            "-o",
            archive.to_str().unwrap(),
            "app",
        ],
    );
    let other = dir.join("other");
    ok(&other, &["load", "-i", archive.to_str().unwrap()]);
    let compressed = std::fs::read_dir(other.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .max()
        .unwrap();
    assert_eq!(sizes(&root, "app"), sizes(&other, "app"));
    let (inspect, _) = sizes(&other, "app");
    let size: u64 = inspect.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(
        size > compressed,
        "uncompressed {size} > largest blob {compressed}"
    );

    // A child of the loaded (compressed) image shares its base layers.
    build_ok(
        &other,
        &dir.join("child"),
        "FROM app\nRUN echo x > /x\n",
        &["-t", "child"],
    );
    let df = text(&other, &["system", "df", "-v"]);
    let shared: Vec<&str> = df
        .lines()
        .filter(|l| l.starts_with("app ") || l.starts_with("child "))
        .map(|l| {
            let cells: Vec<&str> = l
                .split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect();
            cells[cells.len() - 3]
        })
        .collect();
    assert_eq!(shared.len(), 2, "{df}");
    assert_eq!(shared[0], shared[1], "both share the base layers: {df}");
    assert_ne!(shared[0], "0B", "{df}");

    // Build cache: the -v total is the df row, and the sum of the rows
    // that are not shared.
    let total = df
        .lines()
        .find_map(|l| l.strip_prefix("Build cache usage: "))
        .unwrap()
        .to_string();
    let short = text(
        &other,
        &[
            "system",
            "df",
            "--format",
            "{{.Type}}={{.Size}} {{.Active}}",
        ],
    );
    assert!(
        short.contains(&format!("Build Cache={total} 0")),
        "{short}\n{df}"
    );
    assert!(
        short.contains("Images=") && short.lines().all(|l| l.ends_with(" 0")),
        "{short}"
    );
    let rows: f64 = df
        .lines()
        .skip_while(|l| !l.starts_with("CACHE ID"))
        .skip(1)
        .filter(|l| l.trim_end().ends_with("false"))
        .map(|l| megabytes(l.split_whitespace().nth(2).unwrap()))
        .sum();
    assert!(
        (rows - megabytes(&total)).abs() < 0.01,
        "{rows} vs {total}\n{df}"
    );
}

/// `1.234MB`, `12kB`, `0B` → megabytes.
fn megabytes(size: &str) -> f64 {
    let split = size.find(|c: char| c.is_ascii_alphabetic()).unwrap();
    let (n, unit) = size.split_at(split);
    let n: f64 = n.parse().unwrap();
    n * match unit {
        "B" => 1e-6,
        "kB" => 1e-3,
        "MB" => 1.0,
        "GB" => 1e3,
        other => panic!("unit {other}"),
    }
}

#[test]
fn format_takes_go_templates_as_docker_does() {
    let dir = scratch("fmt-templates");
    let root = store(&dir);
    build_ok(
        &root,
        &dir,
        "FROM rbk-busybox\nENV A=1 B=two\nLABEL x=1 y=yes\nRUN echo > /f\n",
        &["-t", "app:1", "--label", "z=3"],
    );
    let inspect = |t: &str| text(&root, &["inspect", "--format", t, "app:1"]);
    assert!(inspect("{{.Id}}").starts_with("sha256:"));
    assert!(
        inspect("{{.Config.Env}}").contains("A=1 B=two]"),
        "{}",
        inspect("{{.Config.Env}}")
    );
    let config: serde_json::Value = serde_json::from_str(&inspect("{{json .Config}}")).unwrap();
    assert_eq!(config["Labels"]["x"], "1");
    assert_eq!(inspect("{{index .Config.Labels \"y\"}}"), "yes\n");
    // gtmpl ranges over a map in no fixed order (Go sorts the keys).
    let ranged = inspect("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}");
    let mut pairs: Vec<&str> = ranged.trim().split_terminator(';').collect();
    pairs.sort();
    assert_eq!(pairs, ["x=1", "y=yes", "z=3"]);
    assert_eq!(
        inspect("{{range .Config.Env}}<{{.}}>{{end}}")
            .matches('<')
            .count(),
        3
    );
    assert!(inspect("{{join .Config.Env \",\"}}").ends_with("A=1,B=two\n"));
    assert_eq!(
        inspect("{{len .RootFS.Layers}} {{printf \"%s/%s\" .Os .Architecture}}"),
        format!(
            "2 linux/{}\n",
            std::env::consts::ARCH
                .replace("x86_64", "amd64")
                .replace("aarch64", "arm64")
        )
    );
    assert_eq!(
        inspect("{{if .Config.Labels.x}}has x{{else}}no x{{end}}"),
        "has x\n"
    );
    assert_eq!(
        inspect("{{upper .Os}} {{lower \"ABC\"}} {{title \"hello world\"}}"),
        "LINUX abc Hello World\n"
    );
    assert_eq!(inspect("{{index .RepoTags 0}}"), "app:1\n");
    let bad = rbk(&root, &["inspect", "--format", "{{if .Id}}", "app:1"]);
    assert!(!bad.status.success());

    // images: table with \t columns, json, {{json .}} with docker's fields.
    let table = text(
        &root,
        &[
            "images",
            "--format",
            "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}",
            "app",
        ],
    );
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("REPOSITORY   TAG   "), "{table}");
    assert!(lines[0].trim_end().ends_with("IMAGE ID"), "{table}");
    assert!(lines[1].starts_with("app          1     "), "{table}");
    let json = text(&root, &["images", "--format", "json", "app"]);
    let row: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    for field in [
        "Repository",
        "Tag",
        "ID",
        "CreatedSince",
        "CreatedAt",
        "Size",
        "Digest",
    ] {
        assert!(row.get(field).is_some(), "{field} in {json}");
    }
    assert_eq!(row["Repository"], "app");
    // The same row, but for `CreatedSince`, which moves on between the two
    // calls ("Less than a second ago", then "1 second ago").
    let mut again: serde_json::Value =
        serde_json::from_str(text(&root, &["images", "--format", "{{json .}}", "app"]).trim())
            .unwrap();
    let mut first = row.clone();
    again.as_object_mut().unwrap().remove("CreatedSince");
    first.as_object_mut().unwrap().remove("CreatedSince");
    assert_eq!(again, first);

    // history: docker's fields.
    let history = text(
        &root,
        &[
            "history",
            "--format",
            "{{.ID}}|{{.CreatedBy}}|{{.Size}}",
            "app:1",
        ],
    );
    let top = history.lines().next().unwrap();
    assert!(
        top.contains("|RUN /bin/sh -c echo > /f") && top.ends_with("B"),
        "{history}"
    );
    let table = text(
        &root,
        &["history", "--format", "table {{.ID}}\\t{{.Size}}", "app:1"],
    );
    assert!(table.starts_with("IMAGE"), "{table}");

    // system df: json lines with docker's fields.
    let df = text(&root, &["system", "df", "--format", "json"]);
    let first: serde_json::Value = serde_json::from_str(df.lines().next().unwrap()).unwrap();
    assert_eq!(first["Type"], "Images");
    assert_eq!(first["TotalCount"], "2");
}

#[test]
fn images_filters_and_all() {
    let dir = scratch("fmt-filters");
    let root = store(&dir);
    build_ok(
        &root,
        &dir.join("a"),
        "FROM rbk-busybox\nLABEL kind=a\nRUN echo a > /a\n",
        &["-t", "a"],
    );
    // Created times have one-second resolution in before/since.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    build_ok(
        &root,
        &dir.join("b"),
        "FROM rbk-busybox\nLABEL kind=b\nRUN echo b > /b\n",
        &[],
    );
    let repos = |filters: &[&str]| {
        let mut args = vec!["images", "-a", "--format", "{{.Repository}}"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        let out = text(&root, &args);
        let mut names: Vec<String> = out.lines().map(str::to_string).collect();
        names.sort();
        names
    };
    assert_eq!(repos(&[]), ["<none>", "a", "rbk-busybox"]);
    assert_eq!(repos(&["dangling=true"]), ["<none>"]);
    assert_eq!(repos(&["dangling=false"]), ["a", "rbk-busybox"]);
    assert_eq!(repos(&["label=kind"]), ["<none>", "a"]);
    assert_eq!(repos(&["label=kind=a"]), ["a"]);
    // As docker: every label filter must match (references are alternatives).
    assert!(repos(&["label=kind=a", "label=kind=b"]).is_empty());
    assert_eq!(
        repos(&["reference=a", "reference=rbk-*"]),
        ["a", "rbk-busybox"]
    );
    assert_eq!(repos(&["reference=a", "label=kind"]), ["a"]);
    assert_eq!(repos(&["since=a"]), ["<none>"]);
    let b = text(&root, &["images", "-q", "-f", "dangling=true"]);
    let before_b = format!("before={}", b.trim());
    assert_eq!(repos(&[&before_b]), ["a", "rbk-busybox"]);
    let bad = rbk(&root, &["images", "--filter", "color=red"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("invalid filter 'color'"),
        "{}",
        stderr(&bad)
    );
}
