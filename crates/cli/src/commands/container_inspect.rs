//! `rbk inspect CONTAINER`: docker's container object (`docker container
//! inspect`) for the fields rbk has. `State.Status` is `created`,
//! `running` or `exited`; a container whose owner was killed shows
//! `ExitCode` 255 and an `Error` saying its status is unknown. Paths
//! (`LogPath`, `GraphDriver.Data`, …) are the store's. `NetworkSettings`
//! is empty: rbk shares the host's network or gives none.

use rbk_store::{ContainerRecord, ContainerState, Store};
use serde_json::{json, Value};

/// The `docker container inspect` object of `c`.
pub(crate) fn document(store: &Store, c: &ContainerRecord) -> Value {
    let dir = store.container_dir(&c.id);
    let bundle = dir.join("bundle");
    let path = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
    let zero = "0001-01-01T00:00:00Z";
    let state = c.state();
    let image_config = store
        .find_image(&c.image.to_string())
        .ok()
        .and_then(|f| f.image.config.config);
    let labels = image_config
        .as_ref()
        .map(|cfg| json!(cfg.labels))
        .unwrap_or(json!({}));
    json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.args.first().cloned().unwrap_or_default(),
        "Args": c.args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": state.as_str(),
            "Running": state == ContainerState::Running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": c.pid.filter(|_| state == ContainerState::Running).unwrap_or(0),
            "ExitCode": c.exit_code.unwrap_or(0),
            "Error": c.error.clone().unwrap_or_default(),
            "StartedAt": c.started.as_deref().unwrap_or(zero),
            "FinishedAt": c.finished.as_deref().unwrap_or(zero),
        },
        "Image": c.image.to_string(),
        "ResolvConfPath": path(bundle.join("resolv.conf")),
        "HostnamePath": path(bundle.join("hostname")),
        "HostsPath": path(bundle.join("hosts")),
        "LogPath": path(dir.join("container.log")),
        "Name": format!("/{}", c.name),
        "RestartCount": 0,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "HostConfig": {
            "NetworkMode": c.network,
            "AutoRemove": c.auto_remove,
            "Runtime": c.runtime.as_deref().unwrap_or("runc"),
        },
        "GraphDriver": {
            "Data": {
                "MergedDir": path(dir.join("merged")),
                "UpperDir": path(dir.join("upper")),
                "WorkDir": path(dir.join("work")),
            },
            "Name": "overlay",
        },
        "Mounts": [],
        "Config": {
            "Hostname": c.hostname,
            "Domainname": "",
            "User": c.user,
            "AttachStdin": false,
            "AttachStdout": !c.tty,
            "AttachStderr": !c.tty,
            "Tty": c.tty,
            "OpenStdin": false,
            "StdinOnce": false,
            "Env": c.env,
            "Cmd": c.cmd,
            "Image": c.image_name,
            "WorkingDir": c.cwd,
            "Entrypoint": if c.entrypoint.is_empty() { Value::Null } else { json!(c.entrypoint) },
            "Labels": labels,
            "StopSignal": c.stop_signal,
        },
        "NetworkSettings": {},
    })
}
