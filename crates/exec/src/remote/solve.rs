//! Remote sources as [`Solved`] filesystems: one layer each.

use std::fs::{self, File, FileTimes, Permissions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rbk_graph::ExecContext;
use rbk_store::Layer;

use super::git::{checkout, GitEnv, GitSource};
use super::http::fetch_http;
use super::HttpClient;
use crate::layer::{commit_layer, LayerOptions};
use crate::solve::{Solved, Solver};
use crate::{Error, Result};

/// The name a download gets when neither the URL nor the server names it.
const DEFAULT_NAME: &str = "download";

impl Solver<'_> {
    /// `ADD <url>`: the downloaded file, alone in a layer, as
    /// `/<filename>` (mode 0600, mtime from `Last-Modified`).
    pub(crate) fn solve_http(
        &self,
        url: &str,
        checksum: Option<&str>,
        filename: &str,
        ctx: Option<&ExecContext<'_>>,
    ) -> Result<Solved> {
        let client = self.http_client()?;
        let cache = self.store.root().join("remote/http");
        let label = super::redact(url);
        let mut progress = |done: u64, total: Option<u64>| {
            if let Some(ctx) = ctx {
                ctx.progress(&label, done, total);
            }
        };
        let download = fetch_http(client, &cache, url, checksum, &mut progress)?;
        let name = match filename {
            "" => download.disposition.as_deref().unwrap_or(DEFAULT_NAME),
            name => name,
        };
        check_name(name)?;
        let work = self.store.work_dir()?;
        let upper = work.upper();
        let dest = upper.join(name);
        fs::copy(&download.data, &dest).map_err(|e| Error::io("copying download to", &dest, e))?;
        let mtime = download.mtime.unwrap_or(0).max(0) as u64;
        set_meta(&dest, 0o600, mtime)?;
        let layer = self.commit_tree(&upper)?;
        Ok(Solved::from_layers(vec![layer]))
    }

    /// `ADD <git url>`: the checkout (see `remote::git`), as one layer.
    pub(crate) fn solve_git(&self, source: &GitSource<'_>) -> Result<Solved> {
        let work = self.store.work_dir()?;
        let home = work.path().join("home");
        fs::create_dir(&home).map_err(|e| Error::io("creating directory", &home, e))?;
        let env = GitEnv {
            settings: &self.options.remote,
            secrets: self
                .options
                .secrets
                .iter()
                .filter(|(id, _)| id.starts_with("GIT_AUTH_"))
                .map(|(id, s)| (id.clone(), s.bytes().to_vec()))
                .collect(),
            ssh_agent: self.options.ssh.get("default").cloned(),
            home,
        };
        let cache = self.store.root().join("remote/git");
        let upper = work.upper();
        fs::remove_dir(&upper).map_err(|e| Error::io("removing", &upper, e))?;
        checkout(&env, &cache, source, work.path(), &upper)?;
        let layer = self.commit_tree(&upper)?;
        Ok(Solved::from_layers(vec![layer]))
    }

    /// The HTTP client, made on first use.
    fn http_client(&self) -> Result<&HttpClient> {
        if let Some(client) = self.http.get() {
            return Ok(client);
        }
        let client = HttpClient::new(&self.options.remote)?;
        Ok(self.http.get_or_init(|| client))
    }

    /// Commits the tree at `upper` (in a work dir) as one layer.
    pub(crate) fn commit_tree(&self, upper: &Path) -> Result<Layer> {
        let options = LayerOptions {
            source_date_epoch: self.options.source_date_epoch,
        };
        match commit_layer(self.store, upper, &options)? {
            Some(layer) => Ok(layer),
            None => crate::snapshot::empty_layer(self.store),
        }
    }
}

/// A file name the op may use: one path component.
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(Error::Invalid(format!(
            "invalid file name {name:?} for a download"
        )));
    }
    Ok(())
}

pub(crate) fn set_meta(path: &Path, mode: u32, mtime: u64) -> Result<()> {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|e| Error::io("setting the mode of", path, e))?;
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(mtime);
    let file = File::options()
        .write(true)
        .open(path)
        .map_err(|e| Error::io("opening", path, e))?;
    file.set_times(FileTimes::new().set_accessed(time).set_modified(time))
        .map_err(|e| Error::io("setting the times of", path, e))
}

pub(crate) fn set_dir_meta(path: &Path, mode: u32, mtime: u64) -> Result<()> {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|e| Error::io("setting the mode of", path, e))?;
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(mtime);
    let dir = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    dir.set_times(FileTimes::new().set_accessed(time).set_modified(time))
        .map_err(|e| Error::io("setting the times of", path, e))
}
