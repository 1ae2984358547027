//! `rbk analyze` (issue 16): per-layer added/changed/removed counts, wasted
//! bytes, efficiency, top wasted paths and the layer checks, as text, JSON
//! and an HTML page loaded in a real headless Chromium.

use std::path::{Path, PathBuf};

mod support;

use support::{build, context, ok, stderr, stdout, store};

fn scratch(name: &str) -> PathBuf {
    support::scratch(&format!("analyze-{name}"))
}

const BIG: u64 = 2 * 1024 * 1024;

/// An image whose third step deletes a 2 MiB file the first one added and
/// rewrites a file the second wrote, leaving apt lists behind.
fn wasteful_image(dir: &Path) -> PathBuf {
    let root = store(dir);
    let text = "FROM rbk-busybox\n\
        RUN dd if=/dev/zero of=/big bs=1024 count=2048 && mkdir -p /var/lib/apt/lists && echo lists > /var/lib/apt/lists/deb_dists_main\n\
        RUN echo v1 > /etc/motd\n\
        RUN echo v2-longer > /etc/motd && rm /big\n";
    let ctx = context(dir, &[("Dockerfile", text)]);
    let out = build(&root, &ctx, &["-t", "wasteful"]);
    assert!(out.status.success(), "{}", stderr(&out));
    root
}

#[test]
fn json_and_text_reports_count_the_waste() {
    let dir = scratch("report");
    let root = wasteful_image(&dir);
    let out = ok(&root, &["analyze", "--format", "json", "wasteful"]);
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let layers = a["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 4, "{a}");
    assert_eq!(layers[1]["size"].as_u64().unwrap(), BIG + 6);
    assert!(layers[1]["instruction"]
        .as_str()
        .unwrap()
        .contains("dd if=/dev/zero"));
    // Layer 3 changes /etc/motd and removes /big.
    assert_eq!(layers[3]["changed"], 1, "{}", layers[3]);
    assert_eq!(layers[3]["removed"], 1, "{}", layers[3]);
    assert!(layers[2]["added"].as_u64().unwrap() >= 1);
    assert_eq!(a["wasted"].as_u64().unwrap(), BIG + 3, "big plus \"v1\\n\"");
    let total = a["total"].as_u64().unwrap();
    let eff = a["efficiency"].as_f64().unwrap();
    assert!(
        (eff - (1.0 - (BIG + 3) as f64 / total as f64)).abs() < 1e-9,
        "{eff}"
    );
    assert_eq!(a["top_wasted"][0]["path"], "big");
    assert_eq!(a["top_wasted"][0]["wasted"].as_u64().unwrap(), BIG);
    assert_eq!(a["top_wasted"][0]["layers"], serde_json::json!([1]));
    assert_eq!(a["top_wasted"][1]["path"], "etc/motd");
    let rules: Vec<&str> = a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["DeletedInLaterLayer", "AptListsNotRemoved"]);
    let deleted = a["findings"][0]["message"].as_str().unwrap();
    assert!(
        deleted.starts_with(&format!(
            "1 files ({BIG} bytes, e.g. /big) added by layer 1 (RUN /bin/sh -c dd if=/dev/zero"
        )),
        "{deleted}"
    );
    assert!(
        deleted.contains("are deleted by layer 3 (RUN /bin/sh -c echo v2-longer"),
        "{deleted}"
    );
    assert!(!a["findings"][0]["fix"].as_str().unwrap().is_empty());
    // The final tree has no /big.
    let files = a["files"].as_array().unwrap();
    assert!(files
        .iter()
        .any(|f| f["path"] == "etc/motd" && f["size"] == 10));
    assert!(!files.iter().any(|f| f["path"] == "big"));

    let text = stdout(&ok(&root, &["analyze", "wasteful"]));
    assert!(
        text.contains("  #       SIZE    ADDED  CHANGED  REMOVED  INSTRUCTION\n"),
        "{text}"
    );
    assert!(text.contains("Wasted: 2.1MB"), "{text}");
    assert!(text.contains("/big\n"), "{text}");
    assert!(
        text.contains("WARN: DeletedInLaterLayer: 1 files"),
        "{text}"
    );
    assert!(
        text.contains("WARN: AptListsNotRemoved: 1 files (6 bytes) under /var/lib/apt/lists"),
        "{text}"
    );

    let out = support::rbk(&root, &["analyze", "--format", "yaml", "wasteful"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unknown --format \"yaml\" (expected text or json)"));
    let out = support::rbk(&root, &["analyze", "no-such-image"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no-such-image"), "{}", stderr(&out));
}

/// The page loads in headless Chromium without console errors, the script
/// draws one bar per layer and the tree, and a screenshot shows the bars'
/// colour.
#[test]
fn html_page_renders_in_chromium() {
    let dir = scratch("html");
    let root = wasteful_image(&dir);
    let page = dir.join("report.html");
    ok(
        &root,
        &["analyze", "--html", page.to_str().unwrap(), "wasteful"],
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "not self-contained"
    );
    let dom = support::browser::dom(&dir, &page);
    assert!(
        dom.contains("data-rendered=\"true\""),
        "script did not finish"
    );
    assert_eq!(dom.matches("data-layer=").count(), 4, "one bar per layer");
    assert!(dom.contains("<summary>etc/"), "file tree");

    let pixels = support::browser::screenshot(&dir, &page, 1000, 700);
    // The bars are #3a7bd5 (blue) and #e0584f (wasteful layers).
    let count = |rgb: [u8; 3]| {
        pixels
            .iter()
            .flatten()
            .filter(|p| support::browser::near(**p, rgb))
            .count()
    };
    let (blue, red) = (count([0x3a, 0x7b, 0xd5]), count([0xe0, 0x58, 0x4f]));
    assert!(
        blue > 200 && red > 200,
        "bars not drawn: {blue} blue and {red} red pixels"
    );
}
