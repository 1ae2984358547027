//! Image references and platforms, normalised as Docker does
//! (`alpine` → `docker.io/library/alpine:latest`, `linux/arm/v7`).

use rbk_graph::Platform;

/// Normalises an image reference, with the error texts of Docker's
/// `distribution/reference`.
pub(crate) fn normalize_reference(s: &str) -> Result<String, String> {
    const INVALID: &str = "invalid reference format";
    if s.is_empty() || s.len() > 4096 {
        return Err(INVALID.into());
    }
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    let slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[slash..].rfind(':') {
        Some(i) => (&name_tag[..slash + i], Some(&name_tag[slash + i + 1..])),
        None => (name_tag, None),
    };
    if !digest.is_none_or(valid_digest) || !tag.is_none_or(valid_tag) {
        return Err(INVALID.into());
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let has_domain = parts.len() > 1
        && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost");
    let domain = if has_domain {
        parts.remove(0)
    } else {
        "docker.io"
    };
    if has_domain && !valid_domain(domain) {
        return Err(INVALID.into());
    }
    for part in &parts {
        if part.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("{INVALID}: repository name must be lowercase"));
        }
        if !valid_component(part) {
            return Err(INVALID.into());
        }
    }
    let mut path = parts.join("/");
    if domain == "docker.io" && parts.len() == 1 {
        path = format!("library/{path}");
    }
    let mut out = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(t), _) => out.push_str(&format!(":{t}")),
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(d) = digest {
        out.push_str(&format!("@{d}"));
    }
    Ok(out)
}

fn valid_digest(d: &str) -> bool {
    d.split_once(':').is_some_and(|(alg, hex)| {
        alg == "sha256"
            && hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn valid_tag(t: &str) -> bool {
    let mut chars = t.chars();
    t.len() <= 128
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn valid_domain(d: &str) -> bool {
    let host = d.rsplit_once(':').map_or(d, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) && !port.is_empty() {
            h
        } else {
            ""
        }
    });
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_lowercase() || b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// Normalises an image reference as Docker does (`alpine` →
/// `docker.io/library/alpine:latest`); the error is Docker's text, which
/// the caller wraps naming where the reference came from (see the crate
/// docs on `Result<_, String>`).
pub fn normalize_image_reference(s: &str) -> Result<String, String> {
    normalize_reference(s)
}

/// Formats a platform as `os/arch[/variant]`.
pub fn format_platform_string(p: &Platform) -> String {
    format_platform(p)
}

/// Parses `os/arch[/variant]`, or a bare architecture or OS.
pub(crate) fn parse_platform(s: &str, default: &Platform) -> Result<Platform, String> {
    let err = |why: &str| format!("failed to parse platform {s}: {why}");
    let parts: Vec<String> = s
        .split('/')
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    if parts.iter().any(String::is_empty) || parts.len() > 3 {
        return Err(err("invalid platform specifier"));
    }
    let known_os = [
        "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris",
    ];
    let (os, arch, variant) = match parts.as_slice() {
        [one] if known_os.contains(&one.as_str()) => (
            one.clone(),
            default.architecture.clone(),
            default.variant.clone(),
        ),
        [one] => ("linux".to_string(), one.clone(), String::new()),
        [os, arch] => (os.clone(), arch.clone(), String::new()),
        [os, arch, variant] => (os.clone(), arch.clone(), variant.clone()),
        _ => return Err(err("invalid platform specifier")),
    };
    if !known_os.contains(&os.as_str()) {
        return Err(err(&format!(
            "unknown operating system or architecture: {os}"
        )));
    }
    let (arch, variant) = match (arch.as_str(), variant.as_str()) {
        ("x86_64" | "x86-64", v) => ("amd64".to_string(), v.to_string()),
        ("aarch64", v) => ("arm64".to_string(), v.to_string()),
        ("armhf", "") => ("arm".to_string(), "v7".to_string()),
        ("armel", "") => ("arm".to_string(), "v6".to_string()),
        ("arm64", "v8") => ("arm64".to_string(), String::new()),
        (a, v) => (a.to_string(), v.to_string()),
    };
    Ok(Platform {
        os,
        architecture: arch,
        variant,
    })
}

/// `os/arch[/variant]`.
pub(crate) fn format_platform(p: &Platform) -> String {
    p.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalise_like_docker() {
        let n = |s| normalize_reference(s);
        assert_eq!(n("alpine").unwrap(), "docker.io/library/alpine:latest");
        assert_eq!(n("busybox:1.36").unwrap(), "docker.io/library/busybox:1.36");
        assert_eq!(n("me/app").unwrap(), "docker.io/me/app:latest");
        assert_eq!(n("localhost:5000/a/b:t").unwrap(), "localhost:5000/a/b:t");
        let d = format!("a@sha256:{}", "0".repeat(64));
        assert_eq!(
            n(&d).unwrap(),
            format!("docker.io/library/a@sha256:{}", "0".repeat(64))
        );
        assert_eq!(
            n("Alpine").unwrap_err(),
            "invalid reference format: repository name must be lowercase"
        );
        assert_eq!(n("a b").unwrap_err(), "invalid reference format");
        assert_eq!(n("a:").unwrap_err(), "invalid reference format");
        assert_eq!(n("a@sha256:xyz").unwrap_err(), "invalid reference format");
    }

    #[test]
    fn platforms() {
        let def = Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: String::new(),
        };
        let p = parse_platform("linux/arm/v7", &def).unwrap();
        assert_eq!(format_platform(&p), "linux/arm/v7");
        assert_eq!(
            format_platform(&parse_platform("arm64", &def).unwrap()),
            "linux/arm64"
        );
        assert_eq!(
            format_platform(&parse_platform("linux/aarch64", &def).unwrap()),
            "linux/arm64"
        );
        assert!(parse_platform("linux//x", &def).is_err());
        assert!(parse_platform("plan9/amd64", &def).is_err());
    }
}
