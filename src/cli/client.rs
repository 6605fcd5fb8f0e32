//! The client commands: each sends one request to the running supervise and prints
//! the answer; exit 1 when supervise says the request failed or cannot be reached.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use super::LogsArgs;
use crate::config;
use crate::control::client;
use crate::control::protocol::{LogLine, LogStream, Request, Response, StatusReport, Target};
use crate::control::table;

/// Long enough for a rolling reload of a slow app; the server answers when done.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(30);

/// The socket a client command talks to: as the server finds it, including
/// `settings.socket` of the ecosystem file in the current folder, if there is one.
pub fn client_socket(explicit: Option<&Path>) -> PathBuf {
    if explicit.is_some() || std::env::var_os("SUPERVISE_SOCKET").is_some_and(|v| !v.is_empty()) {
        return client::socket_path(explicit, None);
    }
    let settings_socket = config::find_default(None)
        .ok()
        .and_then(|p| config::load(&p).ok())
        .and_then(|eco| eco.settings.socket);
    client::socket_path(explicit, settings_socket.as_deref())
}

/// One request, its successful answer; the failure already printed.
pub fn ask(
    socket: Option<&Path>,
    request: Request,
    timeout: Duration,
) -> Result<Response, ExitCode> {
    let path = client_socket(socket);
    match client::request(&path, request, timeout) {
        Ok(response) if response.ok => Ok(response),
        Ok(response) => {
            let why = response
                .error
                .unwrap_or_else(|| "the request failed".into());
            eprintln!("supervise: {why}");
            Err(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("supervise: {e}");
            Err(ExitCode::from(1))
        }
    }
}

/// `status [TARGET] [--json]`; the table fits `width` columns (80 when unknown).
pub fn status(
    socket: Option<&Path>,
    target: Option<Target>,
    json: bool,
    width: Option<usize>,
) -> ExitCode {
    let response = match ask(socket, Request::Status, STATUS_TIMEOUT) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut report = response.status.unwrap_or_default();
    if let Some(target) = target {
        if let Err(e) = keep_target(&mut report, &target) {
            eprintln!("supervise: {e}");
            return ExitCode::from(1);
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report always serializes")
        );
    } else {
        let stdout = std::io::stdout();
        let colour =
            stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let width = width.unwrap_or(80);
        print!("{}", table::status_table(&report, width, colour));
    }
    ExitCode::SUCCESS
}

/// Keep the instances `target` names; an error if it names none.
fn keep_target(report: &mut StatusReport, target: &Target) -> Result<(), String> {
    report.instances.retain(|i| target.matches(&i.app, i.index));
    if report.instances.is_empty() && *target != Target::All {
        return Err(match target {
            Target::Instance(app, index) => format!("no instance {app}.{index}"),
            _ => format!("no app named `{target}`"),
        });
    }
    Ok(())
}

/// `logs [TARGET] [-n N] [-f] [--out|--err] [--timestamps]`.
pub fn logs(socket: Option<&Path>, args: LogsArgs) -> ExitCode {
    let stream = match (args.out, args.err) {
        (true, _) => Some(LogStream::Stdout),
        (_, true) => Some(LogStream::Stderr),
        _ => None,
    };
    let request = Request::Logs {
        target: args.target,
        lines: args.lines,
        follow: args.follow,
        stream,
    };
    let text = |l: &LogLine| {
        let line = table::log_line_text(l);
        if args.timestamps {
            let time = UNIX_EPOCH + Duration::from_millis(l.time_ms);
            format!("{} {line}", humantime::format_rfc3339_millis(time))
        } else {
            line
        }
    };
    if !args.follow {
        return match ask(socket, request, STATUS_TIMEOUT) {
            Ok(response) => {
                for line in &response.lines {
                    println!("{}", text(line));
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        };
    }
    let path = client_socket(socket);
    let result = client::follow(&path, request, &mut |line| {
        let mut out = std::io::stdout().lock();
        // A closed reader (`| head`) ends the follow.
        writeln!(out, "{}", text(line)).is_ok() && out.flush().is_ok()
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("supervise: {e}");
            ExitCode::from(1)
        }
    }
}

/// A command answered with a message: `restart`, `reload`, `stop`, `start`, `signal`,
/// `shutdown`.
pub fn command(socket: Option<&Path>, request: Request) -> ExitCode {
    match ask(socket, request, COMMAND_TIMEOUT) {
        Ok(response) => {
            if let Some(message) = response.message {
                println!("{message}");
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}
