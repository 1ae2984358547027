//! Reading a docker-archive (what `docker save` and `rbk save` write) into
//! something two builders' results can be compared on: the image config and
//! the final filesystem, its layers applied in order with OCI whiteouts.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

/// One path of a flattened filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// `file`, `dir`, `symlink`, `char`, `block` or `fifo`.
    pub(crate) kind: &'static str,
    /// Permission bits with setuid/setgid/sticky.
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) mtime: u64,
    /// Symlink target.
    pub(crate) target: Option<String>,
    /// File contents (hard links resolved to their target's).
    pub(crate) data: Option<Vec<u8>>,
}

/// An image read from a docker-archive.
pub(crate) struct Image {
    pub(crate) config: Value,
    /// Diff ids: the sha256 of each uncompressed layer, as in the config.
    pub(crate) layer_digests: Vec<String>,
    pub(crate) files: BTreeMap<String, Node>,
}

/// Reads the first image of the docker-archive at `path`.
pub(crate) fn read_archive(path: &Path) -> Image {
    let mut members: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    // `docker save` writes a layer used twice once, and a symlink to it.
    let mut links: Vec<(String, String)> = Vec::new();
    let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = clean(&entry.path().unwrap().to_string_lossy());
        if entry.header().entry_type() == tar::EntryType::Symlink {
            let target = entry.link_name().unwrap().unwrap();
            let mut resolved: Vec<String> = name.split('/').map(String::from).collect();
            resolved.pop();
            for part in target.to_string_lossy().split('/') {
                match part {
                    ".." => {
                        resolved.pop();
                    }
                    "." | "" => {}
                    p => resolved.push(p.to_string()),
                }
            }
            links.push((name, resolved.join("/")));
            continue;
        }
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        members.insert(name, data);
    }
    for (name, target) in links {
        let target = target
            .replace("/../", "/")
            .trim_start_matches("../")
            .to_string();
        if let Some(data) = members.get(&target).cloned() {
            members.insert(name, data);
        }
    }
    let manifest: Value = serde_json::from_slice(&members["manifest.json"]).unwrap();
    let manifest = &manifest[0];
    let config: Value =
        serde_json::from_slice(&members[&clean(manifest["Config"].as_str().unwrap())]).unwrap();
    let mut files = BTreeMap::new();
    let mut layer_digests = Vec::new();
    for layer in manifest["Layers"].as_array().unwrap() {
        let raw = decompress(&members[&clean(layer.as_str().unwrap())]);
        layer_digests.push(sha256_hex(&raw));
        apply_layer(&mut files, &raw);
    }
    Image {
        config,
        layer_digests,
        files,
    }
}

/// The bytes of a layer whatever its compression (gzip, zstd or none).
fn decompress(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if data.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        out = zstd::decode_all(data).unwrap();
    } else {
        out = data.to_vec();
    }
    out
}

/// Applies one layer tar: its whiteouts remove from what the lower layers
/// made, then its entries are added.
pub(crate) fn apply_layer(files: &mut BTreeMap<String, Node>, tar_bytes: &[u8]) {
    let mut entries = Vec::new();
    let mut archive = tar::Archive::new(tar_bytes);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = clean(&entry.path().unwrap().to_string_lossy());
        let header = entry.header().clone();
        let link = entry
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        entries.push((path, header, link, data));
    }
    for (path, ..) in &entries {
        let (dir, name) = split(path);
        if name == ".wh..wh..opq" {
            remove_children(files, dir);
        } else if let Some(hidden) = name.strip_prefix(".wh.") {
            let victim = join(dir, hidden);
            files.remove(&victim);
            remove_children(files, &victim);
        }
    }
    for (path, header, link, data) in entries {
        let (_, name) = split(&path);
        if name.starts_with(".wh.") || path.is_empty() {
            continue;
        }
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => "file",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Char => "char",
            tar::EntryType::Block => "block",
            tar::EntryType::Fifo => "fifo",
            tar::EntryType::Link => "hardlink",
            other => panic!("{path}: unexpected tar entry type {other:?}"),
        };
        let mut node = Node {
            kind,
            mode: header.mode().unwrap() & 0o7777,
            uid: header.uid().unwrap(),
            gid: header.gid().unwrap(),
            mtime: header.mtime().unwrap(),
            target: None,
            data: None,
        };
        match kind {
            "symlink" => node.target = link,
            "file" => node.data = Some(data),
            "hardlink" => {
                let target = files
                    .get(&clean(link.as_deref().unwrap()))
                    .unwrap_or_else(|| panic!("{path}: hard link to a missing {link:?}"));
                node.kind = "file";
                node.data = target.data.clone();
            }
            _ => {}
        }
        // A directory entry over an existing directory keeps its children.
        files.insert(path, node);
    }
}

/// Removes everything under `dir` (not `dir` itself; all for the root).
fn remove_children(files: &mut BTreeMap<String, Node>, dir: &str) {
    if dir.is_empty() {
        files.clear();
        return;
    }
    let prefix = format!("{dir}/");
    files.retain(|p, _| !p.starts_with(&prefix));
}

fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", path),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// `./a/b/` → `a/b`.
fn clean(path: &str) -> String {
    let path = path.trim_start_matches("./").trim_start_matches('/');
    path.trim_end_matches('/').to_string()
}

/// sha256 in hex, by coreutils' `sha256sum`: the tests need it only to
/// check diff ids, not worth a hash crate in the cli's dev-dependencies.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            let data = data.to_vec();
            let writer = std::thread::spawn(move || stdin.write_all(&data));
            let out = child.wait_with_output()?;
            writer.join().unwrap()?;
            Ok(out)
        })
        .expect("running sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}
