//! The `supervise` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use supervise::{config, os, runtime};

/// A declarative process supervisor: keeps the apps of an ecosystem file running.
#[derive(Parser, Debug)]
#[command(
    name = "supervise",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// The ecosystem file (default: ./ecosystem.toml, ./ecosystem.yaml, ./ecosystem.yml).
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate the ecosystem file and print what would run; exit 1 with every error.
    Check {
        /// The ecosystem file (default lookup as for running).
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // Before anything opens a descriptor: inherited ones must not reach the apps.
    os::fds::close_inherited_on_exec();
    os::fds::reserve_low_fds();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check { config }) => check(config),
        None => run(cli.config),
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
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn run(path: Option<PathBuf>) -> ExitCode {
    let eco = match load(path) {
        Ok(eco) => eco,
        Err(code) => return code,
    };
    match runtime::run(eco) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("supervise: {e}");
            ExitCode::from(1)
        }
    }
}
