//! `rbk login` and `rbk logout`: credentials in Docker's `config.json`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::args::{LoginArgs, LogoutArgs};
use crate::settings::GlobalSettings;

/// `https://host:5000/v2/` → `host:5000`; none or Docker Hub's names → `docker.io`.
fn server_name(raw: Option<&str>) -> String {
    let raw = raw.unwrap_or(rbk_store::DEFAULT_DOMAIN);
    let rest = raw.split_once("://").map_or(raw, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "" => rbk_store::DEFAULT_DOMAIN.into(),
        other => other.to_string(),
    }
}

#[allow(clippy::print_stdout)] // the CLI reports here
pub(crate) fn login(settings: &GlobalSettings, args: LoginArgs) -> anyhow::Result<ExitCode> {
    let server = server_name(args.server.as_deref());
    let Some(username) = args.username.filter(|u| !u.is_empty()) else {
        bail!("rbk login {server}: a user name is required (-u USER)");
    };
    let password = match (args.password, args.password_stdin) {
        (Some(p), _) => p,
        (None, true) => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the password from standard input")?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => {
            bail!("rbk login {server}: a password is required (-p or --password-stdin)")
        }
    };
    if password.is_empty() {
        bail!("rbk login {server}: the password is empty");
    }
    let client = settings.client(None)?;
    client
        .verify_credentials(&server, &username, &password)
        .with_context(|| format!("logging in to {server} as {username}"))?;
    let dir = settings.docker_config_dir();
    rbk_registry::login(&dir, &server, &username, &password)?;
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)] // the CLI reports here
pub(crate) fn logout(settings: &GlobalSettings, args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let server = server_name(args.server.as_deref());
    let dir = settings.docker_config_dir();
    if rbk_registry::logout(&dir, &server)? {
        println!("Removing login credentials for {server}");
    } else {
        println!("Not logged in to {server}");
    }
    Ok(ExitCode::SUCCESS)
}
