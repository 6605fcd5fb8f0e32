//! `supervise scale APP N`: set `instances` in the ecosystem file itself, then have the
//! running supervise re-read it (as on any edit). The file stays the truth: a later
//! restart of supervise runs N instances too.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::client::{ask, client_socket, COMMAND_TIMEOUT};
use crate::config;
use crate::control::client;
use crate::control::protocol::Request;

pub fn scale(socket: Option<&Path>, app: &str, n: u32) -> ExitCode {
    match edit(socket, app, n) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("supervise: {e}");
            ExitCode::from(1)
        }
    }
}

fn edit(socket: Option<&Path>, app: &str, n: u32) -> Result<ExitCode, String> {
    // The running supervise's file; without one, the file of the current folder.
    let running = client::request(
        &client_socket(socket),
        Request::Status,
        Duration::from_secs(10),
    )
    .ok()
    .and_then(|r| r.status)
    .map(|s| PathBuf::from(s.config));
    let path = match &running {
        Some(p) => p.clone(),
        None => config::find_default(None)?,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let old = config::load_str(&path, &text)
        .map_err(|e| e.to_string())?
        .apps
        .iter()
        .find(|a| a.name == app)
        .map(|a| a.instances);
    let edited = config::edit::set_instances(&path, &text, app, n)?;
    if edited != text {
        std::fs::write(&path, &edited).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let was = old.map_or_else(|| "?".into(), |o| o.to_string());
    println!("{app}: instances {was} -> {n} in {}", path.display());
    if running.is_none() {
        println!("(no supervise is running; it will run {n} when started)");
        return Ok(ExitCode::SUCCESS);
    }
    Ok(
        match ask(socket, Request::Reload { target: None }, COMMAND_TIMEOUT) {
            Ok(response) => {
                if let Some(message) = response.message {
                    println!("{message}");
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
    )
}
