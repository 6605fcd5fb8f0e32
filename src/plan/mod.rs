//! The reconcile function: desired state (the ecosystem) + observed state + now -> actions.
//!
//! Pure and level-triggered: it looks at the whole state every time and says what to do
//! next, plus the earliest time it wants to be asked again (`wake_at`). Deadlines are
//! derived from recorded facts (a restart time, a stop's start + `stop_timeout`, the
//! last file event + the debounce), so nothing holds a timer. Every decision of the
//! supervisor is taken here: restarts, rolling updates and rollbacks, readiness
//! timeouts, health, watchdog and `max_memory` verdicts, the reload debounce, and when
//! a control command is done. The runtime records the effect of every action as a
//! fact (`state::observe`) before it asks again, so the same action is never emitted
//! twice.

pub mod checks;
pub mod commands;
pub mod diff;
pub mod order;
pub mod preview;
pub mod readiness;
pub mod reload;
mod rollout;
pub mod schedule;
pub mod shutdown;

pub use crate::state::Purpose;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::config::{AppSpec, Condition, Ecosystem, UpdateStrategy};
use crate::state::{Instance, InstanceId, Next, Observed, Phase, Who, Why};

/// What supervise is asked to run: the file, plus per-app restart epochs (a `watch`
/// trigger bumps one, and the instances are replaced as if their spec had changed).
#[derive(Debug, Clone)]
pub struct Desired {
    pub eco: Ecosystem,
    pub epochs: BTreeMap<String, u64>,
    /// Instances a user stopped (`supervise stop`): kept stopped until `start`.
    pub holds: BTreeSet<InstanceId>,
}

impl Desired {
    pub fn new(eco: Ecosystem) -> Desired {
        Desired {
            eco,
            epochs: BTreeMap::new(),
            holds: BTreeSet::new(),
        }
    }

    pub fn app(&self, name: &str) -> Option<&AppSpec> {
        self.eco.app(name)
    }

    pub fn generation(&self, app: &AppSpec) -> u64 {
        diff::generation(app, self.epochs.get(&app.name).copied().unwrap_or(0))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start (or restart) this slot's instance now.
    Spawn(InstanceId),
    /// Rolling update: the running instance becomes outgoing, a successor will start.
    Replace(InstanceId),
    /// Send the app's `stop_signal` to the instance's process group.
    Stop(Who, Why),
    /// SIGKILL the instance's process group.
    Kill(Who),
    /// The instance is gone and no longer wanted: drop its record.
    Forget(Who),
    /// Run a readiness or health check of this instance.
    Probe(Who, Purpose),
    /// A `delay` readiness has elapsed: record the instance as ready.
    Ready(InstanceId),
    /// A rolling update's new instance was not ready within `ready_timeout`, or did not
    /// stay up and healthy for `min_ready` (the text says which): the old one takes the
    /// slot back, the app stays off this generation.
    Rollback(InstanceId, u64, String),
    /// Sample the resident memory of these instances' groups (`max_memory`).
    SampleMemory(Vec<(Who, i32)>),
    /// The ecosystem file changed and the debounce has passed: read it again.
    Reload,
    /// An app's watched files changed and the debounce has passed: roll the app.
    WatchRestart(String),
    /// An app's start waits for a dependency that failed for good (`Some`, with the
    /// reason), or no longer does (`None`).
    Blocked { app: String, reason: Option<String> },
    /// A control command is done (or failed, or ran out of time): answer it.
    Answer {
        ticket: u64,
        asker: usize,
        result: Result<String, String>,
    },
    /// Compute the app's next `schedule` / `cron_restart` time (from the wall clock).
    ArmSchedule(String),
    /// A job's time came: start a fresh run of its instances, or (`skip`) log that the
    /// previous run is still going.
    RunJob { app: String, skip: bool },
    /// A `cron_restart` time came: roll the app's instances.
    ScheduledRestart(String),
    /// The app lost its schedule.
    DropSchedule(String),
    /// A critical app failed for good with this exit code: stop everything, then
    /// leave with it.
    CriticalFailed(InstanceId, i32),
    /// Nothing is left to run: leave with this code.
    Exit(i32),
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub wake_at: Option<Instant>,
}

impl Plan {
    fn wake(&mut self, at: Instant) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }
}

/// How to stop an instance: its app's signal and timeout, or defaults for an instance
/// whose app is no longer in the file.
pub fn stop_policy(desired: &Desired, app: &str) -> (Signal, Duration) {
    match desired.app(app) {
        Some(spec) => (spec.stop_signal, spec.stop_timeout),
        None => (Signal::SIGTERM, desired.eco.settings.stop_timeout),
    }
}

pub fn plan(desired: &Desired, observed: &Observed, now: Instant) -> Plan {
    let mut plan = Plan::default();
    commands::plan_commands(desired, observed, now, &mut plan);
    if let Some(shutdown) = observed.shutdown {
        if !shutdown::draining(desired, observed, &shutdown, now, &mut plan) {
            plan_shutdown(desired, observed, shutdown.force, now, &mut plan);
        }
        return plan;
    }
    if let Some((id, code)) = shutdown::critical_failure(desired, observed) {
        plan.actions.push(Action::CriticalFailed(id, code));
        return plan;
    }
    reload::plan_changes(desired, observed, now, &mut plan);
    schedule::plan_schedules(desired, observed, now, &mut plan);
    checks::plan_memory(desired, observed, now, &mut plan);
    for i in order::start_order(&desired.eco) {
        plan_app(&desired.eco.apps[i], desired, observed, now, &mut plan);
    }
    for inst in observed.instances.values() {
        if desired.app(&inst.id.app).is_none() {
            retire(Who::Slot(inst.id.clone()), inst, desired, now, &mut plan);
        }
    }
    for (pgid, inst) in &observed.outgoing {
        plan_outgoing(Who::Old(*pgid), inst, desired, observed, now, &mut plan);
    }
    if plan.actions.is_empty() {
        if let Some(code) = finished(desired, observed) {
            plan.actions.push(Action::Exit(code));
        }
    }
    plan
}

fn plan_app(app: &AppSpec, desired: &Desired, observed: &Observed, now: Instant, plan: &mut Plan) {
    let deps = dependencies(app, desired, observed, now, plan);
    let deps_ready = deps == Ok(true);
    // A start that is due but waits for a dependency that failed for good.
    let mut withheld = false;
    let generation = desired.generation(app);
    let job = app.schedule.is_some();
    // At most `max_surge` replacements at a time per app: wait while that many
    // outgoing instances still serve for successors that are not ready (or stable) yet.
    let mut replacing = rollout::replacing(app, observed);
    // The app's records in index order, walked once beside the indexes (a lookup per
    // index compared app names a dozen times each: at 500 instances, a fifth of a turn).
    let mut slots = observed
        .instances
        .range(InstanceId::new(&app.name, 0)..=InstanceId::new(&app.name, u32::MAX))
        .peekable();
    for index in 0..app.instances {
        let slot = slots.next_if(|(id, _)| id.index == index).map(|(_, i)| i);
        let id = InstanceId::new(&app.name, index);
        if desired.holds.contains(&id) {
            if let Some(inst) = slot.filter(|i| i.alive()) {
                drive_stop(Who::Slot(id), inst, Why::Asked, desired, now, plan);
            }
            continue;
        }
        let Some(inst) = slot else {
            // A job's instances start at its times (`plan_schedules`), not now.
            if deps_ready && !job {
                plan.actions.push(Action::Spawn(id));
            }
            withheld = true;
            continue;
        };
        if let Some(why) = rollout::unstable(app, inst, observed, generation) {
            plan.actions.push(Action::Rollback(id, generation, why));
            continue;
        }
        // A job's run is not replaced by a new version: the next run uses it.
        let outdated = !job && (inst.outdated || inst.generation != generation);
        let ended = match &inst.phase {
            Phase::Running(run) => {
                let stopping = checks::plan_checks(app, inst, desired, observed, now, plan);
                let failed = observed.failed_generation.get(&app.name) == Some(&generation);
                if outdated && run.stop.is_none() && !stopping && !failed {
                    match app.update {
                        UpdateStrategy::Recreate => {
                            drive_stop(Who::Slot(id), inst, Why::Asked, desired, now, plan)
                        }
                        UpdateStrategy::Rolling if replacing < app.max_surge => {
                            replacing += 1;
                            plan.actions.push(Action::Replace(id));
                        }
                        UpdateStrategy::Rolling => {}
                    }
                }
                continue;
            }
            Phase::Ended(ended) => ended,
            Phase::New => {
                if deps_ready {
                    plan.actions.push(Action::Spawn(id));
                }
                withheld = true;
                continue;
            }
        };
        if ended.leftovers.is_some() {
            // The leader is gone but its group lives on: stop the leftovers before a
            // new run, as systemd's KillMode=control-group does.
            drive_stop(Who::Slot(id), inst, Why::Asked, desired, now, plan);
            continue;
        }
        let due = match ended.next {
            // A new version replaces a finished, errored or backing-off run at once.
            _ if outdated => true,
            Next::Finished(_) | Next::Errored => false,
            Next::Restart(at) if now < at => {
                plan.wake(at);
                false
            }
            Next::Restart(_) | Next::Stopped => true,
        };
        if due && deps_ready {
            plan.actions.push(Action::Spawn(id));
        }
        withheld |= due;
    }
    let blocked = deps.err().filter(|_| withheld);
    if observed.blocked.get(&app.name) != blocked.as_ref() {
        plan.actions.push(Action::Blocked {
            app: app.name.clone(),
            reason: blocked,
        });
    }
    // What is left of the app's records is past its instance count.
    for (id, inst) in slots {
        retire(Who::Slot(id.clone()), inst, desired, now, plan);
    }
}

/// An instance replaced by a rolling update serves until its successor is ready, then
/// stops gracefully. If the successor is not running (it crashed, or backs off), the
/// old one keeps serving. A rolled-back new instance is stopped at once.
fn plan_outgoing(
    who: Who,
    inst: &Instance,
    desired: &Desired,
    observed: &Observed,
    now: Instant,
    plan: &mut Plan,
) {
    if !inst.alive() {
        plan.actions.push(Action::Forget(who));
        return;
    }
    if let Some(why) = inst.run().and_then(|r| r.stop_wanted) {
        drive_stop(who, inst, why, desired, now, plan);
        return;
    }
    if inst.stop().is_some() {
        drive_stop(who, inst, Why::Asked, desired, now, plan);
        return;
    }
    let spec = desired.app(&inst.id.app);
    let wanted = spec.is_some_and(|app| inst.id.index < app.instances);
    let successor_ready = observed
        .instances
        .get(&inst.id)
        .is_some_and(|s| rollout::stable(spec, s, now, plan));
    if !wanted || successor_ready {
        drive_stop(who, inst, Why::Asked, desired, now, plan);
    }
}

/// The one place that says whether an instance is ready (rolling updates, `depends_on`
/// and control commands wait for it), by `Instance::ready_since`. A readiness that
/// comes with time asks the plan to wake up then.
pub fn is_ready(spec: Option<&AppSpec>, inst: &Instance, now: Instant, plan: &mut Plan) -> bool {
    match inst.ready_since(spec.map(|s| &s.ready)) {
        Some(at) if at <= now => true,
        Some(at) => {
            plan.wake(at);
            false
        }
        None => false,
    }
}

/// Whether the app's dependencies let it start: `Ok(true)` when every instance of every
/// dependency meets its condition (`started`: runs; `ready`: is ready; `completed`:
/// exited with success; a clean finish meets all three), `Ok(false)` while some does
/// not yet, `Err(reason)` when one failed for good (errored, or finished non-zero).
fn dependencies(
    app: &AppSpec,
    desired: &Desired,
    observed: &Observed,
    now: Instant,
    plan: &mut Plan,
) -> Result<bool, String> {
    let mut met = true;
    for dep in &app.depends_on {
        let Some(spec) = desired.app(&dep.app) else {
            continue;
        };
        for index in 0..spec.instances {
            let id = InstanceId::new(&spec.name, index);
            let Some(inst) = observed.instances.get(&id) else {
                met = false;
                continue;
            };
            let failed = match inst.ended().map(|e| &e.next) {
                Some(Next::Finished(status)) if status.clean(&spec.success_exit_codes) => continue,
                Some(Next::Finished(status)) => Some(format!("{id} exited with {status}")),
                Some(Next::Errored) => Some(format!("{id} errored")),
                _ => None,
            };
            if let Some(failed) = failed {
                return Err(format!(
                    "dependency {} ({}) failed: {failed}",
                    dep.app,
                    dep.condition.as_str()
                ));
            }
            met &= match dep.condition {
                Condition::Started => inst.up(),
                Condition::Ready => is_ready(Some(spec), inst, now, plan),
                Condition::Completed => false,
            };
        }
    }
    Ok(met)
}

/// An instance that must go: stop it, then forget it once nothing of it is left.
fn retire(who: Who, inst: &Instance, desired: &Desired, now: Instant, plan: &mut Plan) {
    if inst.alive() {
        drive_stop(who, inst, Why::Asked, desired, now, plan);
    } else {
        plan.actions.push(Action::Forget(who));
    }
}

/// The graceful stop sequence: stop signal, then SIGKILL after `stop_timeout`.
fn drive_stop(
    who: Who,
    inst: &Instance,
    why: Why,
    desired: &Desired,
    now: Instant,
    plan: &mut Plan,
) {
    match inst.stop() {
        None => plan.actions.push(Action::Stop(who, why)),
        Some(stop) if !stop.killed => {
            let (_, timeout) = stop_policy(desired, &inst.id.app);
            let deadline = stop.at + timeout;
            if now >= deadline {
                plan.actions.push(Action::Kill(who));
            } else {
                plan.wake(deadline);
            }
        }
        Some(_) => {}
    }
}

fn plan_shutdown(
    desired: &Desired,
    observed: &Observed,
    force: bool,
    now: Instant,
    plan: &mut Plan,
) {
    // Apps with a process left, computed once: an app is stopped only after every app
    // that depends on it is gone.
    let alive_apps: BTreeSet<&str> = observed
        .all()
        .filter(|(_, i)| i.alive())
        .map(|(_, i)| i.id.app.as_str())
        .collect();
    let dependents_alive =
        |app: &str| order::dependents(&desired.eco, app).any(|d| alive_apps.contains(d));
    for (who, inst) in observed.all().filter(|(_, i)| i.alive()) {
        if force {
            if !inst.stop().is_some_and(|s| s.killed) {
                plan.actions.push(Action::Kill(who));
            }
        } else if inst.stop().is_some() || !dependents_alive(&inst.id.app) {
            drive_stop(who, inst, Why::Asked, desired, now, plan);
        }
    }
    if alive_apps.is_empty() {
        let code = observed.shutdown.and_then(|s| s.exit_code).unwrap_or(0);
        plan.actions.push(Action::Exit(code));
    }
}

/// Every wanted instance has run and will not run again: the exit code supervise leaves
/// with (SPEC section 2), or `None` while anything is left to run. An app scaled to 0
/// keeps supervise running.
fn finished(desired: &Desired, observed: &Observed) -> Option<i32> {
    if observed.all().any(|(_, i)| i.alive())
        || !observed.outgoing.is_empty()
        || !desired.holds.is_empty()
    {
        return None;
    }
    let mut all_ok = true;
    for app in &desired.eco.apps {
        // A job runs again at its next time; so does an empty app (scaled to 0).
        if app.instances == 0 || app.schedule.is_some() {
            return None;
        }
        for index in 0..app.instances {
            let inst = observed.instances.get(&InstanceId::new(&app.name, index))?;
            match &inst.ended()?.next {
                Next::Finished(status) => all_ok &= status.clean(&app.success_exit_codes),
                Next::Errored => all_ok = false,
                Next::Restart(_) | Next::Stopped => return None,
            }
        }
    }
    Some(if all_ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests;
