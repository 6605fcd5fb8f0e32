//! The command line, defined once: `main` parses it, and the man page and shell
//! completions in `man/` are generated from it (see `tests/it/docs.rs`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::control::protocol::{SignalName, Target};

/// A declarative process supervisor: keeps the apps of an ecosystem file running.
#[derive(Parser, Debug)]
#[command(
    name = "supervise",
    version,
    about,
    long_about = "A declarative process supervisor. `supervise ecosystem.toml` runs the apps of \
                  the file in the foreground, restarts them by their policy, and converges \
                  without downtime when the file is edited. The other commands talk to a \
                  running supervise over its control socket.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// The ecosystem file (default: ./ecosystem.toml, ./ecosystem.yaml, ./ecosystem.yml).
    pub config: Option<PathBuf>,

    /// The control socket (default: $SUPERVISE_SOCKET, settings.socket,
    /// $XDG_RUNTIME_DIR/supervise.sock, /run/supervise.sock for root,
    /// /tmp/supervise-UID.sock).
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate the ecosystem file and print what would run; exit 1 with every error.
    Check {
        /// The ecosystem file (default lookup as for running).
        config: Option<PathBuf>,
    },
    /// Show every instance: pid, state, restarts, uptime, cpu, memory, last exit, readiness.
    Status {
        /// Print JSON for scripts instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Print the last lines of output of all apps, an app, or one instance.
    Logs {
        /// all | APP | APP.N
        #[arg(default_value = "all")]
        target: Target,
        /// How many lines.
        #[arg(short = 'n', long = "lines", default_value_t = 20)]
        lines: usize,
        /// Keep printing new lines as they come.
        #[arg(short, long)]
        follow: bool,
    },
    /// Stop and start again (new pids). TARGET: all | APP | APP.N
    Restart { target: Target },
    /// Replace instances one at a time, each new one ready before the old one stops.
    Reload { target: Target },
    /// Stop and hold stopped until `supervise start`.
    Stop { target: Target },
    /// Start what `stop` held, or what errored or finished.
    Start { target: Target },
    /// Show what applying CONFIG would change, app by app, without applying it
    /// (default: the running file as it is on disk now); exit 1 with located errors.
    Diff {
        /// The ecosystem file to compare with what runs.
        config: Option<PathBuf>,
    },
    /// A full-screen live view: instances, cpu and memory history, last lines; keys to
    /// restart, reload, stop and start.
    Top,
    /// Send a signal to the target's process groups, e.g. `supervise signal SIGUSR1 web`.
    Signal { signal: SignalName, target: Target },
}
