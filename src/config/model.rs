//! The typed, validated ecosystem: what the rest of supervise reads.
//!
//! Everything here is already checked and resolved (defaults applied, paths absolute,
//! `instances = "max"` turned into a number, `env_file` read and merged), so the runtime
//! never re-interprets raw text. Equality on `AppSpec` is what a reload diffs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

pub use super::schedule::CronTimes;

/// A whole ecosystem file, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Ecosystem {
    /// The file as given (absolute), used in messages and for reloads.
    pub path: PathBuf,
    pub settings: Settings,
    /// Apps in the order the file lists them.
    pub apps: Vec<AppSpec>,
}

impl Ecosystem {
    pub fn app(&self, name: &str) -> Option<&AppSpec> {
        self.apps.iter().find(|a| a.name == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[settings]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub socket: Option<PathBuf>,
    /// Default `stop_timeout` of apps.
    pub stop_timeout: Duration,
    pub log_format: LogFormat,
    pub log_timestamps: bool,
    pub log_dir: Option<PathBuf>,
    pub log_max_size: u64,
    pub log_keep: u32,
    pub merge_logs: bool,
    /// The read-only HTTP endpoint (`/livez`, `/readyz`, `/metrics`), when set.
    pub http: Option<std::net::SocketAddr>,
    /// On SIGTERM: not ready at once, the stop begins this much later.
    pub shutdown_delay: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            socket: None,
            stop_timeout: Duration::from_secs(10),
            log_format: LogFormat::Text,
            log_timestamps: false,
            log_dir: None,
            log_max_size: 10 * 1024 * 1024,
            log_keep: 5,
            merge_logs: false,
            http: None,
            shutdown_delay: Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdateStrategy {
    #[default]
    Rolling,
    Recreate,
}

/// A `listen` entry, syntax-checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub enum ReadySpec {
    #[default]
    Started,
    Notify,
    Tcp(String),
    Http(String),
    Exec(CommandLine),
    Delay(Duration),
}

#[derive(Debug, Clone, PartialEq)]
pub enum HealthCheck {
    Http(String),
    Tcp(String),
    Exec(CommandLine),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthSpec {
    pub check: HealthCheck,
    pub interval: Duration,
    pub timeout: Duration,
    pub failures: u32,
}

/// One resource limit; `None` is "infinity".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    pub resource: nix::sys::resource::Resource,
    pub value: Option<u64>,
}

/// What a dependent waits for before it starts (docker compose's three conditions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Condition {
    /// Every instance of the dependency runs.
    Started,
    /// Every instance is ready (or finished cleanly).
    #[default]
    Ready,
    /// Every instance exited with a success code (a one-shot job).
    Completed,
}

impl Condition {
    pub const NAMES: [&'static str; 3] = ["started", "ready", "completed"];
    pub const ALL: [Condition; 3] = [Condition::Started, Condition::Ready, Condition::Completed];

    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Ready => "ready",
            Condition::Completed => "completed",
        }
    }
}

/// One `depends_on` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dependency {
    pub app: String,
    pub condition: Condition,
}

impl From<&str> for Dependency {
    /// `depends_on = ["db"]`: wait until db is ready.
    fn from(app: &str) -> Dependency {
        Dependency {
            app: app.to_string(),
            condition: Condition::Ready,
        }
    }
}

/// The program to execute: already resolved against `PATH` (or `/bin/sh -c` with
/// `shell = true`), so spawning never searches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommandLine {
    /// Absolute path of the executable.
    pub program: PathBuf,
    /// argv, including argv[0] as the user wrote it.
    pub argv: Vec<String>,
}

/// One `[apps.NAME]` table, validated and with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSpec {
    pub name: String,
    pub command: CommandLine,
    pub shell: bool,
    /// Resolved count (`"max"` already turned into the CPU count).
    pub instances: u32,
    /// The file said `instances = "max"`.
    pub instances_max: bool,
    /// Absolute working directory.
    pub cwd: PathBuf,
    /// The app's own environment: `env_file` entries overridden by `env`.
    pub env: BTreeMap<String, String>,
    /// Absolute path, when set (watched for changes by the reload issue).
    pub env_file: Option<PathBuf>,
    pub instance_var: Option<String>,
    pub restart: RestartPolicy,
    pub restart_delay: Duration,
    pub backoff_max: Duration,
    pub min_uptime: Duration,
    /// 0 = never give up.
    pub max_restarts: u32,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    pub listen: Vec<ListenAddr>,
    /// Node apps with `listen`: pass the preload that shares the sockets with an
    /// unchanged `server.listen(PORT)` and drains on the stop signal (SPEC §6).
    pub listen_adapter: bool,
    pub ready: ReadySpec,
    pub ready_timeout: Duration,
    pub health: Option<HealthSpec>,
    pub watchdog: Option<Duration>,
    pub depends_on: Vec<Dependency>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub limits: Vec<Limit>,
    pub max_memory: Option<u64>,
    /// File mode creation mask for the instance (`umask = "0027"`).
    pub umask: Option<u32>,
    /// Absolute paths.
    pub watch: Vec<PathBuf>,
    pub ignore: Vec<String>,
    pub update: UpdateStrategy,
    /// `port = 3000`: instance N gets `PORT` and `{port}` = 3000 + N.
    pub port: Option<u16>,
    /// A job: its instances run at these times instead of at start-up.
    pub schedule: Option<CronTimes>,
    /// A rolling restart at these times (PM2's `cron_restart`).
    pub cron_restart: Option<CronTimes>,
    /// Rolling updates: how long a new instance must stay ready (and healthy) before
    /// its old one is stopped; an exit or a failed health check meanwhile rolls back.
    pub min_ready: Duration,
    /// Rolling updates: how many instances are replaced at once.
    pub max_surge: u32,
    /// Failing for good (errored, or finished unclean) stops everything (SPEC §7).
    pub critical: bool,
    /// Exit codes that count as a clean exit (default `[0]`).
    pub success_exit_codes: Vec<i32>,
}

impl AppSpec {
    /// A spec with every default, for tests and as the base the parser fills in.
    pub fn new(name: &str, program: &str, argv: &[&str]) -> AppSpec {
        AppSpec {
            name: name.to_string(),
            command: CommandLine {
                program: PathBuf::from(program),
                argv: argv.iter().map(|s| s.to_string()).collect(),
            },
            shell: false,
            instances: 1,
            instances_max: false,
            cwd: PathBuf::from("/"),
            env: BTreeMap::new(),
            env_file: None,
            instance_var: None,
            restart: RestartPolicy::Always,
            restart_delay: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            min_uptime: Duration::from_secs(1),
            max_restarts: 10,
            stop_signal: Signal::SIGTERM,
            stop_timeout: Duration::from_secs(10),
            listen: Vec::new(),
            listen_adapter: true,
            ready: ReadySpec::Started,
            ready_timeout: Duration::from_secs(30),
            health: None,
            watchdog: None,
            depends_on: Vec::new(),
            user: None,
            group: None,
            limits: Vec::new(),
            max_memory: None,
            umask: None,
            watch: Vec::new(),
            ignore: Vec::new(),
            update: UpdateStrategy::Rolling,
            port: None,
            schedule: None,
            cron_restart: None,
            min_ready: Duration::ZERO,
            max_surge: 1,
            critical: false,
            success_exit_codes: vec![0],
        }
    }
}
