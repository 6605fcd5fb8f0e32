//! The reconcile function: desired state (the ecosystem) + observed state + now -> actions.
//!
//! Pure and level-triggered: it looks at the whole state every time and says what to do
//! next, plus the earliest time it wants to be asked again (`wake_at`). Deadlines are
//! derived from recorded facts (`restart_at`, a stop's start + `stop_timeout`), so
//! nothing holds a timer. The runtime records the effect of every action as a fact
//! before it asks again, so the same action is never emitted twice.

pub mod order;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::config::{AppSpec, Ecosystem};
use crate::state::{Done, Instance, InstanceId, Observed};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start (or restart) this instance now.
    Spawn(InstanceId),
    /// Send the app's `stop_signal` to the instance's process group.
    Stop(InstanceId),
    /// SIGKILL the instance's process group.
    Kill(InstanceId),
    /// The instance is gone and no longer wanted: drop its record.
    Forget(InstanceId),
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
pub fn stop_policy(desired: &Ecosystem, id: &InstanceId) -> (Signal, Duration) {
    match desired.app(&id.app) {
        Some(spec) => (spec.stop_signal, spec.stop_timeout),
        None => (Signal::SIGTERM, desired.settings.stop_timeout),
    }
}

pub fn plan(desired: &Ecosystem, observed: &Observed, now: Instant) -> Plan {
    let mut plan = Plan::default();
    if let Some(shutdown) = observed.shutdown {
        plan_shutdown(desired, observed, shutdown.force, now, &mut plan);
        return plan;
    }
    for i in order::start_order(desired) {
        plan_app(&desired.apps[i], desired, observed, now, &mut plan);
    }
    // Instances of apps no longer in the file.
    for inst in observed.instances.values() {
        if desired.app(&inst.id.app).is_none() {
            retire(inst, desired, now, &mut plan);
        }
    }
    if plan.actions.is_empty() {
        if let Some(code) = finished(desired, observed) {
            plan.actions.push(Action::Exit(code));
        }
    }
    plan
}

fn plan_app(app: &AppSpec, desired: &Ecosystem, observed: &Observed, now: Instant, plan: &mut Plan) {
    let deps_ready = dependencies_ready(app, desired, observed);
    for index in 0..app.instances {
        let id = InstanceId::new(&app.name, index);
        let Some(inst) = observed.instances.get(&id) else {
            if deps_ready {
                plan.actions.push(Action::Spawn(id));
            }
            continue;
        };
        if inst.pid.is_some() {
            continue;
        }
        if inst.group_alive {
            // The leader is gone but its group lives on: stop the leftovers before a
            // new run, as systemd's KillMode=control-group does.
            drive_stop(inst, desired, now, plan);
        } else if inst.done.is_some() {
        } else if let Some(at) = inst.restart_at {
            if now < at {
                plan.wake(at);
            } else if deps_ready {
                plan.actions.push(Action::Spawn(id));
            }
        } else if deps_ready {
            plan.actions.push(Action::Spawn(id));
        }
    }
    for inst in observed.instances.values() {
        if inst.id.app == app.name && inst.id.index >= app.instances {
            retire(inst, desired, now, plan);
        }
    }
}

/// Every instance of every dependency is up and ready, or finished cleanly (a one-shot
/// job such as a migration).
fn dependencies_ready(app: &AppSpec, desired: &Ecosystem, observed: &Observed) -> bool {
    app.depends_on.iter().all(|dep| {
        let Some(dep) = desired.app(dep) else {
            return true;
        };
        (0..dep.instances).all(|index| {
            match observed.instances.get(&InstanceId::new(&dep.name, index)) {
                Some(inst) => {
                    (inst.up() && inst.ready)
                        || matches!(&inst.done, Some(Done::Finished(s)) if s.success())
                }
                None => false,
            }
        })
    })
}

/// An instance that must go: stop it, then forget it once nothing of it is left.
fn retire(inst: &Instance, desired: &Ecosystem, now: Instant, plan: &mut Plan) {
    if inst.alive() {
        drive_stop(inst, desired, now, plan);
    } else {
        plan.actions.push(Action::Forget(inst.id.clone()));
    }
}

/// The graceful stop sequence: stop signal, then SIGKILL after `stop_timeout`.
fn drive_stop(inst: &Instance, desired: &Ecosystem, now: Instant, plan: &mut Plan) {
    match inst.stop {
        None => plan.actions.push(Action::Stop(inst.id.clone())),
        Some(stop) if !stop.killed => {
            let (_, timeout) = stop_policy(desired, &inst.id);
            let deadline = stop.at + timeout;
            if now >= deadline {
                plan.actions.push(Action::Kill(inst.id.clone()));
            } else {
                plan.wake(deadline);
            }
        }
        Some(_) => {}
    }
}

fn plan_shutdown(desired: &Ecosystem, observed: &Observed, force: bool, now: Instant, plan: &mut Plan) {
    let mut any_alive = false;
    for inst in observed.instances.values().filter(|i| i.alive()) {
        any_alive = true;
        if force {
            if !inst.stop.is_some_and(|s| s.killed) {
                plan.actions.push(Action::Kill(inst.id.clone()));
            }
        } else if inst.stop.is_some() || !dependents_alive(&inst.id.app, desired, observed) {
            drive_stop(inst, desired, now, plan);
        }
    }
    if !any_alive {
        plan.actions.push(Action::Exit(0));
    }
}

/// Some app that depends on `app` still has a process: `app` must wait to be stopped.
fn dependents_alive(app: &str, desired: &Ecosystem, observed: &Observed) -> bool {
    order::dependents(desired, app).any(|dependent| {
        observed
            .instances
            .values()
            .any(|i| i.id.app == dependent && i.alive())
    })
}

/// Every wanted instance has run and will not run again: the exit code supervise leaves
/// with (SPEC section 2), or `None` while anything is left to run. An app scaled to 0
/// keeps supervise running.
fn finished(desired: &Ecosystem, observed: &Observed) -> Option<i32> {
    if observed.instances.values().any(|i| i.alive()) {
        return None;
    }
    let mut all_ok = true;
    for app in &desired.apps {
        if app.instances == 0 {
            return None;
        }
        for index in 0..app.instances {
            match observed.instances.get(&InstanceId::new(&app.name, index))?.done {
                Some(Done::Finished(ref status)) => all_ok &= status.success(),
                Some(Done::Errored) => all_ok = false,
                None => return None,
            }
        }
    }
    Some(if all_ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests;
