//! `rbk build <git url>` and `rbk build <https url>`: a remote build
//! context, as `docker build` takes one. A git URL (`…/r.git#ref:dir`) is
//! checked out as `ADD <git url>` does; any other http(s) URL is downloaded
//! (cached and revalidated like `ADD <url>`) and read as `rbk build -` reads
//! stdin: a tar archive (any compression) unpacked by the store's confined
//! extractor, or a lone Dockerfile. `-f` names a path inside the remote
//! context; `-f -` reads the Dockerfile from stdin. The fetched context
//! lives under the store's `tmp/` until the build ends.

use std::path::PathBuf;

use anyhow::Context;
use rbk_store::{Store, WorkDir};

use super::stdin_context::{self, StdinContext};
use crate::args::BuildArgs;
use crate::settings::GlobalSettings;

/// Keeps a fetched context alive for the build (its drop trashes it).
pub(crate) struct RemoteContext {
    _git: Option<WorkDir>,
    _archive: Option<StdinContext>,
}

/// Fetches the context when `args` names a URL, and points `args` at it.
pub(crate) fn open(
    store: &Store,
    settings: &GlobalSettings,
    args: &mut BuildArgs,
) -> anyhow::Result<Option<RemoteContext>> {
    let Some(url) = args.frontend.context.to_str().map(str::to_string) else {
        return Ok(None);
    };
    let is_url = url.starts_with("http://") || url.starts_with("https://");
    if !is_url && !rbk_build::is_git_url(&url) {
        return Ok(None);
    }
    let stdin_dockerfile = args
        .frontend
        .file
        .as_ref()
        .is_some_and(|f| f.as_os_str() == "-");
    let file = args.frontend.file.clone().filter(|_| !stdin_dockerfile);
    if rbk_build::is_git_url(&url) {
        let secrets = super::secrets::parse_secrets(&args.secrets)?;
        let ssh = super::secrets::parse_ssh(&args.ssh)?;
        let (work, tree) = rbk_exec::checkout_git_url(
            store,
            &settings.remote,
            &secrets,
            ssh.get("default").cloned(),
            &url,
        )
        .with_context(|| format!("fetching the build context {url}"))?;
        if !stdin_dockerfile {
            let inside = match &file {
                Some(f) => stdin_context::inside(f)?,
                None => PathBuf::from("Dockerfile"),
            };
            args.frontend.file = Some(tree.join(inside));
        }
        args.frontend.context = tree;
        return Ok(Some(RemoteContext {
            _git: Some(work),
            _archive: None,
        }));
    }
    let body = rbk_exec::fetch_url(store, &settings.remote, &url)
        .with_context(|| format!("fetching the build context {url}"))?;
    let ctx = stdin_context::from_reader(store, body, file.as_deref())
        .with_context(|| format!("reading the build context {url}"))?;
    args.frontend.context = ctx.context.clone();
    if !stdin_dockerfile {
        args.frontend.file = Some(ctx.dockerfile.clone());
    }
    Ok(Some(RemoteContext {
        _git: None,
        _archive: Some(ctx),
    }))
}

/// Fetches and unpacks every `--build-context NAME=<https url>` (an
/// archive, like a remote build context), replacing it with the unpacked
/// directory; the returned guards keep the directories for the build.
pub(crate) fn open_named(
    store: &Store,
    settings: &GlobalSettings,
    contexts: &mut std::collections::BTreeMap<String, rbk_build::BuildContext>,
) -> anyhow::Result<Vec<StdinContext>> {
    let mut guards = Vec::new();
    for (name, context) in contexts.iter_mut() {
        let rbk_build::BuildContext::Url(url) = context else {
            continue;
        };
        let body = rbk_exec::fetch_url(store, &settings.remote, url)
            .with_context(|| format!("fetching build context {name:?} ({url})"))?;
        let ctx = stdin_context::from_reader(store, body, None)
            .with_context(|| format!("reading build context {name:?} ({url})"))?;
        *context = rbk_build::BuildContext::Local(ctx.context.clone());
        guards.push(ctx);
    }
    Ok(guards)
}
