//! `rbk cp`: files between a container and the host, with docker's rules
//! for trailing `/`, `DIR/.` and `-` (a tar on stdin or stdout). The paths
//! are resolved and the files written by `rbk_exec` (`locate`, `copy`),
//! confined to the container's root.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Context};
use rbk_exec::{CopyOptions, CopyRoot};
use rbk_store::{ContainerRecord, Store};

use crate::args::CpArgs;
use crate::runtime::{open_containers, runc_for};
use crate::settings::GlobalSettings;

/// One side of a copy.
enum Side {
    /// `-`: a tar stream.
    Stream,
    /// A host path, made absolute.
    Host(String),
    /// `CONTAINER:PATH`.
    Container(String, String),
}

/// docker's split: `NAME:PATH` is a container path unless the argument is
/// an absolute path or starts with `.` (so `./a:b` is a host file).
fn side(arg: &str) -> anyhow::Result<Side> {
    if arg == "-" {
        return Ok(Side::Stream);
    }
    if !arg.starts_with('/') && !arg.starts_with('.') {
        if let Some((name, path)) = arg.split_once(':') {
            if !name.is_empty() {
                let path = if path.is_empty() { "/" } else { path };
                return Ok(Side::Container(name.to_string(), path.to_string()));
            }
        }
    }
    if arg.is_empty() {
        bail!("empty path");
    }
    let absolute = std::path::absolute(arg).with_context(|| format!("resolving {arg}"))?;
    let mut text = absolute.to_string_lossy().into_owned();
    // `absolute` drops a trailing `/` or `/.`, which docker's rules need.
    if arg.ends_with("/.") && !text.ends_with("/.") {
        text.push_str("/.");
    } else if arg.ends_with('/') && !text.ends_with('/') {
        text.push('/');
    }
    Ok(Side::Host(text))
}

/// The container `name`'s file system.
fn container_root(
    settings: &GlobalSettings,
    store: &Store,
    name: &str,
    write: bool,
) -> anyhow::Result<(ContainerRecord, CopyRoot)> {
    let c = store.find_container(name)?;
    let image = store
        .find_image(&c.image.to_string())
        .with_context(|| format!("the image of container {} is gone", c.name))?
        .image;
    let runc = runc_for(settings, &c)?;
    let root = CopyRoot::container(store, &runc, &image.layers(), &c, write)?;
    Ok((c, root))
}

#[allow(clippy::print_stderr)] // the CLI reports here
pub(crate) fn cp(settings: &GlobalSettings, args: CpArgs) -> anyhow::Result<ExitCode> {
    let (src, dest) = (side(&args.source)?, side(&args.destination)?);
    let store = open_containers(settings)?;
    let mut options = CopyOptions {
        archive: args.archive,
        to_host: false,
    };
    let (copied, shown) = match (src, dest) {
        (Side::Container(name, path), Side::Stream) => {
            let (_, root) = container_root(settings, &store, &name, false)?;
            let located = rbk_exec::locate(root.fd(), &path, args.follow_link)
                .with_context(|| format!("in container {name}"))?;
            let out = std::io::BufWriter::new(std::io::stdout().lock());
            let copied = rbk_exec::write_source_tar(&located, &path, out)?;
            (copied, "STDOUT".to_string())
        }
        (Side::Container(name, path), Side::Host(dest)) => {
            let (_, root) = container_root(settings, &store, &name, false)?;
            let located = rbk_exec::locate(root.fd(), &path, args.follow_link)
                .with_context(|| format!("in container {name}"))?;
            options.to_host = true;
            let host = CopyRoot::host()?;
            let copied = rbk_exec::copy(located, &path, host.fd(), &dest, options)?;
            (copied, dest)
        }
        (Side::Stream, Side::Container(name, path)) => {
            let (_, root) = container_root(settings, &store, &name, true)?;
            let stdin = std::io::stdin().lock();
            let copied = rbk_exec::copy_tar_in(stdin, root.fd(), &path, options)
                .with_context(|| format!("in container {name}"))?;
            (copied, format!("{name}:{path}"))
        }
        (Side::Host(src), Side::Container(name, path)) => {
            let host = CopyRoot::host()?;
            let located = rbk_exec::locate(host.fd(), &src, args.follow_link)?;
            let (_, root) = container_root(settings, &store, &name, true)?;
            let copied = rbk_exec::copy(located, &src, root.fd(), &path, options)
                .with_context(|| format!("in container {name}"))?;
            (copied, format!("{name}:{path}"))
        }
        (Side::Container(..), Side::Container(..)) => {
            bail!("copying between containers is not supported")
        }
        (Side::Stream, Side::Stream)
        | (Side::Stream | Side::Host(_), Side::Stream | Side::Host(_)) => {
            bail!("must specify at least one container source")
        }
    };
    if !args.quiet && std::io::stderr().is_terminal() {
        eprintln!(
            "Successfully copied {} to {shown}",
            crate::humanize::size(copied.bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}
