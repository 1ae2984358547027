//! Platforms: whether this machine can run a foreign platform's binaries
//! (a binfmt_misc handler, qemu-user, registered for its architecture), and
//! whether a base image is for the platform a stage wants.

use std::path::Path;

use rbk_graph::Platform;
use rbk_store::image::ImageConfig;

use crate::{Error, Result};

/// Where the kernel lists registered binfmt_misc handlers.
pub const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// Fails unless RUN steps for `platform` can execute here: the host's own
/// architecture always can; another needs an enabled qemu handler in
/// `binfmt_dir` registered with the `F` flag (the kernel opens the
/// interpreter when it is registered, so it works inside a container's
/// root, where no qemu binary exists). Without one, a foreign build would
/// fail halfway with `exec format error`, or worse run host binaries
/// under a foreign label; so it fails before anything runs.
pub fn check_can_run(platform: &Platform, host: &Platform, binfmt_dir: &Path) -> Result<()> {
    if platform.architecture == host.architecture {
        return Ok(());
    }
    let shown = platform;
    let Some(qemu) = qemu_name(&platform.architecture) else {
        return Err(Error::Invalid(format!(
            "cannot run RUN steps for {shown}: no emulator is known for that architecture"
        )));
    };
    let entry = binfmt_dir.join(format!("qemu-{qemu}"));
    let text = std::fs::read_to_string(&entry).unwrap_or_default();
    let enabled = text.lines().next() == Some("enabled");
    let fixed = text
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .is_some_and(|f| f.contains('F'));
    let how = "install qemu-user-static and binfmt-support (apt-get install \
               qemu-user-static binfmt-support), mount binfmt_misc (mount -t binfmt_misc \
               binfmt_misc /proc/sys/fs/binfmt_misc) and enable the handler \
               (update-binfmts --enable";
    match (enabled, fixed) {
        (true, true) => Ok(()),
        (true, false) => Err(Error::Invalid(format!(
            "cannot run RUN steps for {shown}: the emulator registered in {} lacks the F \
             flag, so it cannot run inside a build container; register qemu-user-static's \
             handler instead: {how} qemu-{qemu})",
            entry.display()
        ))),
        _ => Err(Error::Invalid(format!(
            "cannot run RUN steps for {shown}: no emulator is registered for it ({} is \
             missing or disabled); {how} qemu-{qemu})",
            entry.display()
        ))),
    }
}

/// A base image must be for the stage's platform: running the host's
/// binaries under a foreign label would be a lie. Fields the config leaves
/// empty are not held against it, and variants count only when both sides
/// name one. The error is a sentence for the step's error message.
pub(crate) fn check_image_platform(
    config: &ImageConfig,
    platform: &Platform,
) -> std::result::Result<(), String> {
    let variant = config
        .extra
        .get("variant")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let os_ok = config.os.is_empty() || config.os == platform.os;
    let arch_ok = config.architecture.is_empty() || config.architecture == platform.architecture;
    let variant_ok =
        variant.is_empty() || platform.variant.is_empty() || variant == platform.variant;
    if os_ok && arch_ok && variant_ok {
        return Ok(());
    }
    let image = Platform {
        os: config.os.clone(),
        architecture: config.architecture.clone(),
        variant: variant.to_string(),
    };
    Err(format!(
        "the image is for {}, and there is no base for {}: pull the image for that \
         platform (rbk pull --platform …) or build for {}",
        &image, platform, &image,
    ))
}

/// qemu's name for a GOARCH architecture.
fn qemu_name(architecture: &str) -> Option<&'static str> {
    Some(match architecture {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "arm" => "arm",
        "386" => "i386",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64le" => "mips64el",
        "loong64" => "loongarch64",
        _ => return None,
    })
}

/// Operating systems and architectures rbk knows (GOOS/GOARCH names).
const KNOWN_OS: &[&str] = &["linux", "windows", "darwin", "freebsd"];
const KNOWN_ARCH: &[&str] = &[
    "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64", "mips64le", "loong64",
];

/// Parses `--platform`: a comma-separated list of `os/arch[/variant]`, where
/// `local` is the host's platform. Names are normalised as containerd does
/// (`aarch64` → `arm64`, `x86_64` → `amd64`, `armhf` → `arm/v7`); a platform
/// named twice is built once (buildx does the same) and reported in the
/// second value, as a warning to show.
pub fn parse_platforms(text: &str, host: &Platform) -> Result<(Vec<Platform>, Vec<String>)> {
    let mut out: Vec<Platform> = Vec::new();
    let mut warnings = Vec::new();
    for item in text.split(',').map(str::trim) {
        let platform = match item {
            "local" => host.clone(),
            _ => parse_one(item, text)?,
        };
        if out.contains(&platform) {
            warnings.push(format!(
                "--platform {text:?} names {platform} more than once; building it once"
            ));
            continue;
        }
        out.push(platform);
    }
    Ok((out, warnings))
}

fn parse_one(item: &str, whole: &str) -> Result<Platform> {
    let bad = |why: String| Error::Invalid(format!("invalid --platform {whole:?}: {why}"));
    let parts: Vec<&str> = item.split('/').collect();
    if item.is_empty() || parts.len() > 3 || parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad(format!(
            "{item:?} is not os/arch[/variant] (such as linux/amd64 or linux/arm64), or local"
        )));
    }
    let os = parts[0].to_ascii_lowercase();
    if !KNOWN_OS.contains(&os.as_str()) {
        return Err(bad(format!(
            "unknown operating system {os:?} (known: {})",
            KNOWN_OS.join(", ")
        )));
    }
    let given_variant = parts.get(2).map(|v| v.to_ascii_lowercase());
    let (architecture, variant) = normalise_arch(&parts[1].to_ascii_lowercase(), given_variant);
    if !KNOWN_ARCH.contains(&architecture.as_str()) {
        return Err(bad(format!(
            "unknown architecture {:?} (known: {})",
            parts[1],
            KNOWN_ARCH.join(", ")
        )));
    }
    Ok(Platform {
        os,
        architecture,
        variant,
    })
}

/// containerd's normalisation of an architecture and its variant.
fn normalise_arch(arch: &str, variant: Option<String>) -> (String, String) {
    let variant = variant.unwrap_or_default();
    let (arch, variant) = match (arch, variant.as_str()) {
        ("i386", _) => ("386", String::new()),
        ("x86_64" | "x86-64", _) => ("amd64", String::new()),
        ("aarch64" | "arm64", "8" | "v8") => ("arm64", String::new()),
        ("aarch64", _) => ("arm64", variant),
        ("armhf", _) => ("arm", "v7".to_string()),
        ("armel", _) => ("arm", "v6".to_string()),
        ("arm", "") => ("arm", "v7".to_string()),
        ("arm", "5" | "6" | "7" | "8") => ("arm", format!("v{variant}")),
        (other, _) => (other, variant),
    };
    (arch.to_string(), variant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: String::new(),
        }
    }

    #[test]
    fn platform_lists_parse_normalise_and_dedupe() {
        let (list, warnings) =
            parse_platforms("linux/amd64,linux/aarch64,local,linux/arm/v7", &host()).unwrap();
        let shown: Vec<String> = list.iter().map(|p| p.to_string()).collect();
        assert_eq!(shown, ["linux/amd64", "linux/arm64", "linux/arm/v7"]);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("linux/amd64 more than once"));
        let (list, _) = parse_platforms("linux/arm64/v8", &host()).unwrap();
        assert_eq!(list[0].to_string(), "linux/arm64");
    }

    #[test]
    fn bad_platforms_are_refused_by_name() {
        for (bad, says) in [
            ("linux", "not os/arch"),
            ("linux/", "not os/arch"),
            ("linux/amd64,", "not os/arch"),
            ("linux/amd64/v1/x", "not os/arch"),
            ("plan9/amd64", "unknown operating system \"plan9\""),
            ("linux/z80", "unknown architecture \"z80\""),
        ] {
            let err = parse_platforms(bad, &host()).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
