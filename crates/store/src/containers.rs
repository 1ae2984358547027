//! Containers made outside builds (`rbk run`): one directory each under
//! `containers/<id>/` with the container's own writable layer (`upper/`,
//! `work/`) and its record (`container.json`), changed under
//! `containers/containers.lock`. Names are unique: a second container asking
//! for a taken name fails.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::fsutil::{read_small, write_atomic};
use crate::{Digest, Error, FileLock, Result, Store};

/// The most a container record may weigh when read back.
const MAX_RECORD: u64 = 1 << 20;

/// What rbk knows about a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64 hex characters.
    pub id: String,
    /// The name (`--name`, or one rbk made up).
    pub name: String,
    /// The image it was created from (its id), and the name it was asked by.
    pub image: Digest,
    /// The name or id the user gave for the image.
    pub image_name: String,
    /// The process: entrypoint and command, resolved.
    pub args: Vec<String>,
    /// `KEY=VALUE` environment.
    pub env: Vec<String>,
    /// The working directory.
    pub cwd: String,
    /// `user[:group]`, empty for root.
    pub user: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Exit code once it ran; `None` while created or running.
    pub exit_code: Option<i32>,
    /// When it exited, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}

impl Store {
    fn containers_dir(&self) -> PathBuf {
        self.root().join("containers")
    }

    /// The directory of container `id` (its `upper/`, `work/`, …).
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    fn containers_lock(&self) -> Result<FileLock> {
        let dir = self.containers_dir();
        std::fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
        FileLock::exclusive(&dir.join("containers.lock"))
    }

    /// Records a new container; fails when its name is taken.
    pub fn create_container(&self, record: &ContainerRecord) -> Result<PathBuf> {
        let _lock = self.containers_lock()?;
        if self
            .containers()?
            .iter()
            .any(|c| c.name == record.name || c.id == record.id)
        {
            return Err(Error::ContainerConflict(format!(
                "the container name {:?} is already in use",
                record.name
            )));
        }
        let dir = self.container_dir(&record.id);
        for sub in ["", "upper", "work", "merged", "bundle"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(Error::io("creating", &path))?;
        }
        self.write_container(record)?;
        Ok(dir)
    }

    /// Replaces the record of `record.id`.
    pub fn update_container(&self, record: &ContainerRecord) -> Result<()> {
        let _lock = self.containers_lock()?;
        self.write_container(record)
    }

    fn write_container(&self, record: &ContainerRecord) -> Result<()> {
        let bytes = serde_json::to_vec(record).map_err(|source| Error::Json {
            path: "container.json".into(),
            source,
        })?;
        write_atomic(&self.container_dir(&record.id), "container.json", &bytes)
    }

    /// Every container, oldest first.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>> {
        let dir = self.containers_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("listing", &dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(Error::io("listing", &dir))?
                .path()
                .join("container.json");
            let Ok(bytes) = read_small(&path, MAX_RECORD) else {
                continue; // being created or removed
            };
            let record: ContainerRecord =
                serde_json::from_slice(&bytes).map_err(|source| Error::Json { path, source })?;
            out.push(record);
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// The container named `name`, or whose id starts with it.
    pub fn find_container(&self, name: &str) -> Result<ContainerRecord> {
        let all = self.containers()?;
        if let Some(c) = all.iter().find(|c| c.name == name) {
            return Ok(c.clone());
        }
        let matches: Vec<&ContainerRecord> = all
            .iter()
            .filter(|c| !name.is_empty() && c.id.starts_with(name))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::ContainerNotFound(name.to_string())),
            _ => Err(Error::ContainerConflict(format!(
                "container name or id {name:?} is ambiguous"
            ))),
        }
    }

    /// Removes container `id` (its directory goes to the trash).
    pub fn remove_container(&self, id: &str) -> Result<()> {
        let _lock = self.containers_lock()?;
        let dir = self.container_dir(id);
        if dir.exists() {
            self.move_to_trash(&dir)?;
        }
        Ok(())
    }
}
