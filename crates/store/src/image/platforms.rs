//! Images for several platforms: an index (OCI image index or Docker
//! manifest list) tagged in the store, and choosing one platform's manifest
//! from it.
//!
//! A tag may point at an index. Whoever needs one platform's image asks
//! [`Store::image_for_platform`]; code that shows "the" image of a tag
//! (`images`, `inspect` without `--platform`, `run`) gets, through
//! [`Store::read_image`], the entry for the platform rbk was compiled for,
//! else the first image entry, as Docker's containerd store shows the host's.

use std::collections::BTreeMap;
use std::fmt;

use super::{parse_document, Document, Image, Index, IndexEntry, OCI_INDEX};
use crate::{BlobRead, BlobWrite, Descriptor, Error, Result, Store};

/// A platform as an index entry names it: `os/architecture[/variant]` in
/// OCI's (GOOS/GOARCH) vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImagePlatform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `v7`, `v8`, … or empty.
    pub variant: String,
}

impl ImagePlatform {
    /// The platform this program was compiled for.
    pub fn host() -> ImagePlatform {
        // `consts::ARCH` is the compile-time target, not an environment read.
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "powerpc64" => "ppc64le",
            "loongarch64" => "loong64",
            other => other,
        };
        ImagePlatform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: String::new(),
        }
    }

    /// The platform an index entry declares (`None` when it declares none).
    pub fn of_entry(entry: &IndexEntry) -> Option<ImagePlatform> {
        let p = entry.platform.as_ref()?;
        let field = |k: &str| {
            p.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        Some(ImagePlatform {
            os: field("os"),
            architecture: field("architecture"),
            variant: field("variant"),
        })
    }

    /// Whether an image for `other` serves this platform: os and
    /// architecture equal; variants count only when both name one, and an
    /// `arm64` entry without one is `v8` (containerd's matcher).
    pub fn accepts(&self, other: &ImagePlatform) -> bool {
        let variant_ok =
            self.variant.is_empty() || other.variant.is_empty() || self.variant == other.variant;
        self.os == other.os && self.architecture == other.architecture && variant_ok
    }

    /// The `platform` object of an index entry.
    pub fn to_entry_platform(&self) -> BTreeMap<String, serde_json::Value> {
        let mut map = BTreeMap::new();
        map.insert("architecture".to_string(), self.architecture.clone().into());
        map.insert("os".to_string(), self.os.clone().into());
        if !self.variant.is_empty() {
            map.insert("variant".to_string(), self.variant.clone().into());
        }
        map
    }
}

impl fmt::Display for ImagePlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// Whether `media_type` names an index or manifest list.
pub fn is_index_media_type(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == super::DOCKER_LIST
}

impl Store {
    /// Stores an OCI image index over already stored manifests, one per
    /// platform in the order given, and returns its descriptor. Does not tag.
    pub fn put_index(&self, entries: &[(Descriptor, ImagePlatform)]) -> Result<Descriptor> {
        self.put_annotated_index(entries, &BTreeMap::new())
    }

    /// [`Store::put_index`] with the index's own `annotations`.
    pub fn put_annotated_index(
        &self,
        entries: &[(Descriptor, ImagePlatform)],
        annotations: &BTreeMap<String, String>,
    ) -> Result<Descriptor> {
        let index = Index {
            schema_version: 2,
            media_type: Some(OCI_INDEX.to_string()),
            manifests: entries
                .iter()
                .map(|(desc, platform)| IndexEntry {
                    descriptor: desc.clone(),
                    platform: Some(platform.to_entry_platform()),
                })
                .collect(),
            annotations: annotations.clone(),
        };
        let bytes = serde_json::to_vec(&index).map_err(|source| Error::Json {
            path: "<image index>".into(),
            source,
        })?;
        let info = self.put_bytes(&bytes)?;
        Ok(Descriptor {
            media_type: OCI_INDEX.to_string(),
            digest: info.digest,
            size: info.size,
            annotations: BTreeMap::new(),
        })
    }

    /// Every blob of the attestation manifests `index` lists (each manifest,
    /// its config and its statements), or `None` when one is not in the
    /// store (an index pulled for some platforms, or pruned).
    pub fn attestation_blobs(&self, index: &Index) -> Result<Option<Vec<Descriptor>>> {
        let mut out = Vec::new();
        for entry in index.manifests.iter().filter(|e| e.is_attestation()) {
            let d = &entry.descriptor;
            if !self.exists(&d.digest)? {
                return Ok(None);
            }
            let bytes = self.read_bounded(&d.digest, crate::MAX_DOCUMENT_SIZE)?;
            let parts =
                super::attestation_parts(&bytes, &format!("attestation manifest {}", d.digest))?;
            for part in &parts {
                if !self.exists(&part.digest)? {
                    return Ok(None);
                }
            }
            out.push(d.clone());
            out.extend(parts);
        }
        Ok(Some(out))
    }

    /// The index `descriptor` points at, or `None` when it is a manifest.
    pub fn read_index(&self, descriptor: &Descriptor) -> Result<Option<Index>> {
        let what = format!("index {}", descriptor.digest);
        let bytes = self.read_bounded(&descriptor.digest, crate::MAX_DOCUMENT_SIZE)?;
        match parse_document(&bytes, Some(&descriptor.media_type), &what)? {
            Document::Index(index) => Ok(Some(index)),
            Document::Manifest(_) => Ok(None),
        }
    }

    /// The image entries of an index with their platforms (attestation
    /// manifests and entries without a platform left out).
    pub fn index_platforms(&self, index: &Index) -> Vec<(Descriptor, ImagePlatform)> {
        index
            .manifests
            .iter()
            .filter(|e| !e.is_attestation())
            .filter_map(|e| Some((e.descriptor.clone(), ImagePlatform::of_entry(e)?)))
            .collect()
    }

    /// The image for `platform` that `descriptor` names: the manifest itself
    /// (whatever platform it is for: callers check its config), or the
    /// matching entry of an index. An index without one is
    /// [`Error::PlatformNotFound`], listing the platforms it has.
    pub fn image_for_platform(
        &self,
        descriptor: &Descriptor,
        platform: &ImagePlatform,
    ) -> Result<Image> {
        let Some(index) = self.read_index(descriptor)? else {
            return self.read_image(descriptor);
        };
        let entries = self.index_platforms(&index);
        match entries.iter().find(|(_, p)| platform.accepts(p)) {
            Some((desc, _)) => self.read_image(desc),
            None => Err(Error::PlatformNotFound {
                index: descriptor.digest,
                platform: platform.to_string(),
                available: entries.iter().map(|(_, p)| p.to_string()).collect(),
            }),
        }
    }

    /// The image `reference` is tagged as, for `platform` (see
    /// [`Store::image_for_platform`]).
    pub fn tagged_image_for_platform(
        &self,
        reference: &crate::Reference,
        platform: &ImagePlatform,
    ) -> Result<Image> {
        self.image_for_platform(&self.resolve(reference)?, platform)
    }

    /// The index `reference` is tagged as, when it is pushed and saved as
    /// an index: it lists images for several platforms, or attestation
    /// manifests the store holds (as BuildKit writes them; the index then
    /// keeps its bytes and digest). `None` for an image, and for an index of
    /// one image whose attestations were left behind (pushed and saved as
    /// that image).
    pub fn multi_platform_index(&self, reference: &crate::Reference) -> Result<Option<Descriptor>> {
        let desc = self.resolve(reference)?;
        let Some(index) = self.read_index(&desc)? else {
            return Ok(None);
        };
        let attested = index.manifests.iter().any(|e| e.is_attestation())
            && self.attestation_blobs(&index)?.is_some();
        Ok((self.index_platforms(&index).len() > 1 || attested).then_some(desc))
    }

    /// Every image the index `descriptor` lists (see
    /// [`Store::index_platforms`]), in its order.
    pub fn index_images(&self, descriptor: &Descriptor) -> Result<Vec<Image>> {
        let index = self
            .read_index(descriptor)?
            .ok_or_else(|| Error::InvalidDocument {
                what: format!("index {}", descriptor.digest),
                reason: "it is an image manifest, not an index".into(),
            })?;
        self.index_platforms(&index)
            .iter()
            .map(|(d, _)| self.read_image(d))
            .collect()
    }

    /// `found` as `platform`'s image: the entry for it of the index its
    /// name points at, or the image itself when that is for `platform`;
    /// else [`Error::PlatformNotFound`] or [`Error::WrongPlatform`].
    pub fn found_for_platform(
        &self,
        mut found: crate::FoundImage,
        platform: &ImagePlatform,
    ) -> Result<crate::FoundImage> {
        if let Some(named) = &found.named {
            found.image = self.image_for_platform(&self.resolve(named)?, platform)?;
        }
        let config = &found.image.config;
        if config.os != platform.os || config.architecture != platform.architecture {
            return Err(Error::WrongPlatform {
                image: found.image.id(),
                platform: format!("{}/{}", config.os, config.architecture),
                wanted: platform.to_string(),
            });
        }
        Ok(found)
    }

    /// The entry of `index` shown when one image stands for the whole
    /// index: the host's, else the first image entry.
    pub(crate) fn default_entry(&self, index: &Index) -> Option<Descriptor> {
        let entries = self.index_platforms(index);
        let host = ImagePlatform::host();
        entries
            .iter()
            .find(|(_, p)| host.accepts(p))
            .or(entries.first())
            .map(|(d, _)| d.clone())
    }
}
