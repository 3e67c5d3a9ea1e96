//! `peapod login` and `peapod logout`: credentials checked against the registry, then kept in
//! the login file (`--authfile`, else `<lib dir>/auth.json`), with podman's messages.
//!
//! Missing user or password are asked for on a terminal, the password without echo; without a
//! terminal they must come from `-u` and `-p` or `--password-stdin`.

use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};

use crate::image::{check_login, Credentials, PullOptions};
use crate::store::Paths;

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    #[arg(short, long)]
    pub username: Option<String>,
    /// Visible in the process list: prefer --password-stdin.
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from stdin.
    #[arg(long)]
    pub password_stdin: bool,
    /// Registry host (`127.0.0.1:5000`, `docker.io`).
    pub host: String,
}

#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// Registry host.
    pub host: String,
}

/// `https://index.docker.io/v1/` -> `index.docker.io`: the host part of what users paste.
pub fn registry_host(arg: &str) -> Result<String> {
    let rest = arg
        .strip_prefix("https://")
        .or_else(|| arg.strip_prefix("http://"))
        .unwrap_or(arg);
    let host = rest.split('/').next().unwrap_or_default();
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    if !valid {
        bail!("invalid registry host {arg:?}: expected host[:port], e.g. 127.0.0.1:5000");
    }
    Ok(host.to_string())
}

pub fn login(paths: &Paths, args: &LoginArgs) -> Result<i32> {
    let host = registry_host(&args.host)?;
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let username = match &args.username {
        Some(u) => u.clone(),
        None if args.password_stdin => bail!("--password-stdin needs --username"),
        None if tty => prompt("Username: ")?,
        None => bail!("no username for {host}: pass --username (stdin is not a terminal)"),
    };
    let password = match &args.password {
        Some(p) => p.clone(),
        None if args.password_stdin => {
            let mut text = String::new();
            stdin
                .lock()
                .read_to_string(&mut text)
                .context("reading the password from stdin")?;
            text.trim_end_matches(['\n', '\r']).to_string()
        }
        None if tty => prompt_hidden("Password: ")?,
        None => bail!("no password for {host}: pass --password-stdin (stdin is not a terminal)"),
    };
    if username.is_empty() || password.is_empty() {
        bail!("logging in to {host}: username and password must not be empty");
    }
    let opts = PullOptions::from_env(paths)?;
    check_login(&host, &username, &password, &opts)
        .with_context(|| format!("logging in to {host}"))?;
    let file = Credentials::store(paths, &host, &username, &password)?;
    tracing::info!(host, file = %file.display(), "stored registry credentials");
    println!("Login Succeeded!");
    Ok(0)
}

pub fn logout(paths: &Paths, args: &LogoutArgs) -> Result<i32> {
    let host = registry_host(&args.host)?;
    if Credentials::remove(paths, &host)? {
        println!("Removed login credentials for {host}");
        Ok(0)
    } else {
        eprintln!("Error: not logged into {host}");
        Ok(1)
    }
}

fn read_line() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading stdin")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn prompt(label: &str) -> Result<String> {
    eprint!("{label}");
    std::io::stderr().flush().ok();
    read_line()
}

/// Reads a line with the terminal's echo off, restoring it whatever happens.
fn prompt_hidden(label: &str) -> Result<String> {
    eprint!("{label}");
    std::io::stderr().flush().ok();
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).map_err(|e| anyhow!("reading the terminal settings: {e}"))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet)
        .map_err(|e| anyhow!("turning the terminal echo off: {e}"))?;
    let line = read_line();
    let restored = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    eprintln!();
    restored.map_err(|e| anyhow!("restoring the terminal settings: {e}"))?;
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_as_users_write_them() {
        assert_eq!(registry_host("127.0.0.1:5000").unwrap(), "127.0.0.1:5000");
        assert_eq!(
            registry_host("https://index.docker.io/v1/").unwrap(),
            "index.docker.io"
        );
        assert_eq!(
            registry_host("http://localhost:5001").unwrap(),
            "localhost:5001"
        );
        assert!(registry_host("").is_err());
        assert!(registry_host("https://").is_err());
        assert!(registry_host("a b").is_err());
    }
}
