//! Platforms: whether this machine can run a foreign platform's binaries
//! (a binfmt_misc handler, qemu-user, registered for its architecture), and
//! whether a base image is for the platform a stage wants.

use std::path::Path;

use rbk_graph::Platform;
use rbk_store::image::ImageConfig;

use crate::{Error, Result};

/// Where the kernel lists registered binfmt_misc handlers.
const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// Fails unless RUN steps for `platform` can execute here: the host's own
/// architecture always can; another needs an enabled qemu handler.
pub fn check_can_run(platform: &Platform, host: &Platform) -> Result<()> {
    if platform.architecture == host.architecture {
        return Ok(());
    }
    let shown = platform;
    let Some(qemu) = qemu_name(&platform.architecture) else {
        return Err(Error::Invalid(format!(
            "cannot run RUN steps for {shown}: no emulator is known for that architecture"
        )));
    };
    let entry = Path::new(BINFMT_MISC).join(format!("qemu-{qemu}"));
    match std::fs::read_to_string(&entry) {
        Ok(text) if text.lines().next() == Some("enabled") => Ok(()),
        _ => Err(Error::Invalid(format!(
            "cannot run RUN steps for {shown}: no emulator is registered for it ({} is \
             missing or disabled; install qemu-user-static and binfmt-support, and mount \
             binfmt_misc on {BINFMT_MISC})",
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
