//! Attestation manifests of a stored index made about the images as they
//! leave the store. A push (or archive) that compresses the images' layers
//! sends new image manifests; each attestation manifest about one of them
//! is rewritten so that its index annotation
//! (`vnd.docker.reference.digest`) and its in-toto statements' subjects
//! name the manifest that is sent, as BuildKit's exporter makes them about
//! the manifest it pushes. Statements about other digests, layers that are
//! not plain in-toto JSON (signed envelopes), and everything else in the
//! documents are kept as they are.

use std::collections::BTreeMap;

use rbk_store::image::{ImagePlatform, Index};
use rbk_store::{BlobRead, BlobWrite, Descriptor, Digest, Store};
use serde_json::Value;

use super::{IN_TOTO, REFERENCE_DIGEST};
use crate::{Error, Result};

/// The largest statement read back (an SBOM of a big image is large).
const MAX_STATEMENT: u64 = 256 << 20;

/// Each attestation entry of `index` with its platform, about the manifest
/// `sent` maps its subject to (stored manifest digest → the manifest sent
/// in its place). Entries about a manifest that goes unchanged, or that
/// `sent` does not name, keep their bytes.
pub(crate) fn retarget_attestations(
    store: &Store,
    index: &Index,
    sent: &BTreeMap<Digest, Descriptor>,
) -> Result<Vec<(Descriptor, ImagePlatform)>> {
    let mut out = Vec::new();
    for entry in index.manifests.iter().filter(|e| e.is_attestation()) {
        let platform = ImagePlatform::of_entry(entry).unwrap_or_else(super::unknown_platform);
        let about = entry
            .descriptor
            .annotations
            .get(REFERENCE_DIGEST)
            .and_then(|d| d.parse::<Digest>().ok());
        let target = about.and_then(|old| Some((old, sent.get(&old)?)));
        let descriptor = match target {
            Some((old, new)) if old != new.digest => {
                retarget(store, &entry.descriptor, &old, &new.digest)?
            }
            _ => entry.descriptor.clone(),
        };
        out.push((descriptor, platform));
    }
    Ok(out)
}

/// The attestation manifest `desc` made about `new` instead of `old`.
fn retarget(store: &Store, desc: &Descriptor, old: &Digest, new: &Digest) -> Result<Descriptor> {
    let what = format!("attestation manifest {}", desc.digest);
    let mut manifest = read_json(store, &desc.digest, rbk_store::MAX_DOCUMENT_SIZE, &what)?;
    // Old statement digest → new, for the config's diff ids.
    let mut replaced: BTreeMap<String, String> = BTreeMap::new();
    for layer in manifest["layers"].as_array_mut().into_iter().flatten() {
        if layer["mediaType"].as_str() != Some(IN_TOTO) {
            continue;
        }
        let Some(digest) = layer["digest"].as_str().and_then(|d| d.parse().ok()) else {
            continue;
        };
        let mut statement = read_json(
            store,
            &digest,
            MAX_STATEMENT,
            &format!("attestation {digest}"),
        )?;
        if !name_subject(&mut statement, old, new) {
            continue;
        }
        let info = store.put_bytes(&to_bytes(&statement)?)?;
        replaced.insert(digest.to_string(), info.digest.to_string());
        layer["digest"] = Value::String(info.digest.to_string());
        layer["size"] = info.size.into();
    }
    if let Some(config_digest) = manifest["config"]["digest"]
        .as_str()
        .and_then(|d| d.parse::<Digest>().ok())
        .filter(|_| !replaced.is_empty())
    {
        let mut config = read_json(
            store,
            &config_digest,
            rbk_store::MAX_DOCUMENT_SIZE,
            &format!("{what}: config {config_digest}"),
        )?;
        for id in config["rootfs"]["diff_ids"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if let Some(new_id) = id.as_str().and_then(|d| replaced.get(d)) {
                *id = Value::String(new_id.clone());
            }
        }
        let info = store.put_bytes(&to_bytes(&config)?)?;
        manifest["config"]["digest"] = Value::String(info.digest.to_string());
        manifest["config"]["size"] = info.size.into();
    }
    let info = store.put_bytes(&to_bytes(&manifest)?)?;
    let mut annotations = desc.annotations.clone();
    annotations.insert(REFERENCE_DIGEST.to_string(), new.to_string());
    Ok(Descriptor {
        media_type: desc.media_type.clone(),
        digest: info.digest,
        size: info.size,
        annotations,
    })
}

/// Points the subjects of `statement` whose sha256 is `old` at `new`;
/// whether one was.
fn name_subject(statement: &mut Value, old: &Digest, new: &Digest) -> bool {
    let (old, new) = (old.to_string(), new.to_string());
    let (Some(old_hex), Some(new_hex)) = (old.strip_prefix("sha256:"), new.strip_prefix("sha256:"))
    else {
        return false;
    };
    let mut changed = false;
    for subject in statement["subject"].as_array_mut().into_iter().flatten() {
        let digest = &mut subject["digest"]["sha256"];
        if digest.as_str() == Some(old_hex) {
            *digest = Value::String(new_hex.to_string());
            changed = true;
        }
    }
    changed
}

fn read_json(store: &Store, digest: &Digest, limit: u64, what: &str) -> Result<Value> {
    let bytes = store.read_bounded(digest, limit)?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Invalid(format!("{what}: {e}")))
}

fn to_bytes(value: &Value) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Invalid(format!("encoding an attestation: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_subjects_naming_the_old_manifest_change() {
        let old: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let new: Digest = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        let other = "c".repeat(64);
        let mut s = serde_json::json!({"subject": [
            {"name": "x", "digest": {"sha256": "a".repeat(64)}},
            {"name": "y", "digest": {"sha256": other}},
        ]});
        assert!(name_subject(&mut s, &old, &new));
        assert_eq!(s["subject"][0]["digest"]["sha256"], "b".repeat(64));
        assert_eq!(s["subject"][1]["digest"]["sha256"], other);
        assert!(!name_subject(&mut s, &old, &new), "nothing left to change");
    }
}
