//! The SBOM: package databases read from the image's layers (replayed in
//! order, whiteouts applied, so only what the final filesystem holds
//! counts) and written as an SPDX 2.3 document.
//!
//! The text formats are simple enough to read directly: dpkg's status file
//! and apk's installed database are RFC 822-style stanzas, a dist-info
//! `METADATA` is e-mail headers, `Cargo.lock` needs only its
//! `[[package]]` names and versions, and npm lock files are JSON. RPM's
//! sqlite database is in `rpm.rs`, Go binaries' build info in `golang.rs`.
//!
//! The parsers return `Result<_, String>` on purpose: a database that does
//! not parse is a warning of the SBOM (`Scan::warnings`, naming the file),
//! never an error that stops the build, so the reason is only ever text.

mod golang;
mod rpm;

use std::collections::BTreeMap;
use std::io::Read;

use rbk_store::image::Image;
use rbk_store::{decompress, BlobRead, Digest, Store};
use serde_json::{json, Value};

use crate::{Error, Result};

/// Files larger than this are not package databases.
const MAX_DB: u64 = 256 << 20;
/// Executables larger than this are not read for Go build info.
const MAX_BINARY: u64 = 1 << 30;

/// One package.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Package {
    /// `deb`, `apk`, `rpm`, `pypi`, `npm`, `cargo`, `golang`.
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its architecture, when the database says.
    pub arch: String,
    /// The database (or Go binary) it came from (absolute path in the image).
    pub source: String,
}

/// What the scan found.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    /// The packages, sorted.
    pub packages: Vec<Package>,
    /// Databases that could not be read, each naming the file.
    pub warnings: Vec<String>,
}

/// A file of the image the scan keeps.
enum Found {
    /// A package database's bytes, read once the final filesystem is known
    /// (an RPM database needs its log beside it).
    Database(Vec<u8>),
    /// A Go binary, read as it went by (its bytes are not kept).
    Binary(std::result::Result<Vec<Package>, String>),
}

fn interesting(path: &str) -> bool {
    path == "var/lib/dpkg/status"
        || path == "lib/apk/db/installed"
        || (path.ends_with("/METADATA") && path.contains(".dist-info/"))
        || (path.ends_with("package-lock.json") && !path.contains("node_modules/"))
        || path.ends_with("/Cargo.lock")
        || path == "Cargo.lock"
        || rpm::interesting(path)
}

/// Reads the package databases of `image`'s final filesystem.
pub fn scan_image(store: &Store, image: &Image) -> Result<Scan> {
    let mut files: BTreeMap<String, Found> = BTreeMap::new();
    for layer in &image.manifest.layers {
        read_layer(store, &layer.digest, &mut files)?;
    }
    let mut scan = Scan::default();
    for (path, found) in &files {
        let shown = format!("/{path}");
        let parsed = match found {
            Found::Binary(result) => result.clone(),
            Found::Database(bytes) if rpm::is_database(path) => {
                let wal = match files.get(&format!("{path}-wal")) {
                    Some(Found::Database(wal)) => Some(wal.as_slice()),
                    _ => None,
                };
                rpm::packages(path, bytes, wal, &shown)
            }
            Found::Database(_) if rpm::interesting(path) => continue, // a log, read with its database
            Found::Database(bytes) => match std::str::from_utf8(bytes) {
                Err(e) => Err(format!("not UTF-8 text ({e})")),
                Ok(text) => parse(path, &shown, text),
            },
        };
        match parsed {
            Ok(mut p) => scan.packages.append(&mut p),
            Err(why) => scan.warnings.push(format!(
                "SBOM: skipped {shown}, which cannot be read as a package database: {why}"
            )),
        }
    }
    scan.packages.sort();
    scan.packages.dedup();
    Ok(scan)
}

fn parse(path: &str, shown: &str, text: &str) -> std::result::Result<Vec<Package>, String> {
    if path == "var/lib/dpkg/status" {
        dpkg(text, shown)
    } else if path == "lib/apk/db/installed" {
        apk(text, shown)
    } else if path.ends_with("/METADATA") {
        python(text, shown)
    } else if path.ends_with("package-lock.json") {
        npm(text, shown)
    } else {
        cargo(text, shown)
    }
}

fn read_layer(store: &Store, digest: &Digest, files: &mut BTreeMap<String, Found>) -> Result<()> {
    let fail = |e: std::io::Error| Error::Invalid(format!("reading layer {digest}: {e}"));
    let mut archive = tar::Archive::new(decompress(store.open(digest)?).map_err(fail)?);
    let mut seen: Vec<String> = Vec::new();
    for entry in archive.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        let raw = entry.path().map_err(fail)?.to_string_lossy().into_owned();
        let path = raw
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        // A whiteout deletes the path and what is under it; an opaque
        // directory what lower layers had under it.
        let gone = if name == ".wh..wh..opq" {
            Some((parent.to_string(), false))
        } else {
            name.strip_prefix(".wh.").map(|t| match parent {
                "" => (t.to_string(), true),
                _ => (format!("{parent}/{t}"), true),
            })
        };
        if let Some((target, itself)) = gone {
            let prefix = if target.is_empty() {
                String::new()
            } else {
                format!("{target}/")
            };
            files.retain(|k, _| {
                seen.contains(k) || !((itself && *k == target) || k.starts_with(&prefix))
            });
            continue;
        }
        // A later layer's file (or directory, or link) replaces the earlier one.
        files.remove(&path);
        let header = entry.header();
        if !header.entry_type().is_file() {
            continue;
        }
        let size = header.size().unwrap_or(u64::MAX);
        let executable = header.mode().unwrap_or(0) & 0o111 != 0;
        if interesting(&path) {
            if size > MAX_DB {
                continue;
            }
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(fail)?;
            files.insert(path.clone(), Found::Database(bytes));
            seen.push(path);
        } else if executable && (4..=MAX_BINARY).contains(&size) {
            let mut bytes = vec![0; 4];
            entry.read_exact(&mut bytes).map_err(fail)?;
            if !golang::is_elf(&bytes) {
                continue;
            }
            entry.read_to_end(&mut bytes).map_err(fail)?;
            if let Some(found) = golang::packages(&bytes, &format!("/{path}")) {
                files.insert(path.clone(), Found::Binary(found));
                seen.push(path);
            }
        }
    }
    Ok(())
}

/// RFC 822-style stanzas: `Key: value` lines, continuation lines starting
/// with a space, stanzas separated by blank lines.
fn stanzas(text: &str) -> Vec<(usize, BTreeMap<String, String>)> {
    let mut out = Vec::new();
    let mut current = BTreeMap::new();
    let mut start = 1;
    let mut last_key: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                out.push((start, std::mem::take(&mut current)));
            }
            last_key = None;
            start = i + 2;
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(k) = &last_key {
                current.entry(k.clone()).and_modify(|v: &mut String| {
                    v.push('\n');
                    v.push_str(line.trim());
                });
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            current.insert(k.trim().to_string(), v.trim().to_string());
            last_key = Some(k.trim().to_string());
        } else {
            current.insert(format!("\0line {}", i + 1), line.to_string());
        }
    }
    if !current.is_empty() {
        out.push((start, current));
    }
    out
}

fn dpkg(text: &str, shown: &str) -> std::result::Result<Vec<Package>, String> {
    let mut out = Vec::new();
    for (line, s) in stanzas(text) {
        if let Some(bad) = s.keys().find(|k| k.starts_with('\0')) {
            return Err(format!(
                "{}: expected a `Field: value` line",
                bad.trim_start_matches('\0')
            ));
        }
        let (Some(name), Some(status)) = (s.get("Package"), s.get("Status")) else {
            return Err(format!(
                "the stanza at line {line} has no Package or Status field"
            ));
        };
        // dpkg-query -W lists every package dpkg knows that is not `not-installed`.
        if status.split_whitespace().nth(2) == Some("not-installed") {
            continue;
        }
        out.push(Package {
            kind: "deb",
            name: name.clone(),
            version: s.get("Version").cloned().unwrap_or_default(),
            arch: s.get("Architecture").cloned().unwrap_or_default(),
            source: shown.to_string(),
        });
    }
    Ok(out)
}

fn apk(text: &str, shown: &str) -> std::result::Result<Vec<Package>, String> {
    let mut out = Vec::new();
    for (line, s) in stanzas(text) {
        let Some(name) = s.get("P") else {
            return Err(format!(
                "the stanza at line {line} has no P: (package name) field"
            ));
        };
        out.push(Package {
            kind: "apk",
            name: name.clone(),
            version: s.get("V").cloned().unwrap_or_default(),
            arch: s.get("A").cloned().unwrap_or_default(),
            source: shown.to_string(),
        });
    }
    Ok(out)
}

fn python(text: &str, shown: &str) -> std::result::Result<Vec<Package>, String> {
    // Headers end at the first blank line (the long description follows).
    let head = text.split("\n\n").next().unwrap_or_default();
    let field = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
            .map(|v| v.trim().to_string())
    };
    match (field("Name"), field("Version")) {
        (Some(name), Some(version)) => Ok(vec![Package {
            kind: "pypi",
            name,
            version,
            arch: String::new(),
            source: shown.to_string(),
        }]),
        _ => Err("no Name: and Version: headers".into()),
    }
}

fn npm(text: &str, shown: &str) -> std::result::Result<Vec<Package>, String> {
    let lock: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut out = Vec::new();
    let mut push = |name: &str, version: &str| {
        out.push(Package {
            kind: "npm",
            name: name.to_string(),
            version: version.to_string(),
            arch: String::new(),
            source: shown.to_string(),
        })
    };
    if let Some(packages) = lock["packages"].as_object() {
        for (key, p) in packages {
            let Some(i) = key.rfind("node_modules/") else {
                continue;
            };
            let name = &key[i + "node_modules/".len()..];
            push(
                p["name"].as_str().unwrap_or(name),
                p["version"].as_str().unwrap_or_default(),
            );
        }
    } else if let Some(deps) = lock["dependencies"].as_object() {
        fn walk(deps: &serde_json::Map<String, Value>, push: &mut dyn FnMut(&str, &str)) {
            for (name, d) in deps {
                push(name, d["version"].as_str().unwrap_or_default());
                if let Some(inner) = d["dependencies"].as_object() {
                    walk(inner, push);
                }
            }
        }
        walk(deps, &mut push);
    } else {
        return Err("neither \"packages\" nor \"dependencies\"".into());
    }
    Ok(out)
}

/// A Cargo.lock file: its `[[package]]` tables.
#[derive(serde::Deserialize)]
struct CargoLock {
    #[serde(default)]
    package: Vec<CargoLockPackage>,
}

#[derive(serde::Deserialize)]
struct CargoLockPackage {
    name: String,
    version: String,
}

fn cargo(text: &str, shown: &str) -> std::result::Result<Vec<Package>, String> {
    let lock: CargoLock = toml::from_str(text).map_err(|e| format!("invalid Cargo.lock: {e}"))?;
    if lock.package.is_empty() {
        return Err("no [[package]] tables".into());
    }
    Ok(lock
        .package
        .into_iter()
        .map(|p| Package {
            kind: "cargo",
            name: p.name,
            version: p.version,
            arch: String::new(),
            source: shown.to_string(),
        })
        .collect())
}

/// The package URL of `p` (`None` when the database gave no usable name).
/// Debian's and Alpine's packages get their distribution as the
/// namespace; npm scopes and Go module paths are namespace and name; an
/// RPM epoch is a qualifier, not part of the version.
fn purl(p: &Package) -> Option<String> {
    let (namespace, name) = match p.kind {
        "deb" => (Some("debian"), p.name.as_str()),
        "apk" => (Some("alpine"), p.name.as_str()),
        "npm" | "golang" => match p.name.rsplit_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, p.name.as_str()),
        },
        _ => (None, p.name.as_str()),
    };
    let (epoch, version) = match p.version.split_once(':') {
        Some((e, v)) if p.kind == "rpm" => (Some(e), v),
        _ => (None, p.version.as_str()),
    };
    let make = || -> std::result::Result<String, packageurl::Error> {
        let mut url = packageurl::PackageUrl::new(p.kind, name)?;
        if let Some(ns) = namespace {
            url.with_namespace(ns)?;
        }
        if !version.is_empty() {
            url.with_version(version)?;
        }
        if !p.arch.is_empty() {
            url.add_qualifier("arch", p.arch.as_str())?;
        }
        if let Some(e) = epoch {
            url.add_qualifier("epoch", e)?;
        }
        Ok(url.to_string())
    };
    make().ok()
}

/// The SPDX 2.3 JSON document of `scan`.
pub(crate) fn spdx(scan: &Scan, name: &str, id: Digest, created: &str) -> Value {
    let packages: Vec<Value> = scan
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({
                "name": p.name,
                "SPDXID": format!("SPDXRef-Package-{}-{i}", p.kind),
                "versionInfo": p.version,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "supplier": "NOASSERTION",
                "sourceInfo": format!("acquired package info from {}", p.source),
                "externalRefs": purl(p).map(|locator| json!([{
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": locator,
                }])).unwrap_or_else(|| json!([])),
            })
        })
        .collect();
    let relationships: Vec<Value> = packages
        .iter()
        .map(|p| json!({"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": p["SPDXID"]}))
        .collect();
    let hex = id.to_string();
    json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": format!("https://rbk.invalid/spdx/{}", hex.trim_start_matches("sha256:")),
        "creationInfo": {
            "created": created,
            "creators": [format!("Tool: rbk-{}", env!("CARGO_PKG_VERSION"))],
        },
        "packages": packages,
        "relationships": relationships,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn databases_parse() {
        let status = "Package: a\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n more\n\nPackage: gone\nStatus: purge ok not-installed\n\nPackage: b\nStatus: deinstall ok config-files\nVersion: 2\n";
        let p = dpkg(status, "/var/lib/dpkg/status").unwrap();
        assert_eq!(
            p.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(dpkg("garbage\n", "x").unwrap_err().contains("line 1"));
        assert!(dpkg("Version: 1\n", "x")
            .unwrap_err()
            .contains("no Package"));
        let apk_db = "C:Q1\nP:musl\nV:1.2.4-r2\nA:x86_64\n\nP:busybox\nV:1.36\n";
        assert_eq!(apk(apk_db, "x").unwrap().len(), 2);
        let meta = "Metadata-Version: 2.1\nName: requests\nVersion: 2.31.0\n\nName: not-this\n";
        assert_eq!(python(meta, "x").unwrap()[0].version, "2.31.0");
        let lock = r#"{"lockfileVersion":3,"packages":{"":{"name":"app"},"node_modules/left-pad":{"version":"1.3.0"},"node_modules/a/node_modules/@s/b":{"version":"2.0.0"}}}"#;
        let n = npm(lock, "x").unwrap();
        assert_eq!(
            n.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["@s/b", "left-pad"]
        );
        assert!(npm("{", "x").unwrap_err().contains("invalid JSON"));
        let cl = "version = 3\n\n[[package]]\nname = \"serde\"\nversion = \"1.0.1\"\ndependencies = [\n \"x\",\n]\n\n[[package]]\nname = \"x\"\nversion = \"0.1.0\"\n";
        assert_eq!(cargo(cl, "x").unwrap().len(), 2);
        assert!(cargo("[[package]]\nname = \"x\"\n", "x")
            .unwrap_err()
            .contains("version"));
        assert!(cargo("version = 3\n", "x")
            .unwrap_err()
            .contains("no [[package]]"));
        assert_eq!(purl(&n[0]).unwrap(), "pkg:npm/%40s/b@2.0.0");
        let pkg = |kind, name: &str, version: &str, arch: &str| Package {
            kind,
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            source: String::new(),
        };
        // The spec's per-type rules: pypi names normalised, epochs and
        // arches as qualifiers, Go module paths split.
        assert_eq!(
            purl(&pkg("pypi", "Typing_Extensions", "4.0", "")).unwrap(),
            "pkg:pypi/typing-extensions@4.0"
        );
        assert_eq!(
            purl(&pkg("rpm", "bash", "1:5.2-1", "x86_64")).unwrap(),
            "pkg:rpm/bash@5.2-1?arch=x86_64&epoch=1"
        );
        assert_eq!(
            purl(&pkg("deb", "libc6", "2.36-9+deb12u4", "amd64")).unwrap(),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64"
        );
        assert_eq!(
            purl(&pkg("golang", "golang.org/x/sys", "v0.1.0", "")).unwrap(),
            "pkg:golang/golang.org/x/sys@v0.1.0"
        );
        assert_eq!(purl(&pkg("npm", "", "1", "")), None);
    }
}
