//! Containers made outside builds (`rbk run`): one directory each under
//! `containers/<id>/` with the container's own writable layer (`upper/`,
//! `work/`) and its record (`container.json`), changed under
//! `containers/containers.lock`. Names are unique: a second container asking
//! for a taken name fails.
//!
//! # States
//!
//! A record is `created` until a process runs it, `running` while its
//! `started` time is set and it has no exit code, and `exited` once the
//! process that ran it (the per-container monitor of `run -d`/`start`, or
//! the `rbk run` in the foreground) recorded the exit code. That process
//! is named in the record (`monitor_pid`, its start time and the boot id),
//! so a later command can tell a live one from one that was killed and
//! repair the record (`exec::reap_containers`).

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
    /// The image's entrypoint as used (for `inspect`'s `Config`).
    #[serde(default)]
    pub entrypoint: Vec<String>,
    /// The command as used (for `inspect`'s `Config`).
    #[serde(default)]
    pub cmd: Vec<String>,
    /// The hostname.
    #[serde(default)]
    pub hostname: String,
    /// `none` or `host`.
    #[serde(default)]
    pub network: String,
    /// The signal `stop` sends first (`SIGTERM` unless the image says).
    #[serde(default)]
    pub stop_signal: String,
    /// The OCI runtime binary it was created with (`None`: `runc`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// `--rm`: removed once it exits.
    #[serde(default)]
    pub auto_remove: bool,
    /// `-t`: the process has a terminal.
    #[serde(default)]
    pub tty: bool,
    /// `-i`: its stdin stays open (detached: held open by its monitor).
    #[serde(default)]
    pub open_stdin: bool,
    /// When its process last started, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// The container's init process (host pid) while it runs, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The process responsible for it while it starts or runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Owner>,
    /// Why it failed to start, or why its exit code is unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `-v`/`--mount`: binds, tmpfs and named volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<ContainerMount>,
    /// `--read-only`: the root file system is mounted read-only.
    #[serde(default)]
    pub read_only: bool,
    /// `--privileged`: every capability, no masked paths, every device.
    #[serde(default)]
    pub privileged: bool,
    /// `--cap-add` (`CAP_`-prefixed names, or `ALL`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// `--cap-drop` (`CAP_`-prefixed names, or `ALL`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// `--init`: the host's init binary, run as the container's pid 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
    /// `rbk debug step`: a failed build step's changes (an overlay upper
    /// dir), stacked on the layers under the container's own upper dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_upper: Option<String>,
}

/// A mount of a container (`-v`, `--mount`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMount {
    /// `bind`, `volume` or `tmpfs`.
    pub kind: String,
    /// The host path (bind) or the volume's name; empty for tmpfs.
    pub source: String,
    /// Where it appears in the container (absolute).
    pub target: String,
    /// Mounted read-only.
    pub readonly: bool,
    /// A tmpfs's size limit in bytes (0: the kernel's default).
    #[serde(default)]
    pub size: u64,
}

/// A process identified beyond its pid: its start time (clock ticks after
/// boot, `/proc/PID/stat` field 22) and the boot it ran in, so a reused pid
/// or a rebooted machine is not mistaken for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The pid.
    pub pid: i32,
    /// Its start time in clock ticks since boot.
    pub start_time: u64,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
}

/// Where a container is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Made, never run (or its start failed).
    Created,
    /// Its process runs.
    Running,
    /// Its process exited.
    Exited,
}

impl ContainerState {
    /// Docker's word for it (`State.Status`).
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Exited => "exited",
        }
    }
}

impl ContainerRecord {
    /// Its state, from the times and the exit code.
    pub fn state(&self) -> ContainerState {
        match (&self.exit_code, &self.started) {
            (Some(_), _) => ContainerState::Exited,
            (None, Some(_)) => ContainerState::Running,
            (None, None) => ContainerState::Created,
        }
    }
}

impl Store {
    fn containers_dir(&self) -> PathBuf {
        self.root().join("containers")
    }

    /// The directory of container `id` (its `upper/`, `work/`, …).
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    /// The lock every change of a record is made under. Hold it across a
    /// read-check-write ([`Store::write_container_locked`]); the other
    /// methods here take it themselves.
    pub fn containers_lock(&self) -> Result<FileLock> {
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
                "Conflict. The container name \"/{}\" is already in use. You have to \
                 remove (or rename) that container to be able to reuse that name.",
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

    /// Changes the record of `id` with `change` under the lock; returns
    /// the record as written.
    pub fn modify_container(
        &self,
        id: &str,
        change: impl FnOnce(&mut ContainerRecord),
    ) -> Result<ContainerRecord> {
        let _lock = self.containers_lock()?;
        let mut record = self.read_container(id)?;
        change(&mut record);
        self.write_container(&record)?;
        Ok(record)
    }

    /// Replaces a record while the caller holds [`Store::containers_lock`].
    pub fn write_container_locked(&self, _lock: &FileLock, record: &ContainerRecord) -> Result<()> {
        self.write_container(record)
    }

    /// The record of container `id` (a full id).
    pub fn read_container(&self, id: &str) -> Result<ContainerRecord> {
        let path = self.container_dir(id).join("container.json");
        let bytes =
            read_small(&path, MAX_RECORD).map_err(|_| Error::ContainerNotFound(id.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Json { path, source })
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

    /// The bytes container `id`'s own layer (its upper dir) takes on disk.
    pub fn container_size(&self, id: &str) -> u64 {
        crate::gc::disk_usage(&self.container_dir(id).join("upper"))
    }

    /// The data directory of named volume `name` (`volumes/<name>/_data`,
    /// as docker lays it out), created if missing. Names are docker's:
    /// `[A-Za-z0-9][A-Za-z0-9_.-]*`.
    pub fn volume_dir(&self, name: &str) -> Result<PathBuf> {
        let valid = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid {
            return Err(Error::ContainerConflict(format!(
                "{name:?} includes invalid characters for a local volume name, only \
                 \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
            )));
        }
        let dir = self.root().join("volumes").join(name).join("_data");
        std::fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
        Ok(dir)
    }

    /// The names of every named volume, sorted.
    pub fn volumes(&self) -> Result<Vec<String>> {
        let dir = self.root().join("volumes");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("listing", &dir)(e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(Error::io("listing", &dir))?;
            if entry.path().join("_data").is_dir() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The bytes named volume `name` takes on disk.
    pub fn volume_size(&self, name: &str) -> u64 {
        crate::gc::disk_usage(&self.root().join("volumes").join(name))
    }

    /// Removes named volume `name` (its directory goes to the trash);
    /// an error when there is none.
    pub fn remove_volume(&self, name: &str) -> Result<()> {
        if !self.volumes()?.iter().any(|v| v == name) {
            return Err(Error::ContainerConflict(format!("no such volume: {name}")));
        }
        self.move_to_trash(&self.root().join("volumes").join(name))?;
        Ok(())
    }

    /// Removes container `id` (its directory goes to the trash).
    pub fn remove_container(&self, id: &str) -> Result<()> {
        let lock = self.containers_lock()?;
        self.remove_container_locked(&lock, id)
    }

    /// [`Store::remove_container`] while the caller holds
    /// [`Store::containers_lock`].
    pub fn remove_container_locked(&self, _lock: &FileLock, id: &str) -> Result<()> {
        let dir = self.container_dir(id);
        if dir.exists() {
            self.move_to_trash(&dir)?;
        }
        Ok(())
    }
}
