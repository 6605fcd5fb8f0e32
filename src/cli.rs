//! The command line, defined once: `main` parses it, and the man pages and shell
//! completions in `man/` are generated from it (see `tests/it/docs.rs`). Completions are
//! computed by `supervise` itself when the shell asks (clap_complete's `COMPLETE=SHELL`
//! protocol), so they offer the running apps' names and the signal names.

pub mod client;
pub mod scale;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

use crate::control::protocol::{Request, SignalName, Target};

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
    subcommand_precedence_over_arg = true
)]
pub struct Cli {
    /// The ecosystem file (default: ./ecosystem.toml, ./ecosystem.yaml, ./ecosystem.yml).
    pub config: Option<PathBuf>,

    /// The control socket (default: $SUPERVISE_SOCKET, settings.socket,
    /// $XDG_RUNTIME_DIR/supervise.sock, /run/supervise.sock for root,
    /// /tmp/supervise-UID.sock). Accepted before or after the subcommand.
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
        /// Also fail when shutdown_delay plus the longest chain of stop_timeouts along
        /// depends_on exceeds this (e.g. Kubernetes' terminationGracePeriodSeconds: 30s).
        #[arg(long, value_name = "DURATION")]
        grace: Option<String>,
    },
    /// Show every instance (or those of TARGET): pid, state, restarts, uptime, cpu,
    /// memory, last exit, readiness.
    #[command(visible_alias = "ls")]
    Status {
        /// all | APP | APP.N
        #[arg(add = targets())]
        target: Option<Target>,
        /// Print JSON for scripts instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Print the last lines of output of all apps, an app, or one instance, with
    /// supervise's own events about them (started, exited, restarting, errored).
    Logs(LogsArgs),
    /// Stop and start again (new pids); answers once running and ready.
    Restart {
        /// all | APP | APP.N
        #[arg(add = targets())]
        target: Target,
    },
    /// Replace instances one at a time, each new one ready before the old one stops.
    /// Without TARGET: re-read the ecosystem file now, as SIGHUP does.
    Reload {
        /// all | APP | APP.N
        #[arg(add = targets())]
        target: Option<Target>,
    },
    /// Stop and hold stopped until `supervise start`.
    Stop {
        /// all | APP | APP.N
        #[arg(add = targets())]
        target: Target,
    },
    /// Start what `stop` held, or what errored or finished; answers once running and
    /// ready.
    Start {
        /// all | APP | APP.N
        #[arg(add = targets())]
        target: Target,
    },
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
    Signal {
        /// SIGUSR1, USR1, usr1 or a number.
        #[arg(add = ArgValueCandidates::new(signal_candidates))]
        signal: SignalName,
        /// all | APP | APP.N
        #[arg(add = targets())]
        target: Target,
    },
    /// Set an app's `instances` in the ecosystem file itself (comments and layout kept);
    /// the running supervise applies the file as on any edit.
    Scale {
        /// The app.
        #[arg(add = ArgValueCandidates::new(app_candidates))]
        app: String,
        /// How many instances.
        instances: u32,
    },
    /// Stop every app gracefully and exit, as SIGTERM does.
    Shutdown,
    /// Print the shell completion script (install: see the README).
    Completions {
        /// The shell.
        shell: CompletionShell,
    },
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// all | APP | APP.N
    #[arg(default_value = "all", add = targets())]
    pub target: Target,
    /// How many lines.
    #[arg(short = 'n', long = "lines", default_value_t = 20)]
    pub lines: usize,
    /// Keep printing new lines as they come.
    #[arg(short, long)]
    pub follow: bool,
    /// Only standard output.
    #[arg(long, conflicts_with = "err")]
    pub out: bool,
    /// Only standard error.
    #[arg(long)]
    pub err: bool,
    /// Start each line with its time (RFC 3339, UTC, milliseconds).
    #[arg(long)]
    pub timestamps: bool,
}

/// The shells `supervise completions` writes for.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

impl CompletionShell {
    pub const ALL: [CompletionShell; 5] = [
        CompletionShell::Bash,
        CompletionShell::Zsh,
        CompletionShell::Fish,
        CompletionShell::Elvish,
        CompletionShell::Powershell,
    ];

    fn name(self) -> &'static str {
        match self {
            CompletionShell::Bash => "bash",
            CompletionShell::Zsh => "zsh",
            CompletionShell::Fish => "fish",
            CompletionShell::Elvish => "elvish",
            CompletionShell::Powershell => "powershell",
        }
    }
}

/// The script that registers supervise's completions in `shell`: it asks `supervise`
/// itself (`COMPLETE=SHELL supervise -- ARGS`) for candidates.
pub fn completion_script(shell: CompletionShell) -> Vec<u8> {
    let mut out = Vec::new();
    let shells = clap_complete::env::Shells::builtins();
    let completer = shells.completer(shell.name()).expect("a built-in shell");
    completer
        .write_registration("COMPLETE", "supervise", "supervise", "supervise", &mut out)
        .expect("writing to memory");
    out
}

/// Answer the shell's completion request and exit, when this process is one
/// (`COMPLETE` set); otherwise return.
pub fn complete_if_asked(command: impl Fn() -> clap::Command + 'static) {
    clap_complete::CompleteEnv::with_factory(command).complete();
}

/// Signal names offered by completion (any signal name or number is accepted).
pub const SIGNALS: &[&str] = &[
    "SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGCONT",
    "SIGSTOP", "SIGTSTP", "SIGWINCH", "SIGALRM",
];

fn signal_candidates() -> Vec<CompletionCandidate> {
    SIGNALS.iter().map(CompletionCandidate::new).collect()
}

fn targets() -> ArgValueCandidates {
    ArgValueCandidates::new(target_candidates)
}

/// `all`, every app and every instance of the running supervise, else the apps of the
/// ecosystem file in the current folder.
fn target_candidates() -> Vec<CompletionCandidate> {
    let mut names = vec!["all".to_string()];
    let (apps, instances) = known_names();
    names.extend(apps);
    names.extend(instances);
    names.into_iter().map(CompletionCandidate::new).collect()
}

fn app_candidates() -> Vec<CompletionCandidate> {
    known_names()
        .0
        .into_iter()
        .map(CompletionCandidate::new)
        .collect()
}

/// (apps, instances) as the running supervise reports them, or the apps of the
/// ecosystem file found in the current folder. Quick: completion must not hang.
fn known_names() -> (Vec<String>, Vec<String>) {
    let socket = client::client_socket(None);
    let answer =
        crate::control::client::request(&socket, Request::Status, Duration::from_millis(500));
    if let Some(report) = answer.ok().and_then(|r| r.status) {
        let mut apps: Vec<String> = report.instances.iter().map(|i| i.app.clone()).collect();
        apps.dedup();
        let instances = report
            .instances
            .iter()
            .map(|i| format!("{}.{}", i.app, i.index))
            .collect();
        return (apps, instances);
    }
    let apps = crate::config::find_default(None)
        .ok()
        .and_then(|p| crate::config::load(&p).ok())
        .map(|eco| eco.apps.iter().map(|a| a.name.clone()).collect())
        .unwrap_or_default();
    (apps, Vec::new())
}
