//! Containers without a daemon: `rbk run` (in the foreground), `ps`, `rm`,
//! `diff` and `commit`. The state lives in the store
//! (`rbk_store::ContainerRecord`); running and packing are exec's
//! (`rbk_exec::run_container`, `container_layer`, `container_changes`).

use std::io::Write;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use rbk_exec::{Change, ContainerProcess, Runc};
use rbk_graph::NetworkMode;
use rbk_store::image::{format_rfc3339, parse_rfc3339, History, Image};
use rbk_store::{ContainerRecord, Digest, Layer, Reference, Store};

use crate::args::{CommitArgs, ContainerArg, PsArgs, RmArgs, RunArgs};
use crate::settings::GlobalSettings;

pub(crate) fn run(settings: &GlobalSettings, args: RunArgs) -> anyhow::Result<ExitCode> {
    let store = settings.open_store()?;
    rbk_exec::recover_store(&store)?;
    let _lease = store.lease()?;
    let image = image_for_run(settings, &store, &args.image)?;
    let config = image.config.config.clone().unwrap_or_default();
    let entrypoint = match &args.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => config.entrypoint.clone().unwrap_or_default(),
    };
    // As docker: a command replaces CMD, and --entrypoint clears CMD too.
    let cmd = match (args.command.is_empty(), &args.entrypoint) {
        (false, _) => args.command.clone(),
        (true, Some(_)) => Vec::new(),
        (true, None) => config.cmd.clone().unwrap_or_default(),
    };
    let process: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if process.is_empty() {
        bail!("no command specified: the image has no CMD or ENTRYPOINT, give one after the image");
    }
    let mut env = config.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    for pair in &args.env {
        let pair = match pair.split_once('=') {
            Some(_) => pair.clone(),
            None => match std::env::var(pair) {
                Ok(v) => format!("{pair}={v}"),
                Err(_) => continue, // docker drops a bare key that is unset
            },
        };
        let key = pair.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(pair);
    }
    let network = match args.network.as_str() {
        "host" | "default" | "bridge" => NetworkMode::Host,
        "none" => NetworkMode::None,
        other => bail!("invalid --network {other:?}: expected none or host"),
    };
    let id = new_id();
    let record = ContainerRecord {
        name: args
            .name
            .clone()
            .unwrap_or_else(|| format!("rbk_{}", &id[..12])),
        id: id.clone(),
        image: image.id(),
        image_name: args.image.clone(),
        args: process,
        env,
        cwd: args
            .workdir
            .clone()
            .or_else(|| Some(config.working_dir.clone()).filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".into()),
        user: args.user.clone().unwrap_or_else(|| config.user.clone()),
        created: format_rfc3339(SystemTime::now()),
        exit_code: None,
        finished: None,
    };
    let dir = store.create_container(&record)?;
    let runtime = Runc::new(
        args.runtime.clone().or_else(|| settings.runtime.clone()),
        store.root().join("runc"),
    )?;
    let hostname = args
        .hostname
        .clone()
        .unwrap_or_else(|| id[..12].to_string());
    let process = ContainerProcess {
        id: &id,
        args: &record.args,
        env: &record.env,
        cwd: &record.cwd,
        user: &record.user,
        hostname: &hostname,
        network,
    };
    let mut stdout = std::io::stdout();
    let code = rbk_exec::run_container(
        &store,
        &runtime,
        &layers(&image),
        &dir,
        &process,
        &mut |data| {
            let _ = stdout.write_all(data).and_then(|()| stdout.flush());
        },
    );
    let code = match code {
        Ok(code) => code,
        Err(e) => {
            let _ = store.remove_container(&id);
            return Err(e).context("running the container");
        }
    };
    if args.rm {
        store.remove_container(&id)?;
    } else {
        store.update_container(&ContainerRecord {
            exit_code: Some(code),
            finished: Some(format_rfc3339(SystemTime::now())),
            ..record
        })?;
    }
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}

/// The image `name` (a name or an id) from the store, else pulled.
fn image_for_run(settings: &GlobalSettings, store: &Store, name: &str) -> anyhow::Result<Image> {
    if let Ok(found) = store.find_image(name) {
        return Ok(found.image);
    }
    let reference: Reference = name
        .parse()
        .with_context(|| format!("invalid image name {name:?}"))?;
    let platform = crate::settings::host_platform();
    Ok(rbk_build::image_for_build(
        store,
        &settings.registries(),
        &reference,
        &platform,
        false,
    )?)
}

/// The image's layers, base first.
fn layers(image: &Image) -> Vec<Layer> {
    image
        .manifest
        .layers
        .iter()
        .zip(&image.config.rootfs.diff_ids)
        .map(|(blob, diff_id)| Layer {
            diff_id: *diff_id,
            blob: blob.clone(),
        })
        .collect()
}

/// A container id: 64 hex digits, from the time, the process and a counter.
fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let seed = format!(
        "{now}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    Digest::sha256_of(seed.as_bytes()).hex().to_string()
}

#[allow(clippy::print_stdout)] // the CLI reports here
pub(crate) fn ps(settings: &GlobalSettings, args: PsArgs) -> anyhow::Result<ExitCode> {
    let store = settings.open_store()?;
    let containers = store.containers()?;
    // Every container here has exited (runs are in the foreground); `ps`
    // without -a lists running ones, so it lists none.
    let shown: Vec<&ContainerRecord> = containers.iter().filter(|_| args.all).collect();
    if args.quiet {
        for c in shown {
            println!("{}", &c.id[..12]);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let ago = |t: &str| crate::humanize::ago(now - parse_rfc3339(t).unwrap_or(now));
    let mut table = vec![[
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    .map(String::from)
    .to_vec()];
    for c in shown.iter().rev() {
        let command = format!("\"{}\"", shorten(&c.args.join(" "), 20));
        let status = match (c.exit_code, &c.finished) {
            (Some(code), Some(t)) => format!("Exited ({code}) {}", ago(t)),
            _ => "Created".to_string(),
        };
        table.push(vec![
            c.id[..12].to_string(),
            c.image_name.clone(),
            command,
            ago(&c.created),
            status,
            String::new(),
            c.name.clone(),
        ]);
    }
    crate::table::write_table(&mut std::io::stdout().lock(), &table)?;
    Ok(ExitCode::SUCCESS)
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[allow(clippy::print_stdout)] // the CLI reports here
pub(crate) fn rm(settings: &GlobalSettings, args: RmArgs) -> anyhow::Result<ExitCode> {
    let store = settings.open_store()?;
    for name in &args.containers {
        let c = store.find_container(name)?;
        store.remove_container(&c.id)?;
        println!("{name}");
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // the CLI reports here
pub(crate) fn diff(settings: &GlobalSettings, args: ContainerArg) -> anyhow::Result<ExitCode> {
    let store = settings.open_store()?;
    let c = store.find_container(&args.container)?;
    let image = store.find_image(&c.image.to_string())?.image;
    let upper = store.container_dir(&c.id).join("upper");
    for (change, path) in rbk_exec::container_changes(&store, &layers(&image), &upper)? {
        let letter = match change {
            Change::Added => 'A',
            Change::Changed => 'C',
            Change::Deleted => 'D',
        };
        println!("{letter} {path}");
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // the CLI reports here
pub(crate) fn commit(settings: &GlobalSettings, args: CommitArgs) -> anyhow::Result<ExitCode> {
    let store = settings.open_store()?;
    let _lease = store.lease()?;
    let c = store.find_container(&args.container)?;
    let image = store
        .find_image(&c.image.to_string())
        .with_context(|| format!("the image of container {} is gone", c.name))?
        .image;
    let reference = args
        .reference
        .as_deref()
        .map(|r| r.parse::<Reference>())
        .transpose()
        .context("invalid image name")?;
    let upper = store.container_dir(&c.id).join("upper");
    let layer = rbk_exec::container_layer(&store, &upper)?;
    let now = format_rfc3339(SystemTime::now());
    let mut config = image.config.clone();
    let mut runtime = config.config.clone().unwrap_or_default();
    for change in &args.changes {
        crate::changes::apply(&mut runtime, change)?;
    }
    config.config = Some(runtime);
    config.created = Some(now.clone());
    if let Some(author) = &args.author {
        config.author = Some(author.clone());
    }
    let mut blobs = image.manifest.layers.clone();
    if let Some(layer) = &layer {
        config.rootfs.diff_ids.push(layer.diff_id);
        blobs.push(layer.blob.clone());
    }
    config.history.push(History {
        created: Some(now),
        created_by: Some(c.args.join(" ")),
        author: args.author.clone(),
        comment: args.message.clone(),
        empty_layer: layer.is_none(),
    });
    let manifest = store.put_image(&config, blobs)?;
    let id = store.read_image(&manifest)?.id();
    match &reference {
        Some(r) => store.tag(r, manifest)?,
        None => store.keep_untagged(id, manifest)?,
    }
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}
