//! Facts about the processes supervise runs: what was spawned, when, how it ended.
//!
//! Pure data, owned by the event loop and changed in one place: [`observe`] records a
//! [`Fact`]. Nothing here touches the OS or reads the clock: the time comes with the
//! fact. Decisions (what to start, stop or kill next) are made by `plan` from these
//! facts; the one decision recorded here is what an exit means for the instance
//! (restart when, finished, errored), because it is taken once, at the moment of the
//! exit, from the policy in force then.

mod instance;
mod observe;
mod status;

pub use instance::{Ended, Instance, Next, Phase, Run, Stop, Why};
pub use observe::{observe, Fact, Reading};
pub use status::{state_of, State};

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::config::{AppSpec, RestartPolicy};

/// `web.1`: an app name and an instance number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceId {
    pub app: String,
    pub index: u32,
}

impl InstanceId {
    pub fn new(app: &str, index: u32) -> InstanceId {
        InstanceId {
            app: app.to_string(),
            index,
        }
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.app, self.index)
    }
}

/// One record of the observed state: the current instance of a slot, or an old one
/// that a rolling update is replacing (named by its process group, unique while any
/// of its processes lives).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Who {
    Slot(InstanceId),
    Old(i32),
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(Signal),
    /// fork/exec itself failed; the text is the OS error.
    SpawnFailed(String),
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        *self == ExitStatus::Code(0)
    }

    /// A clean exit by an app's `success_exit_codes`.
    pub fn clean(&self, success_exit_codes: &[i32]) -> bool {
        matches!(self, ExitStatus::Code(c) if success_exit_codes.contains(c))
    }

    /// The shell's convention: a signal death is 128 + the signal number.
    pub fn code(&self) -> i32 {
        match self {
            ExitStatus::Code(c) => *c,
            ExitStatus::Signal(s) => 128 + *s as i32,
            ExitStatus::SpawnFailed(_) => 127,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "code {c}"),
            ExitStatus::Signal(s) => write!(f, "signal {}", s.as_str()),
            ExitStatus::SpawnFailed(e) => write!(f, "failed to start: {e}"),
        }
    }
}

/// One sd_notify message, as far as supervise acts on it (`os::sd_notify` parses the
/// datagram into this). Keys absent from the datagram leave their field at its default.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct NotifyMessage {
    /// `READY=1`
    pub ready: bool,
    /// `STOPPING=1`
    pub stopping: bool,
    /// `RELOADING=1`
    pub reloading: bool,
    /// `WATCHDOG=1` (a keep-alive; `WATCHDOG=trigger` is ignored)
    pub watchdog: bool,
    /// `STATUS=...`, control characters replaced by spaces; `STATUS=` gives `Some("")`.
    pub status: Option<String>,
    /// `MAINPID=n` (n > 0)
    pub main_pid: Option<i32>,
    /// `ERRNO=n` (n >= 0)
    pub errno: Option<i32>,
}

/// What a probe is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    Ready,
    Health,
}

/// What an exit means for the instance, decided once when it is observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Start again after this delay (zero: at once).
    Restart(Duration),
    Finished,
    /// Gave up after this many crashes in a row.
    Errored(u32),
    /// The exit was asked for; nothing to decide.
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    pub at: Instant,
    /// A second signal: kill everything now.
    pub force: bool,
    /// A critical app failed for good: supervise leaves with its exit code, and the
    /// stop begins at once (no `shutdown_delay`).
    pub exit_code: Option<i32>,
}

/// File events not acted on yet; `plan` debounces them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The ecosystem file or an env_file: the first and the last event of the burst.
    pub config: Option<(Instant, Instant)>,
    /// An app's `watch` paths: the last event.
    pub apps: BTreeMap<String, Instant>,
}

/// What a control command asks of its instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Start,
    Stop,
    Restart,
    Reload,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Restart => "restart",
            Verb::Reload => "reload",
        }
    }
}

/// A control command waiting for its effect to be seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Its number, given when it is observed.
    pub ticket: u64,
    /// Who to answer (the control connection's number).
    pub asker: usize,
    pub verb: Verb,
    pub targets: Vec<InstanceId>,
    pub since: Instant,
    pub deadline: Instant,
}

/// Everything the loop knows about running things.
#[derive(Debug, Default)]
pub struct Observed {
    pub instances: BTreeMap<InstanceId, Instance>,
    /// Instances replaced by a rolling update, still running or being stopped.
    pub outgoing: BTreeMap<i32, Instance>,
    pub shutdown: Option<Shutdown>,
    /// The last reload's error, kept until a valid version is applied.
    pub config_error: Option<String>,
    /// Per app, a generation whose rolling update failed (its new instance never got
    /// ready): the app stays on the old version until the file changes again.
    pub failed_generation: BTreeMap<String, u64>,
    /// Per app, what the rolled-back new instance did (for the log and `reload`).
    pub rollback_why: BTreeMap<String, String>,
    pub changes: Changes,
    /// When resident memory was last sampled for `max_memory`.
    pub memory_sampled_at: Option<Instant>,
    /// Control commands not answered yet.
    pub commands: Vec<Command>,
    /// Apps whose start waits for a dependency that failed for good, with the reason.
    pub blocked: BTreeMap<String, String>,
    /// The last command's ticket.
    pub tickets: u64,
    /// Per app with `schedule` or `cron_restart`: its next time.
    pub schedules: BTreeMap<String, Armed>,
    /// Versions of the ecosystem file applied since the start, and when the last was.
    pub reloads: u64,
    pub reloaded_at: Option<Instant>,
}

/// The next time of an app's `schedule` or `cron_restart`, as the loop sleeps for it
/// (`at`, monotonic) and as people read it (`wall`). `None`: the pattern never matches
/// again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Armed {
    pub times: crate::config::CronTimes,
    pub at: Option<Instant>,
    pub wall: Option<std::time::SystemTime>,
}

impl Observed {
    pub fn get(&self, who: &Who) -> Option<&Instance> {
        match who {
            Who::Slot(id) => self.instances.get(id),
            Who::Old(pgid) => self.outgoing.get(pgid),
        }
    }

    fn get_mut(&mut self, who: &Who) -> Option<&mut Instance> {
        match who {
            Who::Slot(id) => self.instances.get_mut(id),
            Who::Old(pgid) => self.outgoing.get_mut(pgid),
        }
    }

    /// Every record, current and outgoing, with its name.
    pub fn all(&self) -> impl Iterator<Item = (Who, &Instance)> {
        self.all_where(|_| true)
    }

    /// The records for which `wanted` holds, with their names: only those are named
    /// (a slot's name is a copy of its id, which a turn at 500 instances paid for each).
    pub fn all_where<'a>(
        &'a self,
        wanted: impl Fn(&Instance) -> bool + Copy + 'a,
    ) -> impl Iterator<Item = (Who, &'a Instance)> + 'a {
        let slots = self
            .instances
            .iter()
            .filter(move |(_, i)| wanted(i))
            .map(|(id, i)| (Who::Slot(id.clone()), i));
        let old = self
            .outgoing
            .iter()
            .filter(move |(_, i)| wanted(i))
            .map(|(pgid, i)| (Who::Old(*pgid), i));
        slots.chain(old)
    }

    /// The record whose leader is `pid`.
    pub fn find_leader(&self, id: &InstanceId, pid: i32) -> Option<Who> {
        if self.instances.get(id).is_some_and(|i| i.pid() == Some(pid)) {
            return Some(Who::Slot(id.clone()));
        }
        self.outgoing
            .iter()
            .find(|(_, i)| i.pid() == Some(pid))
            .map(|(pgid, _)| Who::Old(*pgid))
    }

    /// The live record whose process group is `pgid`.
    pub fn find_group(&self, pgid: i32) -> Option<Who> {
        self.all()
            .find(|(_, i)| i.group() == Some(pgid))
            .map(|(who, _)| who)
    }
}

/// The restart policy applied to one exit: updates the crash count and says what next.
pub fn decide(spec: &AppSpec, crashes: &mut u32, status: &ExitStatus, uptime: Duration) -> Outcome {
    let crashed = uptime < spec.min_uptime;
    if crashed {
        *crashes += 1;
    } else {
        *crashes = 0;
    }
    let restart = match spec.restart {
        // A job (`schedule`) that exits cleanly is done until its next time.
        RestartPolicy::Always if spec.schedule.is_some() => !status.success(),
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => !status.clean(&spec.success_exit_codes),
        RestartPolicy::Never => false,
    };
    if !restart {
        return Outcome::Finished;
    }
    if crashed && spec.max_restarts > 0 && *crashes > spec.max_restarts {
        return Outcome::Errored(*crashes);
    }
    Outcome::Restart(backoff(spec.restart_delay, *crashes, spec.backoff_max))
}

/// Delay before restart number `crashes` of a crash loop: `restart_delay` doubled per
/// consecutive crash, capped at `backoff_max`. No crash (a long run ended): at once.
pub fn backoff(restart_delay: Duration, crashes: u32, backoff_max: Duration) -> Duration {
    if crashes == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(crashes - 1).unwrap_or(u32::MAX);
    restart_delay
        .checked_mul(factor)
        .unwrap_or(backoff_max)
        .min(backoff_max)
}

#[cfg(test)]
mod tests;
