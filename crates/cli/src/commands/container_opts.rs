//! `rbk run`'s options that need parsing, with docker's rules and error
//! messages: `-v`, `--mount`, `--cap-add`/`--cap-drop`, `--env-file`,
//! `--pull`, `--init`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rbk_store::ContainerMount;

/// `-v HOST:CTR[:ro|rw]`, `-v NAME:CTR[:…]` (a named volume) or `-v CTR`
/// (an anonymous volume, named `anonymous` here). A host path that does
/// not exist is created, as docker does for `-v`.
pub(crate) fn parse_volume(spec: &str, anonymous: &str) -> anyhow::Result<ContainerMount> {
    let invalid = || anyhow::anyhow!("invalid volume specification: '{spec}'");
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => ("", *target, ""),
        [source, target] => (*source, *target, ""),
        [source, target, mode] => (*source, *target, *mode),
        _ => return Err(invalid()),
    };
    if target.is_empty() || source.is_empty() && parts.len() > 1 {
        return Err(invalid());
    }
    check_target(target, spec)?;
    let readonly = match mode {
        "" | "rw" => false,
        "ro" => true,
        other => bail!("invalid mode: {other} (in volume specification '{spec}')"),
    };
    let (kind, source) = match source {
        "" => ("volume", anonymous.to_string()),
        s if s.starts_with('/') => {
            std::fs::create_dir_all(s).with_context(|| format!("creating {s} for -v {spec}"))?;
            ("bind", s.to_string())
        }
        s if s.starts_with('.') || s.contains('/') => {
            bail!("invalid volume specification: '{spec}': a host path must be absolute")
        }
        name => ("volume", name.to_string()),
    };
    Ok(ContainerMount {
        kind: kind.into(),
        source,
        target: target.into(),
        readonly,
        size: 0,
    })
}

/// `--mount type=…,source=…,target=…[,readonly][,tmpfs-size=N]`.
pub(crate) fn parse_mount(spec: &str, anonymous: &str) -> anyhow::Result<ContainerMount> {
    let (mut kind, mut source, mut target, mut readonly, mut size) = ("volume", "", "", false, 0);
    for field in spec.split(',') {
        let (key, value) = field.split_once('=').unwrap_or((field, ""));
        match key.to_ascii_lowercase().as_str() {
            "type" => kind = value,
            "source" | "src" => source = value,
            "target" | "destination" | "dst" => target = value,
            "readonly" | "ro" => {
                readonly = match value {
                    "" | "true" | "1" => true,
                    "false" | "0" => false,
                    other => bail!("invalid value for readonly: {other} (in --mount '{spec}')"),
                }
            }
            "tmpfs-size" => {
                size = parse_size(value)
                    .with_context(|| format!("invalid tmpfs-size in --mount '{spec}'"))?
            }
            "bind-propagation" | "volume-nocopy" | "tmpfs-mode" | "consistency" => {}
            _ => bail!("invalid field '{key}' must be a key=value pair (in --mount '{spec}')"),
        }
    }
    if target.is_empty() {
        bail!("invalid argument \"{spec}\" for \"--mount\" flag: target is required");
    }
    check_target(target, spec)?;
    match kind {
        "bind" => {
            if source.is_empty() {
                bail!("invalid mount config for type \"bind\": field Source must not be empty");
            }
            if !Path::new(source).is_absolute() {
                bail!("invalid mount config for type \"bind\": invalid mount path: '{source}' mount path must be absolute");
            }
            if !Path::new(source).exists() {
                bail!("invalid mount config for type \"bind\": bind source path does not exist: {source}");
            }
        }
        "volume" => {}
        "tmpfs" => {
            if !source.is_empty() {
                bail!("invalid mount config for type \"tmpfs\": field Source must be empty");
            }
        }
        other => bail!("invalid argument \"{spec}\" for \"--mount\" flag: mount type '{other}' is not supported (bind, volume or tmpfs)"),
    }
    let source = match (kind, source) {
        ("volume", "") => anonymous.to_string(),
        (_, s) => s.to_string(),
    };
    Ok(ContainerMount {
        kind: kind.into(),
        source,
        target: target.into(),
        readonly,
        size,
    })
}

/// `1024`, `64k`, `1m`, `2g`, `1mb` (docker's RAMInBytes: powers of 1024).
fn parse_size(text: &str) -> anyhow::Result<u64> {
    let lower = text.to_ascii_lowercase();
    let trimmed = lower.trim_end_matches('b');
    let (digits, unit) = match trimmed.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&trimmed[..i], c),
        _ => (trimmed, ' '),
    };
    let shift = match unit {
        ' ' => 0,
        'k' => 10,
        'm' => 20,
        'g' => 30,
        't' => 40,
        _ => bail!("invalid size: '{text}'"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size: '{text}'"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| anyhow::anyhow!("invalid size: '{text}'"))
}

fn check_target(target: &str, spec: &str) -> anyhow::Result<()> {
    if !target.starts_with('/') {
        bail!("invalid mount path: '{target}' mount path must be absolute (in '{spec}')");
    }
    if target == "/" {
        bail!("invalid specification: destination can't be '/' in '{spec}'");
    }
    Ok(())
}

/// `NET_ADMIN`, `cap_net_admin`, `ALL` → `CAP_NET_ADMIN`, `ALL`; an
/// unknown name is docker's error.
pub(crate) fn capability(name: &str) -> anyhow::Result<String> {
    let upper = name.to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if !rbk_exec::CAPABILITIES.contains(&full.as_str()) {
        bail!("invalid capability: unknown capability: \"{full}\"");
    }
    Ok(full)
}

/// The `KEY=VALUE` lines of an `--env-file` (blank lines and `#` comments
/// skipped; a bare `KEY` takes this environment's value or is dropped).
pub(crate) fn env_file(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("open {}: no such file or directory", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split('=').next().unwrap_or_default();
        if key.is_empty() || key.contains(char::is_whitespace) {
            bail!(
                "{}:{}: poorly formatted environment: variable '{key}' contains whitespaces or is empty",
                path.display(),
                n + 1
            );
        }
        match line.split_once('=') {
            Some(_) => out.push(line.to_string()),
            None => {
                if let Ok(v) = std::env::var(key) {
                    out.push(format!("{key}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// The host's init for `--init`: tini, which docker ships as
/// `docker-init`. None here is an error naming the package.
pub(crate) fn init_binary() -> anyhow::Result<PathBuf> {
    ["/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/bin/tini"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .context("--init needs tini on the host: install the tini package (tini-static is copied into no image; it is bind-mounted read-only at /sbin/docker-init)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_follow_docker() {
        let m = parse_volume("/tmp:/data:ro", "anon").unwrap();
        assert_eq!((m.kind.as_str(), m.readonly), ("bind", true));
        let m = parse_volume("cache:/data", "anon").unwrap();
        assert_eq!((m.kind.as_str(), m.source.as_str()), ("volume", "cache"));
        let m = parse_volume("/data", "anon").unwrap();
        assert_eq!(m.source, "anon");
        for bad in [
            "a:b:c:d",
            "/x:data",
            "/x:/y:rx",
            "rel/dir:/y",
            ":/y",
            "/x:/",
        ] {
            assert!(parse_volume(bad, "anon").is_err(), "{bad}");
        }
    }

    #[test]
    fn mounts_follow_docker() {
        let m = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m", "a").unwrap();
        assert_eq!((m.kind.as_str(), m.size), ("tmpfs", 1 << 20));
        let m = parse_mount("type=bind,src=/tmp,dst=/x,readonly", "a").unwrap();
        assert!(m.readonly);
        let err = parse_mount("type=bind,src=/nonexistent-xyz,dst=/x", "a").unwrap_err();
        assert!(err.to_string().contains("bind source path does not exist"));
        assert!(parse_mount("type=nfs,dst=/x", "a").is_err());
        assert!(parse_mount("type=bind,bogus=1,dst=/x", "a").is_err());
        assert!(parse_mount("type=tmpfs", "a").is_err());
    }

    #[test]
    fn capabilities_are_normalised() {
        assert_eq!(capability("net_admin").unwrap(), "CAP_NET_ADMIN");
        assert_eq!(capability("all").unwrap(), "ALL");
        assert!(capability("FLY").is_err());
    }
}
