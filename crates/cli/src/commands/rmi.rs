//! `rbk rmi [-f] IMAGE...`: untag, and delete images whose last reference goes.
//!
//! Like `docker rmi`: naming a reference removes that reference only
//! (`Untagged: app:1`); when it was the image's last one, the image is
//! deleted (`Deleted: sha256:<image id>`) together with every blob of it that
//! no other image and no build-cache record uses, each printed as a
//! `Deleted:` line. Naming an image by id (full or a prefix) removes all its
//! references; if they span more than one repository this needs `-f`
//! (Docker: "image is referenced in multiple repositories"). An untagged
//! image (a build without `-t`) is named by its id and deleted. Every name
//! is tried; the exit status is non-zero if any failed.
//!
//! An image a container (running or not) was made from is not deleted
//! without `-f`, as docker refuses. rbk records no parent/child relation
//! between images (`Parent` is always empty, as for BuildKit-built images),
//! so no image is refused as "needed by a child": an image whose layers
//! another image shares is deleted and the shared layers stay. Deletion
//! waits for running builds and loads (the GC lock), so none loses a base
//! layer it is using; the freed space is released before `rmi` exits.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;
use rbk_store::{Reference, Store};

use crate::args::RmiArgs;

pub(crate) fn run(
    settings: &crate::settings::GlobalSettings,
    args: RmiArgs,
) -> anyhow::Result<ExitCode> {
    let store = settings.open_store()?;
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for name in &args.images {
        if let Err(e) = remove(&store, name, args.force, &mut out) {
            crate::render::error(&e);
            failed = true;
        }
    }
    crate::trash::empty(&store, crate::trash::COMMAND_BUDGET)?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn remove(store: &Store, name: &str, force: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let found = crate::lookup::find(store, name)?;
    let untagged = found.untagged && found.named.is_none();
    // The image goes with its last name, or when named by id: not while a
    // container uses it, unless forced (docker's rule).
    let last = found.named.is_none() || found.references.len() <= 1;
    let id = found.image.id();
    if last && !force {
        if let Some(c) = store.containers()?.iter().find(|c| c.image == id) {
            bail!(
                "conflict: unable to remove repository reference {name:?} (must force) - \
                 container {} is using its referenced image {}",
                &c.id[..12],
                id.short()
            );
        }
    }
    let targets = match found.named {
        Some(reference) => vec![reference],
        None => {
            let repositories: BTreeSet<String> =
                found.references.iter().map(Reference::name).collect();
            if repositories.len() > 1 && !force {
                bail!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    found.image.id().short()
                );
            }
            found.references
        }
    };
    for reference in targets {
        let removal = store.remove_reference(&reference)?;
        writeln!(out, "Untagged: {}", reference.familiar())?;
        report(&removal, out)?;
    }
    if untagged {
        report(&store.remove_untagged(&found.image.id())?, out)?;
    }
    Ok(())
}

fn report(removal: &rbk_store::Removal, out: &mut impl Write) -> std::io::Result<()> {
    if removal.deleted {
        writeln!(out, "Deleted: {}", removal.id)?;
        for blob in removal.blobs.iter().filter(|b| b.digest != removal.id) {
            writeln!(out, "Deleted: {}", blob.digest)?;
        }
    }
    Ok(())
}
