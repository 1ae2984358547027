//! `rbk load [-i FILE]`: images from a docker-archive or OCI archive.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context;

use crate::args::LoadArgs;

pub(crate) fn run(
    settings: &crate::settings::GlobalSettings,
    args: LoadArgs,
) -> anyhow::Result<ExitCode> {
    let store = settings.open_store()?;
    // Blobs are written before they are tagged: keep GC away until then.
    let _lease = store.lease()?;
    let (input, name): (Box<dyn Read>, String) = match &args.input {
        Some(path) => {
            let f =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            (
                Box::new(std::io::BufReader::new(f)),
                path.display().to_string(),
            )
        }
        None => (Box::new(std::io::stdin().lock()), "standard input".into()),
    };
    let images = rbk_store::archive::load_archive(&store, input)
        .with_context(|| format!("loading {name}; no image was tagged"))?;
    if !args.quiet {
        let mut out = std::io::stdout().lock();
        for img in &images {
            if img.references.is_empty() {
                writeln!(out, "Loaded image ID: {}", img.id)?;
            }
            for r in &img.references {
                writeln!(out, "Loaded image: {}", r.familiar())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
