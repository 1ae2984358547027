//! Correctness at scale (issue 19): a store of 2,000 images and 20,000
//! cache records keeps every command right, and `rbk prune` deletes exactly
//! the unreachable set. The store is made by `Store::make_synthetic` (real
//! documents over tiny layers); timings belong to `cargo xtask bench scale`.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use rbk_store::{Digest, Store, Synthetic, SyntheticSpec};

mod support;

use support::{context, ok, ran, rbk, scratch, stderr, stdout};

const TAGGED: usize = 1_000;
const UNTAGGED: usize = 1_000;
const RECORDS: usize = 20_000;

fn names(dir: &Path, suffix: &str) -> BTreeSet<Digest> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let hex = name.strip_suffix(suffix)?.to_string();
            format!("sha256:{hex}").parse().ok()
        })
        .collect()
}

fn big_store(root: &Path) -> Synthetic {
    let store = Store::open(root).unwrap();
    store
        .make_synthetic(&SyntheticSpec {
            tagged: TAGGED,
            untagged: UNTAGGED,
            cache_records: RECORDS,
            cache_only_layers: 1_000,
            sparse_bytes: 0,
        })
        .unwrap()
}

/// Every reading command on the big store: images, inspect (by reference,
/// by short id, of an untagged image), history, system df, system verify.
fn read_commands_agree(root: &Path, made: &Synthetic) {
    let images = stdout(&ok(
        root,
        &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
    ));
    let lines: Vec<&str> = images.lines().collect();
    assert_eq!(lines.len(), TAGGED + UNTAGGED, "{images}");
    let tagged = lines.iter().filter(|l| l.starts_with("synthetic/")).count();
    assert_eq!(tagged, TAGGED);
    let (reference, id) = &made.tagged[TAGGED / 2];
    let short = &id.hex()[..12];
    assert!(
        images.contains(&format!("{} {short}", reference.familiar())),
        "{images}"
    );
    for name in [reference.familiar(), short.to_string()] {
        let out = stdout(&ok(root, &["inspect", "--format", "{{.Id}}", &name]));
        assert_eq!(out.trim(), id.to_string(), "inspect {name}");
    }
    let dangling = made.untagged[7].to_string();
    let out = stdout(&ok(root, &["inspect", "--format", "{{.Id}}", &dangling]));
    assert_eq!(out.trim(), dangling);
    let history = stdout(&ok(root, &["history", "-q", &reference.familiar()]));
    assert!(history.contains(short), "{history}");
    let df = stdout(&ok(
        root,
        &["system", "df", "--format", "{{.Type}}={{.TotalCount}}"],
    ));
    assert!(
        df.contains(&format!("Images={}", TAGGED + UNTAGGED)),
        "{df}"
    );
    assert!(df.contains(&format!("Build Cache={RECORDS}")), "{df}");
    // The table's cache size comes from the index's distinct top layers,
    // `-v`'s from every record: they must agree.
    let store = Store::open(root).unwrap();
    let (summary, full) = (store.usage_summary().unwrap(), store.usage().unwrap());
    assert_eq!((summary.cache_count, full.cache.len()), (RECORDS, RECORDS));
    assert_eq!(summary.cache_size, full.cache_size);
    assert!(summary.cache_size > 0);
    let size = stdout(&ok(
        root,
        &["system", "df", "--format", "{{.Type}}={{.Size}}"],
    ));
    let size = size
        .lines()
        .find_map(|l| l.strip_prefix("Build Cache="))
        .unwrap()
        .to_string();
    let verbose = stdout(&ok(root, &["system", "df", "-v"]));
    assert!(
        verbose.contains(&format!("Build cache usage: {size}\n")),
        "{size}: {}",
        &verbose[..verbose.len().min(4000)]
    );
    assert_eq!(
        verbose.lines().filter(|l| l.contains(" regular ")).count(),
        RECORDS
    );
    let verify = stdout(&ok(root, &["system", "verify", "--quick"]));
    assert!(
        verify.contains(&format!("{} snapshots", made.snapshot_count())),
        "{verify}"
    );
}

#[test]
fn a_big_store_stays_correct_and_prune_deletes_exactly_the_unreachable() {
    let dir = scratch("scale-big-store");
    let root = dir.join("root");
    let made = big_store(&root);
    read_commands_agree(&root, &made);

    // A second tag of one image changes nothing prune does.
    let (reference, id) = made.tagged[3].clone();
    ok(&root, &["tag", &reference.familiar(), "second:name"]);
    let out = stdout(&ok(
        root.as_path(),
        &["inspect", "--format", "{{.Id}}", "second:name"],
    ));
    assert_eq!(out.trim(), id.to_string());

    let out = ok(&root, &["prune", "-f"]);
    // What prune moved to the trash is deleted, and the rows of the
    // records it dropped purged, by prune itself or by the background
    // emptier it leaves the rest to.
    let emptied = Store::open(&root).unwrap();
    let mut waited = 0;
    while !emptied.trash_is_empty().unwrap() {
        assert!(waited < 600, "trash/ or dropped rows left after 300 s");
        std::thread::sleep(std::time::Duration::from_millis(500));
        waited += 1;
    }
    let log = stdout(&out);
    let mut deleted_records = BTreeSet::new();
    let mut deleted = Vec::new();
    for line in log.lines() {
        if let Some(key) = line.strip_prefix("Deleted: cache ") {
            deleted_records.insert(key.parse::<Digest>().unwrap());
        } else if let Some(digest) = line.strip_prefix("Deleted: sha256:") {
            deleted.push(format!("sha256:{digest}").parse::<Digest>().unwrap());
        }
    }
    assert_eq!(deleted_records, made.dangling_records, "records pruned");
    // Image ids (config digests) are printed once as images and once as
    // blobs: exactly the untagged ids and the dead blobs.
    let mut expected: Vec<Digest> = made.untagged.clone();
    expected.extend(made.dead_blobs.iter().copied());
    expected.sort();
    deleted.sort();
    assert_eq!(deleted, expected, "images and blobs pruned");

    // What is left on disk is exactly the live set.
    let store = Store::open(&root).unwrap();
    assert_eq!(names(&store.blobs_dir(), ""), made.live_blobs, "blobs kept");
    assert_eq!(
        names(&store.snapshots_dir(), ""),
        made.live_snapshots,
        "snapshots kept"
    );
    let records: BTreeSet<Digest> = store
        .cache_records()
        .unwrap()
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(records, made.kept_records, "records kept");
    let images = stdout(&ok(&root, &["images", "-q"]));
    assert_eq!(images.lines().count(), TAGGED + 1, "{images}");
    ok(&root, &["system", "verify"]);

    // Pruning again finds nothing; the store still builds on its images,
    // and a rebuild is all cache hits.
    let again = stdout(&ok(&root, &["prune", "-f"]));
    assert!(!again.contains("Deleted:"), "{again}");
    let from = made.tagged[11].0.familiar();
    let ctx = context(
        &dir,
        &[
            ("Dockerfile", &format!("FROM {from}\nCOPY a.txt /a.txt\n")),
            ("a.txt", "a\n"),
        ],
    );
    for round in 0..2 {
        let out = rbk(
            &root,
            &[
                "build",
                "--progress=plain",
                "-t",
                "on-top",
                ctx.to_str().unwrap(),
            ],
        );
        let log = stderr(&out);
        assert!(out.status.success(), "{log}");
        let copies = ran(&log).iter().filter(|l| l.contains("COPY")).count();
        assert_eq!(copies, 1 - round, "round {round}: {log}");
    }
    let layers = stdout(&ok(
        &root,
        &["inspect", "--format", "{{len .RootFS.Layers}}", "on-top"],
    ));
    assert_eq!(layers.trim(), "3");
    let _ = fs::remove_dir_all(&dir);
}
