//! `rbk import TARBALL NAME[:TAG]`: a rootfs tarball becomes a one-layer image.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use rbk_store::archive::{import_rootfs, rootfs_config};
use rbk_store::image::ContainerConfig;
use rbk_store::Reference;

use crate::args::ImportArgs;

pub(crate) fn run(
    settings: &crate::settings::GlobalSettings,
    args: ImportArgs,
) -> anyhow::Result<ExitCode> {
    let reference: Reference = args.reference.parse()?;
    let mut container = ContainerConfig::default();
    for change in &args.changes {
        rbk_build::apply_change(&mut container, change)?;
    }
    let store = settings.open_store()?;
    // Blobs are written before they are tagged: keep GC away until then.
    let _lease = store.lease()?;
    let input: Box<dyn Read> = if args.tarball.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(&args.tarball)
            .with_context(|| format!("opening {}", args.tarball.display()))?;
        Box::new(f)
    };
    let layer = import_rootfs(&store, input)
        .with_context(|| format!("importing {}", args.tarball.display()))?;
    let mut config = rootfs_config(layer.diff_id, SystemTime::now(), args.message.as_deref());
    if container != ContainerConfig::default() {
        config.config = Some(container);
    }
    let manifest = store.put_image(&config, vec![layer.descriptor])?;
    store.tag(&reference, manifest.clone())?;
    let image = store.read_image(&manifest)?;
    writeln!(std::io::stdout(), "{}", image.id())?;
    Ok(ExitCode::SUCCESS)
}
