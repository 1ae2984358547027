//! Attestations, stored the way current BuildKit stores them: for each
//! image manifest, an attestation manifest in the same OCI index (platform
//! `unknown/unknown`, annotated `vnd.docker.reference.type:
//! attestation-manifest` and `vnd.docker.reference.digest: <image
//! manifest>`), whose layers are in-toto statements
//! (`application/vnd.in-toto+json`, annotated with their
//! `in-toto.io/predicate-type`).
//!
//! - `sbom/`: an SPDX 2.3 document of the packages the image's package
//!   databases list (dpkg, apk, RPM's sqlite database, Python dist-info, npm
//!   lock files, Cargo.lock, Go binaries' build info); a database that cannot be read gives a warning naming the
//!   file, never a failed build.
//! - `provenance.rs`: a SLSA provenance v1 predicate (build parameters, the
//!   Dockerfile's digest, the base images' digests; the build steps in
//!   `mode=max`). Secret values never enter it: only their ids.
//! - `retarget.rs`: a stored index's attestation manifests made about the
//!   image manifests a push or archive sends in place of the stored ones.

mod attach;
mod provenance;
mod retarget;
mod sbom;

pub(crate) use attach::{attach, push as push_attested, write_archive, Attached, Subject};
pub(crate) use retarget::retarget_attestations;
use std::collections::BTreeMap;

use rbk_store::image::{Image, ImagePlatform, OCI_MANIFEST};
use rbk_store::{BlobRead, BlobWrite, Descriptor, Digest, Store};
use serde_json::{json, Value};

pub use provenance::ProvenanceInput;
pub use sbom::{scan_image, Package, Scan};

use crate::{Error, Result};

/// The in-toto layer media type.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
/// SPDX's predicate type.
pub const SPDX_PREDICATE: &str = "https://spdx.dev/Document";
/// SLSA provenance v1's predicate type.
pub const SLSA_PREDICATE: &str = "https://slsa.dev/provenance/v1";
/// The annotation naming an attestation manifest.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// The annotation naming the manifest an attestation is about.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";

/// `mode=` of `--provenance`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProvenanceMode {
    /// Parameters, materials, the Dockerfile digest.
    Min,
    /// Also the build steps and the build args.
    Max,
}

/// What attestations a build makes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttestOptions {
    /// `--sbom=true` / `--attest type=sbom`.
    pub sbom: bool,
    /// `--provenance` / `--attest type=provenance`.
    pub provenance: Option<ProvenanceMode>,
}

impl AttestOptions {
    /// Whether any attestation is asked for.
    pub fn any(&self) -> bool {
        self.sbom || self.provenance.is_some()
    }

    /// Reads `--attest` values, `--sbom` and `--provenance` as buildx does;
    /// errors name the value and what was expected.
    pub fn parse(
        attest: &[String],
        sbom: Option<&str>,
        provenance: Option<&str>,
    ) -> Result<AttestOptions> {
        let mut out = AttestOptions::default();
        for value in attest {
            let fields = csv_fields(value);
            match fields.get("type").map(String::as_str) {
                Some("sbom") => out.sbom = !disabled(&fields),
                Some("provenance") => out.provenance = provenance_mode(&fields, value)?,
                Some(other) => {
                    return Err(Error::Invalid(format!(
                        "--attest {value:?}: unknown attestation type {other:?} (expected sbom or provenance)"
                    )))
                }
                None => return Err(Error::Invalid(format!("--attest {value:?}: type= is required (sbom or provenance)"))),
            }
        }
        if let Some(v) = sbom {
            out.sbom = flag_or_fields(v, "--sbom")?.is_some_and(|f| !disabled(&f));
        }
        if let Some(v) = provenance {
            out.provenance = match flag_or_fields(v, "--provenance")? {
                Some(fields) => provenance_mode(&fields, v)?,
                None => None,
            };
        }
        Ok(out)
    }
}

/// `true`/`false`, or `key=value,…` fields (`None`: turned off).
fn flag_or_fields(v: &str, flag: &str) -> Result<Option<BTreeMap<String, String>>> {
    match v {
        "true" | "1" => Ok(Some(BTreeMap::new())),
        "false" | "0" => Ok(None),
        _ if v.contains('=') => Ok(Some(csv_fields(v))),
        _ => Err(Error::Invalid(format!(
            "{flag}={v:?}: expected true, false or key=value pairs"
        ))),
    }
}

fn csv_fields(v: &str) -> BTreeMap<String, String> {
    v.split(',')
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn disabled(fields: &BTreeMap<String, String>) -> bool {
    fields.get("disabled").is_some_and(|v| v == "true")
}

fn provenance_mode(
    fields: &BTreeMap<String, String>,
    value: &str,
) -> Result<Option<ProvenanceMode>> {
    if disabled(fields) {
        return Ok(None);
    }
    match fields.get("mode").map(String::as_str) {
        None | Some("min") => Ok(Some(ProvenanceMode::Min)),
        Some("max") => Ok(Some(ProvenanceMode::Max)),
        Some(other) => Err(Error::Invalid(format!(
            "provenance {value:?}: unknown mode {other:?} (expected min or max)"
        ))),
    }
}

/// An in-toto statement about `subject` (a manifest) of the image `name`.
pub(crate) fn statement(
    predicate_type: &str,
    subject: &Descriptor,
    name: &str,
    platform: &ImagePlatform,
    predicate: &Value,
) -> Value {
    let hex = subject.digest.to_string();
    let hex = hex.strip_prefix("sha256:").unwrap_or(&hex).to_string();
    json!({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": predicate_type,
        "subject": [{
            "name": format!("pkg:docker/{name}?platform={}", platform.to_string().replace('/', "%2F")),
            "digest": {"sha256": hex},
        }],
        "predicate": predicate,
    })
}

/// Stores an attestation manifest holding `statements` about `subject` and
/// returns its descriptor, annotated as BuildKit annotates it.
pub(crate) fn attestation_manifest(
    store: &Store,
    subject: &Descriptor,
    statements: &[Value],
) -> Result<Descriptor> {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for s in statements {
        let bytes = serde_json::to_vec(s)
            .map_err(|e| Error::Invalid(format!("encoding an attestation: {e}")))?;
        let info = store.put_bytes(&bytes)?;
        diff_ids.push(info.digest.to_string());
        let predicate = s["predicateType"].as_str().unwrap_or_default().to_string();
        layers.push(json!({
            "mediaType": IN_TOTO,
            "digest": info.digest.to_string(),
            "size": info.size,
            "annotations": {"in-toto.io/predicate-type": predicate},
        }));
    }
    let config = json!({
        "architecture": "unknown",
        "os": "unknown",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config_bytes = serde_json::to_vec(&config).map_err(|e| Error::Invalid(e.to_string()))?;
    let config_info = store.put_bytes(&config_bytes)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_info.digest.to_string(),
            "size": config_info.size,
        },
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(e.to_string()))?;
    let info = store.put_bytes(&bytes)?;
    Ok(Descriptor {
        media_type: OCI_MANIFEST.to_string(),
        digest: info.digest,
        size: info.size,
        annotations: [
            (REFERENCE_DIGEST.to_string(), subject.digest.to_string()),
            (
                REFERENCE_TYPE.to_string(),
                "attestation-manifest".to_string(),
            ),
        ]
        .into(),
    })
}

/// The platform of attestation manifests in an index.
pub(crate) fn unknown_platform() -> ImagePlatform {
    ImagePlatform {
        os: "unknown".into(),
        architecture: "unknown".into(),
        variant: String::new(),
    }
}

/// The predicates of one image: made once, wrapped per subject (the stored
/// manifest, and the one a push sends).
pub(crate) struct Predicates {
    /// (predicate type, predicate).
    pub(crate) items: Vec<(&'static str, Value)>,
    /// Warnings (unreadable package databases).
    pub(crate) warnings: Vec<String>,
}

impl Predicates {
    /// Makes the predicates `options` asks for, for `image`.
    pub(crate) fn make(
        store: &Store,
        image: &Image,
        options: &AttestOptions,
        input: &ProvenanceInput<'_>,
    ) -> Result<Predicates> {
        let mut items = Vec::new();
        let mut warnings = Vec::new();
        if options.sbom {
            let scan = scan_image(store, image)?;
            warnings.extend(scan.warnings.iter().cloned());
            items.push((
                SPDX_PREDICATE,
                sbom::spdx(&scan, input.name, image.id(), input.created),
            ));
        }
        if let Some(mode) = options.provenance {
            items.push((SLSA_PREDICATE, provenance::predicate(input, mode)));
        }
        Ok(Predicates { items, warnings })
    }
}

/// The statements attached to the image manifest `manifest` in `index`.
pub fn attestations_of(
    store: &Store,
    index: &Descriptor,
    manifest: Option<&Digest>,
) -> Result<Vec<Value>> {
    let Some(idx) = store.read_index(index)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in idx.manifests.iter().filter(|e| e.is_attestation()) {
        let about = entry.descriptor.annotations.get(REFERENCE_DIGEST);
        if manifest.is_some_and(|m| about != Some(&m.to_string())) {
            continue;
        }
        let bytes = store.read_bounded(&entry.descriptor.digest, rbk_store::MAX_DOCUMENT_SIZE)?;
        let m: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Invalid(format!(
                "attestation manifest {}: {e}",
                entry.descriptor.digest
            ))
        })?;
        for layer in m["layers"].as_array().into_iter().flatten() {
            let Some(d) = layer["digest"]
                .as_str()
                .and_then(|d| d.parse::<Digest>().ok())
            else {
                continue;
            };
            let bytes = store.read_bounded(&d, 256 << 20)?;
            out.push(
                serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Invalid(format!("attestation {d}: {e}")))?,
            );
        }
    }
    Ok(out)
}
