//! `--annotation`, as buildx reads it: `[TYPE[,TYPE…]][\[PLATFORM\]]:KEY=VALUE`,
//! TYPE one of `manifest` (the default), `index`, `manifest-descriptor`,
//! `index-descriptor`; a `[os/arch]` suffix limits it to that platform's
//! manifest.

use rbk_graph::Platform;
use rbk_store::{BlobWrite, Descriptor, Store};

use crate::{Error, Result};

/// Where an annotation goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnotationTarget {
    /// The image manifest's `annotations`.
    Manifest,
    /// The image index's `annotations`.
    Index,
    /// The manifest's descriptor (in the index or the store's tag).
    ManifestDescriptor,
    /// The index's descriptor (in an OCI layout's `index.json`).
    IndexDescriptor,
}

/// One `--annotation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Annotation {
    /// Where it goes (one or more).
    pub targets: Vec<AnnotationTarget>,
    /// `[os/arch[/variant]]`: only this platform's manifest.
    pub platform: Option<String>,
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

impl Annotation {
    /// Parses one `--annotation` value; the error names the value and what
    /// was expected.
    pub fn parse(text: &str) -> Result<Annotation> {
        let bad = |why: &str| Error::Invalid(format!("invalid --annotation {text:?}: {why}"));
        let (left, value) = text
            .split_once('=')
            .ok_or_else(|| bad("expected KEY=VALUE"))?;
        let (prefix, key) = match left.split_once(':') {
            Some((p, k)) if looks_like_types(p) => (Some(p), k),
            _ => (None, left),
        };
        if key.is_empty() {
            return Err(bad("the key is empty"));
        }
        let mut annotation = Annotation {
            targets: vec![AnnotationTarget::Manifest],
            platform: None,
            key: key.to_string(),
            value: value.to_string(),
        };
        let Some(prefix) = prefix else {
            return Ok(annotation);
        };
        let (types, platform) = match prefix.split_once('[') {
            Some((t, rest)) => {
                let p = rest
                    .strip_suffix(']')
                    .ok_or_else(|| bad("a platform is written [os/arch]"))?;
                if p.is_empty() || p.split('/').count() < 2 || p.split('/').any(str::is_empty) {
                    return Err(bad(&format!(
                        "invalid platform {p:?} (expected os/arch[/variant])"
                    )));
                }
                (t, Some(p.to_ascii_lowercase()))
            }
            None => (prefix, None),
        };
        let mut targets = Vec::new();
        for t in types.split(',') {
            targets.push(match t.trim() {
                "manifest" => AnnotationTarget::Manifest,
                "index" => AnnotationTarget::Index,
                "manifest-descriptor" => AnnotationTarget::ManifestDescriptor,
                "index-descriptor" => AnnotationTarget::IndexDescriptor,
                other => {
                    return Err(bad(&format!(
                        "unknown annotation type {other:?} (expected manifest, index, manifest-descriptor or index-descriptor)"
                    )))
                }
            });
        }
        annotation.targets = targets;
        annotation.platform = platform;
        Ok(annotation)
    }

    /// Whether it applies to a manifest for `platform`.
    pub fn for_platform(&self, platform: &Platform) -> bool {
        let Some(p) = &self.platform else {
            return true;
        };
        let mut parts = p.split('/');
        let (os, arch, variant) = (parts.next(), parts.next(), parts.next());
        os == Some(platform.os.as_str())
            && arch == Some(platform.architecture.as_str())
            && variant.is_none_or(|v| v == platform.variant)
    }

    fn goes_to(&self, target: AnnotationTarget, platform: &Platform) -> bool {
        self.targets.contains(&target) && self.for_platform(platform)
    }
}

/// Index annotations on a build that makes a single manifest (no
/// attestations, one platform), and `index-descriptor:` annotations, which
/// rbk does not place: refused before any step runs.
pub(crate) fn refuse_index(annotations: &[Annotation], has_index: bool) -> Result<()> {
    for a in annotations {
        if a.targets.contains(&AnnotationTarget::IndexDescriptor) {
            return Err(Error::Invalid(format!(
                "--annotation {}: index-descriptor annotations are not supported (use index: or manifest-descriptor:)",
                a.key
            )));
        }
        if a.targets.contains(&AnnotationTarget::Index) && !has_index {
            return Err(Error::Invalid(format!(
                "--annotation {}: this build makes a single image manifest, not an index (index annotations need a multi-platform build or attestations)",
                a.key
            )));
        }
    }
    Ok(())
}

/// The `index:` annotations, which go into the image index's own
/// `annotations` (a multi-platform build's index, or the index of an image
/// and its attestations).
pub(crate) fn index_annotations(
    annotations: &[Annotation],
) -> std::collections::BTreeMap<String, String> {
    annotations
        .iter()
        .filter(|a| a.targets.contains(&AnnotationTarget::Index))
        .map(|a| (a.key.clone(), a.value.clone()))
        .collect()
}

/// A `TYPE[,TYPE][\[…\]]` prefix (as opposed to a key that holds a colon).
fn looks_like_types(prefix: &str) -> bool {
    let types = prefix.split('[').next().unwrap_or_default();
    !types.is_empty()
        && types
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '-' || c == ',')
}

/// Puts the manifest annotations for `platform` into the manifest (a new
/// manifest, so a new digest) and the descriptor annotations on the
/// descriptor returned. Index annotations need an index: rbk makes one
/// only for multi-platform builds and attestations, so they are refused
/// for a single image (the index's own go in with
/// [`index_annotations`]).
pub(crate) fn apply(
    store: &Store,
    manifest: Descriptor,
    annotations: &[Annotation],
    platform: &Platform,
    has_index: bool,
) -> Result<Descriptor> {
    refuse_index(annotations, has_index)?;
    let pick = |target| {
        annotations
            .iter()
            .filter(move |a| a.goes_to(target, platform))
            .map(|a| (a.key.clone(), a.value.clone()))
    };
    let mut out = manifest.clone();
    let extra: Vec<_> = pick(AnnotationTarget::Manifest).collect();
    if !extra.is_empty() {
        let mut image = store.read_image(&manifest)?.manifest;
        image.annotations.extend(extra);
        let bytes = serde_json::to_vec(&image)
            .map_err(|e| Error::Invalid(format!("encoding the annotated manifest: {e}")))?;
        let info = store.put_bytes(&bytes)?;
        out.digest = info.digest;
        out.size = info.size;
    }
    out.annotations
        .extend(pick(AnnotationTarget::ManifestDescriptor));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_buildx_forms() {
        let a = Annotation::parse("org.opencontainers.image.title=rbk").unwrap();
        assert_eq!(a.targets, [AnnotationTarget::Manifest]);
        assert_eq!(a.key, "org.opencontainers.image.title");
        let a = Annotation::parse("index,manifest-descriptor:k=v=w").unwrap();
        assert_eq!(
            a.targets,
            [
                AnnotationTarget::Index,
                AnnotationTarget::ManifestDescriptor
            ]
        );
        assert_eq!(a.value, "v=w");
        let a = Annotation::parse("manifest[linux/arm64]:k=").unwrap();
        assert_eq!(a.platform.as_deref(), Some("linux/arm64"));
        let amd64 = Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: String::new(),
        };
        assert!(!a.for_platform(&amd64));
        let err = |s: &str| Annotation::parse(s).unwrap_err().to_string();
        assert_eq!(
            err("novalue"),
            "invalid --annotation \"novalue\": expected KEY=VALUE"
        );
        assert!(err("bogus:k=v").contains("unknown annotation type \"bogus\""));
        assert!(err("manifest[linux]:k=v").contains("invalid platform \"linux\""));
        assert!(err("manifest:=v").contains("the key is empty"));
        assert!(err("manifest[linux/amd64:k=v").contains("[os/arch]"));
    }
}
