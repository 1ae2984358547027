//! Whether this machine can run binaries of a foreign platform: a
//! binfmt_misc handler (qemu-user) registered for its architecture.

use std::path::Path;

use anyhow::bail;
use rbk_graph::Platform;

/// Where the kernel lists registered binfmt_misc handlers.
const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// Fails unless RUN steps for `platform` can execute here: the host's own
/// architecture always can; another needs an enabled qemu handler.
pub(crate) fn check_can_run(platform: &Platform, host: &Platform) -> anyhow::Result<()> {
    if platform.architecture == host.architecture {
        return Ok(());
    }
    let qemu = qemu_name(&platform.architecture);
    let platform = describe(platform);
    let Some(qemu) = qemu else {
        bail!("cannot run RUN steps for {platform}: no emulator is known for that architecture");
    };
    let entry = Path::new(BINFMT_MISC).join(format!("qemu-{qemu}"));
    match std::fs::read_to_string(&entry) {
        Ok(text) if text.lines().next() == Some("enabled") => Ok(()),
        _ => bail!(
            "cannot run RUN steps for {platform}: no emulator is registered for it ({} is \
             missing or disabled; install qemu-user-static and binfmt-support, and mount \
             binfmt_misc on {BINFMT_MISC})",
            entry.display()
        ),
    }
}

/// `os/arch[/variant]`.
pub(crate) fn describe(platform: &Platform) -> String {
    let mut text = format!("{}/{}", platform.os, platform.architecture);
    if !platform.variant.is_empty() {
        text = format!("{text}/{}", platform.variant);
    }
    text
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
