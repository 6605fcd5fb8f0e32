//! Facts about the processes supervise runs: what was spawned, when, how it ended.
//!
//! Pure data, owned by the event loop. Nothing here touches the OS or reads the clock:
//! every function that needs the time takes `now`. Decisions (what to start, stop or
//! kill next) are made by `plan` from these facts; the one decision recorded here is
//! what an exit means for the instance (restart when, finished, errored), because it
//! is taken once, at the moment of the exit, from the policy in force then.

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

/// An instance that will not run again unless the configuration or a user says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// Exited and its policy does not restart it.
    Finished(ExitStatus),
    /// Crashed more than `max_restarts` times in a row.
    Errored,
}

/// A stop that was asked for (shutdown, scale-down, or a leader's leftovers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopRequest {
    pub at: Instant,
    pub killed: bool,
}

/// One instance slot, across its restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: InstanceId,
    /// Fingerprint of the spec it was started from (`plan::diff::generation`).
    pub generation: u64,
    /// The leader's pid while it is alive (not yet reaped).
    pub pid: Option<i32>,
    /// Process group (= session) of the current or last run; the leader's pid.
    pub pgid: Option<i32>,
    /// Members of the group outlived the leader and have not been seen gone yet.
    pub group_alive: bool,
    pub started_at: Option<Instant>,
    /// A readiness fact arrived (sd_notify READY=1, a probe passed).
    pub ready: bool,
    pub ready_at: Option<Instant>,
    /// The last sd_notify `STATUS=` text.
    pub status_text: Option<String>,
    /// The instance said `STOPPING=1`.
    pub notify_stopping: bool,
    /// The last `WATCHDOG=1`.
    pub watchdog_at: Option<Instant>,
    pub probe_in_flight: bool,
    pub last_probe_at: Option<Instant>,
    /// Consecutive failed health checks.
    pub health_failures: u32,
    /// The stop under way was caused by a failure (not ready in time, watchdog): the
    /// exit is judged by the restart policy like a crash, not taken as asked for.
    pub failing: bool,
    pub last_exit: Option<(ExitStatus, Instant)>,
    /// Consecutive runs shorter than `min_uptime`.
    pub crashes: u32,
    /// Restarts over the instance's life (shown in status).
    pub restarts: u32,
    /// Exited and due to start again at this time.
    pub restart_at: Option<Instant>,
    pub stop: Option<StopRequest>,
    pub done: Option<Done>,
}

impl Instance {
    pub fn new(id: InstanceId) -> Instance {
        Instance {
            id,
            generation: 0,
            pid: None,
            pgid: None,
            group_alive: false,
            started_at: None,
            ready: false,
            ready_at: None,
            status_text: None,
            notify_stopping: false,
            watchdog_at: None,
            probe_in_flight: false,
            last_probe_at: None,
            health_failures: 0,
            failing: false,
            last_exit: None,
            crashes: 0,
            restarts: 0,
            restart_at: None,
            stop: None,
            done: None,
        }
    }

    /// Some process of this instance may still exist: its leader or its group.
    pub fn alive(&self) -> bool {
        self.pid.is_some() || self.group_alive
    }

    /// Running and not being stopped.
    pub fn up(&self) -> bool {
        self.pid.is_some() && self.stop.is_none()
    }
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    pub at: Instant,
    /// A second signal: kill everything now.
    pub force: bool,
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
        let slots = self
            .instances
            .values()
            .map(|i| (Who::Slot(i.id.clone()), i));
        let old = self.outgoing.iter().map(|(pgid, i)| (Who::Old(*pgid), i));
        slots.chain(old)
    }

    /// The record whose leader is `pid`.
    pub fn find_leader(&self, id: &InstanceId, pid: i32) -> Option<Who> {
        if self.instances.get(id).is_some_and(|i| i.pid == Some(pid)) {
            return Some(Who::Slot(id.clone()));
        }
        self.outgoing
            .iter()
            .find(|(_, i)| i.pid == Some(pid))
            .map(|(pgid, _)| Who::Old(*pgid))
    }

    pub fn spawned(&mut self, id: &InstanceId, pid: i32, generation: u64, now: Instant) {
        let inst = self
            .instances
            .entry(id.clone())
            .or_insert_with(|| Instance::new(id.clone()));
        if inst.started_at.is_some() {
            inst.restarts += 1;
        }
        if inst.generation != generation {
            // A new version starts with a clean slate.
            inst.crashes = 0;
        }
        inst.generation = generation;
        inst.pid = Some(pid);
        inst.pgid = Some(pid);
        inst.group_alive = false;
        inst.started_at = Some(now);
        // Set by a readiness fact (sd_notify, probe); `started` and `delay` readiness
        // are derived by `plan::is_ready`.
        inst.ready = false;
        inst.ready_at = None;
        inst.status_text = None;
        inst.notify_stopping = false;
        inst.watchdog_at = None;
        inst.probe_in_flight = false;
        inst.last_probe_at = None;
        inst.health_failures = 0;
        inst.failing = false;
        inst.restart_at = None;
        inst.stop = None;
        inst.done = None;
    }

    /// A rolling update begins for this slot: its instance becomes an outgoing one,
    /// serving until its successor is ready. Returns the outgoing record's name.
    pub fn replace(&mut self, id: &InstanceId) -> Option<Who> {
        let inst = self.instances.get(id)?;
        let pgid = inst.pgid.filter(|_| inst.alive())?;
        let mut old = self.instances.remove(id)?;
        // The slot keeps its history (restart count) for status.
        let mut fresh = Instance::new(id.clone());
        fresh.restarts = old.restarts;
        fresh.started_at = old.started_at;
        self.instances.insert(id.clone(), fresh);
        old.restart_at = None;
        self.outgoing.insert(pgid, old);
        Some(Who::Old(pgid))
    }

    /// The leader exited (or could not be started). `group_alive` says whether other
    /// members of its process group remain.
    pub fn exited(
        &mut self,
        who: &Who,
        spec: Option<&AppSpec>,
        status: ExitStatus,
        group_alive: bool,
        now: Instant,
    ) -> Outcome {
        let shutting_down = self.shutdown.is_some();
        let Some(inst) = self.get_mut(who) else {
            return Outcome::Stopped;
        };
        inst.pid = None;
        inst.group_alive = group_alive;
        inst.ready = false;
        let uptime = inst
            .started_at
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or_default();
        inst.last_exit = Some((status.clone(), now));
        let asked = inst.stop.is_some() && !inst.failing;
        let stopping = asked || shutting_down || matches!(who, Who::Old(_));
        match spec {
            Some(spec) if !stopping => {
                let outcome = decide(spec, &mut inst.crashes, &status, uptime);
                match &outcome {
                    Outcome::Restart(delay) => inst.restart_at = Some(now + *delay),
                    Outcome::Finished => inst.done = Some(Done::Finished(status)),
                    Outcome::Errored(_) => inst.done = Some(Done::Errored),
                    Outcome::Stopped => {}
                }
                outcome
            }
            _ => Outcome::Stopped,
        }
    }

    pub fn stop_requested(&mut self, who: &Who, now: Instant) {
        if let Some(inst) = self.get_mut(who) {
            inst.stop = Some(StopRequest {
                at: now,
                killed: false,
            });
        }
    }

    pub fn killed(&mut self, who: &Who, now: Instant) {
        if let Some(inst) = self.get_mut(who) {
            let at = inst.stop.map(|s| s.at).unwrap_or(now);
            inst.stop = Some(StopRequest { at, killed: true });
        }
    }

    pub fn group_gone(&mut self, who: &Who) {
        if let Some(inst) = self.get_mut(who) {
            inst.group_alive = false;
        }
    }

    pub fn mark_ready(&mut self, who: &Who, now: Instant) {
        if let Some(inst) = self.get_mut(who) {
            if !inst.ready {
                inst.ready = true;
                inst.ready_at = Some(now);
            }
        }
    }

    pub fn probe_started(&mut self, who: &Who, now: Instant) {
        if let Some(inst) = self.get_mut(who) {
            inst.probe_in_flight = true;
            inst.last_probe_at = Some(now);
        }
    }

    pub fn probe_done(&mut self, who: &Who, now: Instant) {
        if let Some(inst) = self.get_mut(who) {
            inst.probe_in_flight = false;
            inst.last_probe_at = Some(now);
        }
    }

    /// Record a notify message's facts (READY=1 only counts for notify readiness).
    pub fn notified(
        &mut self,
        who: &Who,
        msg: &crate::os::sd_notify::NotifyMessage,
        ready_counts: bool,
        now: Instant,
    ) {
        if msg.ready && ready_counts {
            self.mark_ready(who, now);
        }
        if let Some(inst) = self.get_mut(who) {
            if let Some(text) = &msg.status {
                inst.status_text = Some(text.clone());
            }
            inst.notify_stopping |= msg.stopping;
            if msg.watchdog {
                inst.watchdog_at = Some(now);
            }
        }
    }

    /// A stop caused by a failure: the exit will be judged by the restart policy.
    pub fn failing(&mut self, who: &Who) {
        if let Some(inst) = self.get_mut(who) {
            inst.failing = true;
        }
    }

    /// A rolling update's new instance failed: the old one, still serving, takes its
    /// slot back and the new one becomes the outgoing instance (to be stopped).
    pub fn rollback(&mut self, id: &InstanceId) -> Option<Who> {
        let old_key = *self
            .outgoing
            .iter()
            .find(|(_, o)| &o.id == id && o.alive() && o.stop.is_none())?
            .0;
        let new = self.instances.get(id)?;
        let new_key = new.pgid.filter(|_| new.alive())?;
        let old = self.outgoing.remove(&old_key)?;
        let new = self.instances.insert(id.clone(), old)?;
        self.outgoing.insert(new_key, new);
        Some(Who::Old(new_key))
    }

    /// `start`/`restart` of an instance that errored, finished or backs off: a clean
    /// slate, started at once.
    pub fn reset(&mut self, id: &InstanceId) {
        if let Some(inst) = self.instances.get_mut(id) {
            inst.done = None;
            inst.crashes = 0;
            inst.restart_at = None;
        }
    }

    /// `reload`: mark the instance outdated, so plan replaces it by the app's update
    /// strategy as if its spec had changed.
    pub fn invalidate(&mut self, id: &InstanceId) {
        if let Some(inst) = self.instances.get_mut(id) {
            inst.generation = 0;
        }
    }

    pub fn forget(&mut self, who: &Who) {
        match who {
            Who::Slot(id) => self.instances.remove(id),
            Who::Old(pgid) => self.outgoing.remove(pgid),
        };
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
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => !status.success(),
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
