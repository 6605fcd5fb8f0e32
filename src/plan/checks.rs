//! Readiness probes, `ready_timeout`, health checks and the sd_notify watchdog of a
//! running instance: when each is due, derived from recorded facts like every other
//! deadline of the plan.

use std::time::{Duration, Instant};

use super::{is_ready, Action, Plan};
use crate::config::{AppSpec, ReadySpec};
use crate::state::{Instance, InstanceId, Who};

/// Pause between two readiness probes of a starting instance.
pub const READY_PROBE_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    Ready,
    Health,
}

/// The kinds of readiness that wait for a fact (a probe or a notify message).
pub fn waits_for_fact(ready: &ReadySpec) -> bool {
    !matches!(ready, ReadySpec::Started | ReadySpec::Delay(_))
}

fn probed(ready: &ReadySpec) -> bool {
    matches!(
        ready,
        ReadySpec::Tcp(_) | ReadySpec::Http(_) | ReadySpec::Exec(_)
    )
}

pub(super) fn plan_checks(
    app: &AppSpec,
    id: &InstanceId,
    inst: &Instance,
    now: Instant,
    plan: &mut Plan,
) {
    if !inst.up() {
        return;
    }
    let who = Who::Slot(id.clone());
    let started = inst.started_at.unwrap_or(now);
    if let (ReadySpec::Delay(delay), false) = (&app.ready, inst.ready) {
        // Derived by `is_ready` already; recorded (and announced) once as a fact.
        if now >= started + *delay {
            plan.actions.push(Action::Ready(id.clone()));
        } else {
            plan.wake(started + *delay);
        }
    }
    if waits_for_fact(&app.ready) && !inst.ready {
        let deadline = started + app.ready_timeout;
        if now >= deadline {
            plan.actions.push(Action::ReadyTimeout(id.clone()));
            return;
        }
        plan.wake(deadline);
        if probed(&app.ready) && !inst.probe_in_flight {
            let due = inst
                .last_probe_at
                .map_or(started, |t| t + READY_PROBE_INTERVAL);
            if now >= due {
                plan.actions.push(Action::Probe(who, Purpose::Ready));
            } else {
                plan.wake(due);
            }
        }
        return;
    }
    if let Some(health) = &app.health {
        if !inst.probe_in_flight && is_ready(Some(app), inst, now, plan) {
            let base = inst.last_probe_at.or(inst.ready_at).unwrap_or(started);
            let due = base + health.interval;
            if now >= due {
                plan.actions
                    .push(Action::Probe(who.clone(), Purpose::Health));
            } else {
                plan.wake(due);
            }
        }
    }
    if let (Some(watchdog), ReadySpec::Notify) = (app.watchdog, &app.ready) {
        let base = inst.watchdog_at.or(inst.ready_at).unwrap_or(started);
        if now >= base + watchdog {
            plan.actions.push(Action::WatchdogMiss(who));
        } else {
            plan.wake(base + watchdog);
        }
    }
}
