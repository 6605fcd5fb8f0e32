//! One instance slot across its runs: the phase it is in (not started, running, ended)
//! and the facts of its current run. Each phase carries only what exists in it, so a
//! run that never started has no pid and an ended run has no readiness.

use std::time::{Duration, Instant};

use super::{ExitStatus, InstanceId};
use crate::config::ReadySpec;

/// Why a stop was sent (or is wanted). It chooses the event's words and how the exit
/// that follows is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Asked for: `supervise stop`, a scale-down, a removed app, shutdown, an old
    /// instance whose successor is ready, leftovers of a group.
    Asked,
    /// `supervise restart`.
    Restart,
    /// `health.failures` checks in a row failed.
    Unhealthy,
    /// The group's resident memory passed `max_memory`.
    Memory { used: u64, limit: u64 },
    /// Not ready within `ready_timeout` (no rolling update to fall back on).
    NotReady,
    /// A rolling update's new instance was not ready in time; the old one stays.
    RolledBack,
    /// No `WATCHDOG=1` within `watchdog`.
    Watchdog,
}

impl Why {
    /// A stop caused by a failure: the exit is judged by the restart policy like a
    /// crash, not taken as asked for.
    pub fn failure(&self) -> bool {
        matches!(self, Why::NotReady | Why::Watchdog)
    }
}

/// A stop that was sent: when, whether SIGKILL followed, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    pub at: Instant,
    pub killed: bool,
    pub why: Why,
}

/// The facts of a run whose leader is alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The leader; also the id of its process group (each instance is its own session).
    pub pid: i32,
    pub started_at: Instant,
    /// A readiness fact arrived (sd_notify READY=1, a probe passed, a delay recorded).
    pub ready_at: Option<Instant>,
    /// The instance said `STOPPING=1`.
    pub notify_stopping: bool,
    /// The last `WATCHDOG=1`.
    pub watchdog_at: Option<Instant>,
    pub probe_in_flight: bool,
    pub last_probe_at: Option<Instant>,
    /// Consecutive failed health checks.
    pub health_failures: u32,
    /// The last resident memory sample of its group, in bytes.
    pub memory: Option<u64>,
    /// A stop decided by a one-off event (`supervise restart`, a rollback), to be sent.
    pub stop_wanted: Option<Why>,
    pub stop: Option<Stop>,
}

/// What follows a run that ended, decided once when the exit is observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Start again at this time.
    Restart(Instant),
    /// Exited and its policy does not restart it.
    Finished(ExitStatus),
    /// Crashed more than `max_restarts` times in a row.
    Errored,
    /// The exit was asked for: nothing follows by itself.
    Stopped,
}

/// A run whose leader exited, or could not be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The run's process group while members outlived the leader.
    pub leftovers: Option<i32>,
    /// The stop sent to the run (or to its leftovers).
    pub stop: Option<Stop>,
    pub next: Next,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// No run yet in this slot (a new slot, or one whose run a rolling update moved out).
    New,
    Running(Run),
    Ended(Ended),
}

/// One instance slot, across its restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: InstanceId,
    /// Fingerprint of the spec its current or last run started from
    /// (`plan::diff::generation`).
    pub generation: u64,
    /// `supervise reload` asked for a new run by the app's update strategy.
    pub outdated: bool,
    pub phase: Phase,
    /// The last sd_notify `STATUS=` text of the current or last run.
    pub status_text: Option<String>,
    pub last_exit: Option<(ExitStatus, Instant)>,
    /// Consecutive runs shorter than `min_uptime`.
    pub crashes: u32,
    /// Runs started in this slot, failed starts included.
    pub runs: u32,
}

impl Instance {
    pub fn new(id: InstanceId) -> Instance {
        Instance {
            id,
            generation: 0,
            outdated: false,
            phase: Phase::New,
            status_text: None,
            last_exit: None,
            crashes: 0,
            runs: 0,
        }
    }

    pub fn run(&self) -> Option<&Run> {
        match &self.phase {
            Phase::Running(run) => Some(run),
            _ => None,
        }
    }

    pub(super) fn run_mut(&mut self) -> Option<&mut Run> {
        match &mut self.phase {
            Phase::Running(run) => Some(run),
            _ => None,
        }
    }

    pub fn ended(&self) -> Option<&Ended> {
        match &self.phase {
            Phase::Ended(ended) => Some(ended),
            _ => None,
        }
    }

    /// The leader's pid while it runs.
    pub fn pid(&self) -> Option<i32> {
        self.run().map(|r| r.pid)
    }

    /// The process group while any process of the instance may exist.
    pub fn group(&self) -> Option<i32> {
        match &self.phase {
            Phase::Running(run) => Some(run.pid),
            Phase::Ended(ended) => ended.leftovers,
            Phase::New => None,
        }
    }

    /// Some process of this instance may still exist: its leader or its group.
    pub fn alive(&self) -> bool {
        self.group().is_some()
    }

    /// Running and not being stopped.
    pub fn up(&self) -> bool {
        self.run().is_some_and(|r| r.stop.is_none())
    }

    /// The stop sent to the current run or its leftovers.
    pub fn stop(&self) -> Option<&Stop> {
        match &self.phase {
            Phase::Running(run) => run.stop.as_ref(),
            Phase::Ended(ended) => ended.stop.as_ref(),
            Phase::New => None,
        }
    }

    pub(super) fn stop_mut(&mut self) -> Option<&mut Option<Stop>> {
        match &mut self.phase {
            Phase::Running(run) => Some(&mut run.stop),
            Phase::Ended(ended) => Some(&mut ended.stop),
            Phase::New => None,
        }
    }

    pub fn started_at(&self) -> Option<Instant> {
        self.run().map(|r| r.started_at)
    }

    /// Restarts over the slot's life (shown in status).
    pub fn restarts(&self) -> u32 {
        self.runs.saturating_sub(1)
    }

    /// Since when the running instance is ready by its app's `ready` kind, if it is or
    /// will be without a further fact: `started` at once, `delay` that long after the
    /// start (possibly in the future), the other kinds when their fact arrived.
    pub fn ready_since(&self, ready: Option<&ReadySpec>) -> Option<Instant> {
        let run = self.run().filter(|r| r.stop.is_none())?;
        match ready {
            None | Some(ReadySpec::Started) => Some(run.started_at),
            Some(ReadySpec::Delay(delay)) => Some(run.started_at + *delay),
            Some(_) => run.ready_at,
        }
    }

    /// Ready now (`ready_since` has passed).
    pub fn is_ready(&self, ready: Option<&ReadySpec>, now: Instant) -> bool {
        self.ready_since(ready).is_some_and(|at| at <= now)
    }

    /// How long the run lasted, measured at its exit.
    pub(super) fn uptime(&self, now: Instant) -> Duration {
        self.started_at()
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or_default()
    }
}
