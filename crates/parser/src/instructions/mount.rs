//! `RUN --mount=type=…,key=value,…` as BuildKit parses it
//! (`commands_runmount.go`): the value is one CSV record, `type` defaults to
//! `bind`, and each type accepts only its own keys.

use std::borrow::Cow;

/// The type of a `RUN --mount`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MountType {
    /// `type=bind` (the default).
    #[default]
    Bind,
    /// `type=cache`.
    Cache,
    /// `type=tmpfs`.
    Tmpfs,
    /// `type=secret`.
    Secret,
    /// `type=ssh`.
    Ssh,
}

impl MountType {
    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value.to_ascii_lowercase().as_str() {
            "bind" => MountType::Bind,
            "cache" => MountType::Cache,
            "tmpfs" => MountType::Tmpfs,
            "secret" => MountType::Secret,
            "ssh" => MountType::Ssh,
            _ => return Err(format!("unsupported mount type {value:?}")),
        })
    }

    /// The name as written in Dockerfiles.
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// `sharing=` of a cache mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// `shared` (the default).
    Shared,
    /// `private`.
    Private,
    /// `locked`.
    Locked,
}

/// One parsed `--mount`, before defaults that depend on the stage are applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunMount {
    /// `type=`.
    pub kind: MountType,
    /// `from=`: a stage name or index, or an image.
    pub from: Option<String>,
    /// `source=`/`src=`.
    pub source: Option<String>,
    /// `target=`/`dst=`/`destination=`.
    pub target: Option<String>,
    /// After the `ro`/`rw` defaults: bind and secret/ssh read-only, cache and tmpfs writable.
    pub readonly: bool,
    /// `id=`.
    pub id: Option<String>,
    /// `sharing=` (cache only).
    pub sharing: Option<Sharing>,
    /// `mode=` (octal; cache, secret, ssh).
    pub mode: Option<u32>,
    /// `uid=`.
    pub uid: Option<u32>,
    /// `gid=`.
    pub gid: Option<u32>,
    /// `required` (secret, ssh).
    pub required: bool,
    /// `size=` in bytes (tmpfs).
    pub size: Option<u64>,
    /// `env=` (secret).
    pub env: Option<String>,
}

/// Expands one word of a `--mount` value; the error is the message to show.
pub type Expander<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// Parses one `--mount` value. `expand` is applied to every value except
/// `from` (which BuildKit refuses to expand); pass `None` to check only what
/// can be checked before expansion.
pub fn parse_mount(value: &str, expand: Option<Expander<'_>>) -> Result<RunMount, String> {
    let mut m = RunMount::default();
    let mut ro_auto = true;
    for field in split_csv(value)? {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (ascii_lower(k), Some(v)),
            None => (ascii_lower(&field), None),
        };
        let Some(val) = val else {
            if expand.is_some() {
                apply_bare_key(&mut m, &key, &field, &mut ro_auto)?;
            }
            continue;
        };
        let val = match expand {
            Some(f) if key != "from" => f(val)?,
            _ if key == "from" && has_variable(val) => {
                return Err(format!(
                    "'{key}' doesn't support variable expansion, define alias stage instead"
                ))
            }
            Some(_) => val.to_string(),
            None => continue,
        };
        apply_key(&mut m, &key, &field, val, &mut ro_auto)?;
    }
    validate(&mut m, ro_auto)?;
    Ok(m)
}

/// `s` in ASCII lower case, copied only when it has an upper-case letter
/// (a mount is parsed three times per RUN: checked, scanned for stages,
/// lowered).
fn ascii_lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

fn has_variable(value: &str) -> bool {
    value.find('$').is_some_and(|i| i + 1 < value.len())
}

fn apply_bare_key(
    m: &mut RunMount,
    key: &str,
    field: &str,
    ro_auto: &mut bool,
) -> Result<(), String> {
    match key {
        "readonly" | "ro" => m.readonly = true,
        "readwrite" | "rw" => m.readonly = false,
        "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
            m.required = true;
            return Ok(());
        }
        "required" => return Err(unexpected(key, m.kind)),
        _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
    }
    *ro_auto = false;
    Ok(())
}

fn unexpected(key: &str, kind: MountType) -> String {
    format!("unexpected key '{key}' for mount type '{}'", kind.as_str())
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid value for {key}: {value}")),
    }
}

fn apply_key(
    m: &mut RunMount,
    key: &str,
    field: &str,
    val: String,
    ro_auto: &mut bool,
) -> Result<(), String> {
    match key {
        "type" => m.kind = MountType::parse(&val)?,
        "from" => m.from = Some(val),
        "source" | "src" => m.source = Some(val),
        "target" | "dst" | "destination" => m.target = Some(val),
        "readonly" | "ro" => {
            m.readonly = parse_bool(key, &val)?;
            *ro_auto = false;
        }
        "readwrite" | "rw" => {
            m.readonly = !parse_bool(key, &val)?;
            *ro_auto = false;
        }
        "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
            m.required = parse_bool(key, &val)?
        }
        "size" if m.kind == MountType::Tmpfs => {
            m.size = Some(ram_in_bytes(&val).ok_or(format!("invalid value for {key}: {val}"))?)
        }
        "env" if m.kind == MountType::Secret => m.env = Some(val),
        "required" | "size" | "env" => return Err(unexpected(key, m.kind)),
        "id" => m.id = Some(val),
        "sharing" => m.sharing = Some(parse_sharing(&val)?),
        "mode" => {
            m.mode = Some(
                u32::from_str_radix(&val, 8)
                    .map_err(|_| format!("invalid value {val} for mode"))?,
            )
        }
        "uid" => {
            m.uid = Some(
                val.parse()
                    .map_err(|_| format!("invalid value {val} for uid"))?,
            )
        }
        "gid" => {
            m.gid = Some(
                val.parse()
                    .map_err(|_| format!("invalid value {val} for gid"))?,
            )
        }
        _ => return Err(format!("unexpected key '{key}' in '{field}'")),
    }
    Ok(())
}

fn parse_sharing(value: &str) -> Result<Sharing, String> {
    match value.to_ascii_lowercase().as_str() {
        "shared" => Ok(Sharing::Shared),
        "private" => Ok(Sharing::Private),
        "locked" => Ok(Sharing::Locked),
        _ => Err(format!("unsupported sharing value {value:?}")),
    }
}

fn validate(m: &mut RunMount, ro_auto: bool) -> Result<(), String> {
    let file_info_allowed = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        let kind = m.kind.as_str();
        if m.mode.is_some() {
            return Err(format!("mode not allowed for {kind:?} type mounts"));
        }
        if m.uid.is_some() {
            return Err(format!("uid not allowed for {kind:?} type mounts"));
        }
        if m.gid.is_some() {
            return Err(format!("gid not allowed for {kind:?} type mounts"));
        }
    }
    if ro_auto {
        m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".into());
        }
        if m.sharing.is_some() {
            return Err("secret mount should not define sharing".into());
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() && m.env.is_none() {
            return Err("invalid secret mount. one of source, target required".into());
        }
        if m.source.is_some() && m.id.is_some() {
            return Err("both source and id can't be set".into());
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(format!(
            "invalid cache sharing set for {} mount",
            m.kind.as_str()
        ));
    }
    Ok(())
}

/// Splits one CSV record as Go's `encoding/csv` does (`"` quotes a field,
/// `""` inside quotes is a quote).
fn split_csv(value: &str) -> Result<Vec<Cow<'_, str>>, String> {
    // Without quotes or line breaks a record is its commas.
    if !value.contains(['"', '\n', '\r']) {
        return Ok(value.split(',').map(Cow::Borrowed).collect());
    }
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = value.chars().peekable();
    let mut at_start = true;
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' if quoted => quoted = false,
            '"' if at_start => quoted = true,
            ',' if !quoted => {
                fields.push(Cow::Owned(std::mem::take(&mut cur)));
                at_start = true;
                continue;
            }
            '\n' | '\r' if !quoted => break,
            _ => cur.push(c),
        }
        at_start = false;
    }
    if quoted {
        return Err("failed to parse csv mounts: extraneous or missing \" in quoted-field".into());
    }
    fields.push(Cow::Owned(cur));
    Ok(fields)
}

/// `docker/go-units`' `RAMInBytes`: `64m`, `1.5g`, `1024` (binary multiples).
fn ram_in_bytes(value: &str) -> Option<u64> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let num: f64 = num.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    if num < 0.0 {
        return None;
    }
    Some((num * mult as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Result<RunMount, String> {
        let id = |s: &str| Ok(s.to_string());
        parse_mount(v, Some(&id))
    }

    #[test]
    fn defaults_per_type() {
        let m = parse("target=/src").unwrap();
        assert_eq!((m.kind, m.readonly), (MountType::Bind, true));
        let m = parse("type=cache,target=/root/.cache").unwrap();
        assert_eq!((m.kind, m.readonly), (MountType::Cache, false));
        let m = parse("type=tmpfs,dst=/tmp,size=64m").unwrap();
        assert_eq!((m.readonly, m.size), (false, Some(64 << 20)));
        let m = parse("type=secret,id=tok").unwrap();
        assert!(m.readonly && !m.required);
    }

    #[test]
    fn every_option_is_read() {
        let m = parse(
            "type=cache,id=go,target=/go,from=base,source=/seed,sharing=locked,mode=0700,uid=1000,gid=1000,ro",
        )
        .unwrap();
        assert_eq!(m.id.as_deref(), Some("go"));
        assert_eq!(m.from.as_deref(), Some("base"));
        assert_eq!(m.source.as_deref(), Some("/seed"));
        assert_eq!(m.sharing, Some(Sharing::Locked));
        assert_eq!(
            (m.mode, m.uid, m.gid),
            (Some(0o700), Some(1000), Some(1000))
        );
        assert!(m.readonly);
        let m = parse("type=secret,id=a,env=TOKEN,required=true,mode=0440").unwrap();
        assert_eq!(
            (m.env.as_deref(), m.required, m.mode),
            (Some("TOKEN"), true, Some(0o440))
        );
        let m = parse("type=ssh,required").unwrap();
        assert!(m.required);
        let m = parse("type=bind,src=a,destination=/b,rw=true").unwrap();
        assert!(!m.readonly);
        let m = parse("type=bind,target=/b,readwrite").unwrap();
        assert!(!m.readonly);
    }

    #[test]
    fn invalid_mounts_are_refused() {
        let cases = [
            ("type=foo,target=/x", "unsupported mount type \"foo\""),
            (
                "type=bind,target=/x,mode=0700",
                "mode not allowed for \"bind\" type mounts",
            ),
            (
                "type=tmpfs,target=/x,uid=1",
                "uid not allowed for \"tmpfs\" type mounts",
            ),
            (
                "type=cache,target=/x,sharing=bogus",
                "unsupported sharing value \"bogus\"",
            ),
            (
                "type=bind,target=/x,sharing=locked",
                "invalid cache sharing set for bind mount",
            ),
            (
                "type=secret,from=x,id=a",
                "secret mount should not have a from",
            ),
            (
                "type=secret",
                "invalid secret mount. one of source, target required",
            ),
            (
                "type=secret,source=a,id=b",
                "both source and id can't be set",
            ),
            (
                "type=bind,target=/x,required",
                "unexpected key 'required' for mount type 'bind'",
            ),
            (
                "type=cache,target=/x,size=1",
                "unexpected key 'size' for mount type 'cache'",
            ),
            ("target=/x,bogus=1", "unexpected key 'bogus' in 'bogus=1'"),
            (
                "target=/x,bogus",
                "invalid field 'bogus' must be a key=value pair",
            ),
            ("type=cache,target=/x,mode=9", "invalid value 9 for mode"),
            ("target=/x,ro=maybe", "invalid value for ro: maybe"),
            (
                "type=tmpfs,target=/x,size=lots",
                "invalid value for size: lots",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).unwrap_err(), want, "{input}");
        }
    }

    #[test]
    fn from_is_never_expanded() {
        let err = parse_mount("type=bind,from=$X,target=/x", None).unwrap_err();
        assert_eq!(
            err,
            "'from' doesn't support variable expansion, define alias stage instead"
        );
        assert!(parse_mount("type=bind,from=x,target=$T", None).is_ok());
    }

    #[test]
    fn csv_quotes() {
        let m = parse("type=bind,\"target=/a,b\",src=x").unwrap();
        assert_eq!(m.target.as_deref(), Some("/a,b"));
        // Records without quotes take the borrowing path: same fields.
        assert_eq!(split_csv("a,,b").unwrap(), ["a", "", "b"]);
        assert_eq!(split_csv("").unwrap(), [""]);
        assert_eq!(split_csv("a,\"b\"\"c\",d").unwrap(), ["a", "b\"c", "d"]);
        let m = parse("TYPE=cache,Target=/c,RO").unwrap();
        assert_eq!(
            (m.kind, m.target.as_deref(), m.readonly),
            (MountType::Cache, Some("/c"), true)
        );
        assert_eq!(ram_in_bytes("1.5k"), Some(1536));
        assert_eq!(ram_in_bytes("10MiB"), Some(10 << 20));
    }
}
