//! Platforms (`os/arch[/variant]`) and choosing a manifest from an index.

use std::fmt;

use rbk_store::image::{Index, IndexEntry};

use crate::{Error, Result};

/// A target platform, in OCI's vocabulary (`linux`, `amd64`, `arm64`, `v8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// The operating system, e.g. `linux`.
    pub os: String,
    /// The CPU architecture, e.g. `amd64`.
    pub architecture: String,
    /// The variant, e.g. `v7` for `arm`.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this program runs on.
    pub fn host() -> Platform {
        // `consts::ARCH` is the compile-time target, not an environment read.
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_string),
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(input: &str) -> Result<Platform> {
        let parts: Vec<&str> = input.split('/').collect();
        let bad = || Error::InvalidPlatform {
            input: input.to_string(),
        };
        if parts.iter().any(|p| p.is_empty()) || !(2..=3).contains(&parts.len()) {
            return Err(bad());
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: normalise_arch(parts[1]).into(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
        })
    }

    /// Whether an index entry's platform is this one. An entry for `arm64`
    /// without a variant counts as `v8`, as containerd's matcher has it.
    pub(crate) fn matches(&self, entry: &IndexEntry) -> bool {
        let Some(p) = &entry.platform else {
            return false;
        };
        let field = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("");
        if field("os") != self.os || normalise_arch(field("architecture")) != self.architecture {
            return false;
        }
        match (&self.variant, field("variant")) {
            (None, _) => true,
            (Some(want), have) => {
                want == have || (self.architecture == "arm64" && want == "v8" && have.is_empty())
            }
        }
    }
}

impl Platform {
    /// Checks an image config's `os`/`architecture`/`variant` against this
    /// platform. Fields the config leaves out are not held against it (a
    /// config without any is not an image's, e.g. a build cache's); a
    /// variant counts only when both sides name one.
    pub(crate) fn check_config(&self, config: &[u8], reference: &str) -> Result<()> {
        let value: serde_json::Value =
            serde_json::from_slice(config).map_err(|e| Error::Invalid {
                what: format!("{reference}: image config"),
                reason: format!("not JSON: {e}"),
            })?;
        let field = |k: &str| value.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let (os, arch, variant) = (
            field("os"),
            normalise_arch(field("architecture")),
            field("variant"),
        );
        let os_ok = os.is_empty() || os == self.os;
        let arch_ok = arch.is_empty() || arch == self.architecture;
        let variant_ok = match &self.variant {
            Some(want) if !variant.is_empty() => want == variant,
            _ => true,
        };
        if os_ok && arch_ok && variant_ok {
            return Ok(());
        }
        let mut actual = format!("{os}/{arch}");
        if !variant.is_empty() {
            actual = format!("{actual}/{variant}");
        }
        Err(Error::PlatformMismatch {
            reference: reference.to_string(),
            platform: self.to_string(),
            actual,
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn normalise_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" => "386",
        other => other,
    }
}

pub(crate) fn describe(entry: &IndexEntry) -> String {
    let Some(p) = &entry.platform else {
        return "unknown".into();
    };
    let field = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let mut s = format!("{}/{}", field("os"), field("architecture"));
    if !field("variant").is_empty() {
        s = format!("{s}/{}", field("variant"));
    }
    s
}

/// The first entry of `index` for `platform` (deterministic: index order).
pub(crate) fn select<'a>(
    index: &'a Index,
    platform: &Platform,
    reference: &str,
) -> Result<&'a IndexEntry> {
    index
        .manifests
        .iter()
        .find(|e| platform.matches(e))
        .ok_or_else(|| {
            // Each platform once, in index order, and only the first few: an
            // index may hold 100k entries (security.md D7).
            const SHOWN: usize = 16;
            let mut seen = std::collections::HashSet::new();
            let mut available: Vec<String> = index
                .manifests
                .iter()
                .map(describe)
                .filter(|d| d != "unknown/unknown" && seen.insert(d.clone()))
                .collect();
            let more = available.len().saturating_sub(SHOWN);
            available.truncate(SHOWN);
            if more > 0 {
                available.push(format!("and {more} more"));
            }
            Error::PlatformNotFound {
                reference: reference.to_string(),
                platform: platform.to_string(),
                available: if available.is_empty() {
                    "no platforms".into()
                } else {
                    available.join(", ")
                },
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(platforms: &[&str]) -> Index {
        let manifests = platforms
            .iter()
            .map(|p| {
                let parts: Vec<&str> = p.split('/').collect();
                let mut map = std::collections::BTreeMap::new();
                map.insert("os".to_string(), parts[0].into());
                map.insert("architecture".to_string(), parts[1].into());
                if let Some(v) = parts.get(2) {
                    map.insert("variant".to_string(), (*v).into());
                }
                IndexEntry {
                    descriptor: rbk_store::Descriptor {
                        media_type: rbk_store::image::OCI_MANIFEST.into(),
                        digest: rbk_store::Digest::sha256_of(p.as_bytes()),
                        size: 1,
                        annotations: Default::default(),
                    },
                    platform: Some(map),
                }
            })
            .collect();
        Index {
            schema_version: 2,
            media_type: None,
            manifests,
            annotations: Default::default(),
        }
    }

    /// D7 of security.md: a 100k-entry index with duplicate platforms. The
    /// first entry of a platform wins, every time; a miss names each
    /// platform once, in a bounded message.
    #[test]
    fn d7_a_100k_entry_index_with_duplicate_platforms_is_bounded_and_deterministic() {
        let names = ["linux/amd64", "linux/arm64", "linux/ppc64le"];
        let mut platforms: Vec<String> = (0..100_000).map(|i| names[i % 3].to_string()).collect();
        platforms.extend((0..100).map(|i| format!("linux/riscv64/v{i}")));
        let platforms: Vec<&str> = platforms.iter().map(String::as_str).collect();
        let mut idx = index(&platforms);
        for (i, entry) in idx.manifests.iter_mut().enumerate() {
            entry.descriptor.digest = rbk_store::Digest::sha256_of(i.to_string().as_bytes());
        }
        let arm = Platform::parse("linux/arm64").unwrap();
        for _ in 0..3 {
            assert_eq!(
                select(&idx, &arm, "x").unwrap().descriptor.digest,
                idx.manifests[1].descriptor.digest
            );
        }
        let err = select(&idx, &Platform::parse("linux/s390x").unwrap(), "x")
            .unwrap_err()
            .to_string();
        assert!(err.len() < 1024, "{} bytes: {err}", err.len());
        assert_eq!(err.matches("linux/arm64").count(), 1, "{err}");
        assert!(err.contains("linux/ppc64le, linux/riscv64/v0"), "{err}");
        assert!(err.ends_with("linux/riscv64/v12, and 87 more)"), "{err}");
    }

    #[test]
    fn selects_and_explains() {
        let idx = index(&["linux/amd64", "linux/arm/v7", "linux/arm64"]);
        let p = Platform::parse("linux/arm/v7").unwrap();
        assert_eq!(
            select(&idx, &p, "x").unwrap().descriptor.digest,
            idx.manifests[1].descriptor.digest
        );
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert!(select(&idx, &p, "x").is_ok());
        let p = Platform::parse("linux/s390x").unwrap();
        let err = select(&idx, &p, "x").unwrap_err().to_string();
        assert!(
            err.contains("linux/s390x") && err.contains("linux/arm/v7"),
            "{err}"
        );
        assert!(Platform::parse("linux").is_err());
        let amd = Platform::parse("linux/amd64").unwrap();
        let cfg = |os: &str, arch: &str| format!(r#"{{"os":"{os}","architecture":"{arch}"}}"#);
        assert!(amd
            .check_config(cfg("linux", "amd64").as_bytes(), "x")
            .is_ok());
        assert!(amd
            .check_config(cfg("linux", "x86_64").as_bytes(), "x")
            .is_ok());
        assert!(amd.check_config(b"{}", "x").is_ok());
        let err = amd
            .check_config(cfg("linux", "arm64").as_bytes(), "x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("linux/arm64") && err.contains("linux/amd64"),
            "{err}"
        );
        assert!(Platform::parse("linux//x").is_err());
    }
}
