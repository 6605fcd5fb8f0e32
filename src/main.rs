//! The `supervise` command: run an ecosystem, check one, or talk to a running supervise.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use supervise::cli::{self, client, Cli, Command};
use supervise::control::protocol::Request;
use supervise::{config, os, runtime};

fn main() -> ExitCode {
    // A shell asking for completions (`COMPLETE=bash supervise -- ...`): answer, exit.
    cli::complete_if_asked(Cli::command);
    // Before anything opens a descriptor: inherited ones must not reach the apps.
    os::fds::close_inherited_on_exec();
    os::fds::reserve_low_fds();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let socket = cli.socket.as_deref();
    match cli.command {
        None => run(cli.config, socket),
        Some(Command::Check { config, grace }) => check(config, grace.as_deref()),
        Some(Command::Status { target, json }) => {
            client::status(socket, target, json, terminal_width())
        }
        Some(Command::Logs(args)) => client::logs(socket, args),
        Some(Command::Restart { target }) => client::command(socket, Request::Restart { target }),
        Some(Command::Reload { target }) => client::command(socket, Request::Reload { target }),
        Some(Command::Stop { target }) => client::command(socket, Request::Stop { target }),
        Some(Command::Start { target }) => client::command(socket, Request::Start { target }),
        Some(Command::Signal { signal, target }) => {
            client::command(socket, Request::Signal { signal, target })
        }
        Some(Command::Scale { app, instances }) => cli::scale::scale(socket, &app, instances),
        Some(Command::Shutdown) => client::command(socket, Request::Shutdown),
        Some(Command::Completions { shell }) => {
            let _ = std::io::stdout().write_all(&cli::completion_script(shell));
            ExitCode::SUCCESS
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

fn check(path: Option<PathBuf>, grace: Option<&str>) -> ExitCode {
    let grace = match grace.map(config::units::parse_duration).transpose() {
        Ok(grace) => grace,
        Err(e) => {
            eprintln!("supervise: --grace: {e}");
            return ExitCode::from(2);
        }
    };
    match load(path) {
        Ok(eco) => {
            print!("{}", config::describe(&eco));
            if let Some(warning) = runtime::fds_warning(&eco) {
                eprintln!("{}: warning: {warning}", eco.path.display());
            }
            if let Some(grace) = grace {
                if let Err(e) = supervise::plan::order::fits_grace(&eco, grace) {
                    eprintln!("{}: {e}", eco.path.display());
                    return ExitCode::from(1);
                }
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
    let socket = supervise::control::client::socket_path(socket, eco.settings.socket.as_deref());
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

fn top(socket: Option<&Path>) -> ExitCode {
    match supervise::top::run(&client::client_socket(socket)) {
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
    match supervise::control::client::request(
        &client::client_socket(socket),
        Request::Diff { config },
        client::STATUS_TIMEOUT,
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
