//! The `supervise` command: run an ecosystem, check one, or talk to a running supervise.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use supervise::cli::{Cli, Command};
use supervise::control::client;
use supervise::control::protocol::{Request, Response, Target};
use supervise::control::table;
use supervise::{config, os, runtime};

/// Long enough for a rolling reload of a slow app; the server answers when done.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
const STATUS_TIMEOUT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    // Before anything opens a descriptor: inherited ones must not reach the apps.
    os::fds::close_inherited_on_exec();
    os::fds::reserve_low_fds();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let socket = cli.socket.as_deref();
    match cli.command {
        None => run(cli.config, socket),
        Some(Command::Check { config }) => check(config),
        Some(Command::Status { json }) => status(socket, json),
        Some(Command::Logs {
            target,
            lines,
            follow,
        }) => logs(socket, target, lines, follow),
        Some(Command::Restart { target }) => command(socket, Request::Restart { target }),
        Some(Command::Reload { target }) => command(socket, Request::Reload { target }),
        Some(Command::Stop { target }) => command(socket, Request::Stop { target }),
        Some(Command::Start { target }) => command(socket, Request::Start { target }),
        Some(Command::Signal { signal, target }) => {
            command(socket, Request::Signal { signal, target })
        }
        Some(Command::Diff { config }) => diff(socket, config),
        Some(Command::Top) => top(socket),
    }
}

fn load(path: Option<PathBuf>) -> Result<config::Ecosystem, ExitCode> {
    let path = config::find_default(path.as_deref()).map_err(|e| {
        eprintln!("supervise: {e}");
        ExitCode::from(1)
    })?;
    let can_bind = |addr: &config::ListenAddr| os::sockets::can_bind(addr, None);
    config::load_checked(&path, Some(&can_bind)).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(1)
    })
}

fn check(path: Option<PathBuf>) -> ExitCode {
    match load(path) {
        Ok(eco) => {
            print!("{}", config::describe(&eco));
            if let Some(warning) = runtime::fds_warning(&eco) {
                eprintln!("{}: warning: {warning}", eco.path.display());
            }
            for app in &eco.apps {
                if let Some(warning) = supervise::listen_adapter::check_warning(app) {
                    eprintln!("{}: warning: {warning}", eco.path.display());
                }
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn run(path: Option<PathBuf>, socket: Option<&Path>) -> ExitCode {
    let eco = match load(path) {
        Ok(eco) => eco,
        Err(code) => return code,
    };
    // Instances cost supervise descriptors: use all it may (children get the soft
    // limit back), and say so when even that is too few.
    os::limits::raise_nofile();
    if let Some(warning) = runtime::fds_warning(&eco) {
        eprintln!("supervise: warning: {warning}");
    }
    let socket = client::socket_path(socket, eco.settings.socket.as_deref());
    ensure_run_dir(&socket);
    match runtime::run(eco, &socket) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("supervise: {e}");
            ExitCode::from(1)
        }
    }
}

/// An empty root file system (a `scratch` image) has no /run: as an init would, make it
/// for root's default control socket.
fn ensure_run_dir(socket: &Path) {
    use std::os::unix::fs::DirBuilderExt;
    let run = Path::new("/run");
    if socket.parent() == Some(run) && !run.exists() {
        if let Err(e) = std::fs::DirBuilder::new().mode(0o755).create(run) {
            eprintln!("supervise: cannot create /run ({e})");
        }
    }
}

/// The socket a client command talks to: as the server finds it, including
/// `settings.socket` of the ecosystem file in the current folder, if there is one.
fn client_socket(explicit: Option<&Path>) -> PathBuf {
    let settings_socket = config::find_default(None)
        .ok()
        .and_then(|p| config::load(&p).ok())
        .and_then(|eco| eco.settings.socket);
    client::socket_path(explicit, settings_socket.as_deref())
}

fn ask(socket: Option<&Path>, request: Request, timeout: Duration) -> Result<Response, ExitCode> {
    let path = client_socket(socket);
    match client::request(&path, request, timeout) {
        Ok(response) if response.ok => Ok(response),
        Ok(response) => {
            eprintln!(
                "supervise: {}",
                response
                    .error
                    .unwrap_or_else(|| "the request failed".into())
            );
            Err(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("supervise: {e}");
            Err(ExitCode::from(1))
        }
    }
}

fn status(socket: Option<&Path>, json: bool) -> ExitCode {
    let response = match ask(socket, Request::Status, STATUS_TIMEOUT) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let report = response.status.unwrap_or_default();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report always serializes")
        );
    } else {
        let stdout = std::io::stdout();
        let colour =
            stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let width = terminal_width().unwrap_or(if colour { 100 } else { 200 });
        print!("{}", table::status_table(&report, width, colour));
    }
    ExitCode::SUCCESS
}

fn terminal_width() -> Option<usize> {
    if let Some(cols) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return Some(cols);
    }
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize struct we pass, which we own.
    let ok = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(size.ws_col as usize)
}

fn logs(socket: Option<&Path>, target: Target, lines: usize, follow: bool) -> ExitCode {
    let request = Request::Logs {
        target,
        lines,
        follow,
    };
    if !follow {
        return match ask(socket, request, STATUS_TIMEOUT) {
            Ok(response) => {
                for line in &response.lines {
                    println!("{}", table::log_line_text(line));
                }
                ExitCode::SUCCESS
            }
            Err(code) => code,
        };
    }
    let path = client_socket(socket);
    let result = client::follow(&path, request, &mut |line| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        // A closed reader (`| head`) ends the follow.
        writeln!(out, "{}", table::log_line_text(line)).is_ok() && out.flush().is_ok()
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("supervise: {e}");
            ExitCode::from(1)
        }
    }
}

fn command(socket: Option<&Path>, request: Request) -> ExitCode {
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

fn top(socket: Option<&Path>) -> ExitCode {
    match supervise::top::run(&client_socket(socket)) {
        Ok(status) => ExitCode::from(status),
        Err(why) => {
            eprintln!("supervise: {why}");
            ExitCode::from(1)
        }
    }
}

/// `supervise diff [CONFIG]`: the running supervisor compares; a relative CONFIG is
/// resolved here, where the user typed it.
fn diff(socket: Option<&Path>, config: Option<PathBuf>) -> ExitCode {
    let config = match config.as_deref().map(std::path::absolute).transpose() {
        Ok(path) => path,
        Err(e) => {
            eprintln!("supervise: {}: {e}", config.unwrap_or_default().display());
            return ExitCode::from(1);
        }
    };
    let config = match config.as_deref().map(|p| p.to_str().ok_or(p)).transpose() {
        Ok(path) => path.map(str::to_string),
        Err(p) => {
            eprintln!("supervise: {}: the path is not UTF-8", p.display());
            return ExitCode::from(1);
        }
    };
    match client::request(
        &client_socket(socket),
        Request::Diff { config },
        STATUS_TIMEOUT,
    ) {
        Ok(response) if response.ok => {
            for line in response.diff {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        // Located errors, printed as `check` prints them.
        Ok(response) => {
            eprintln!(
                "{}",
                response
                    .error
                    .unwrap_or_else(|| "the request failed".into())
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("supervise: {e}");
            ExitCode::from(1)
        }
    }
}
