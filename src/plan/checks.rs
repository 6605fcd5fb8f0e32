//! The verdicts on a running instance, each derived from recorded facts like every
//! other deadline of the plan: readiness (probes, `delay`, `ready_timeout` and the
//! rollback of a rolling update), health checks, the sd_notify watchdog, and
//! `max_memory` (the runtime only samples memory when asked, and records the sample).

use std::time::{Duration, Instant};

use super::{is_ready, Action, Desired, Plan};
use crate::config::units::format_duration;
use crate::config::{AppSpec, ReadySpec};
use crate::state::{Instance, InstanceId, Observed, Purpose, Who, Why};

/// Pause between two readiness probes of a starting instance.
pub const READY_PROBE_INTERVAL: Duration = Duration::from_millis(100);
/// How often resident memory is compared with `max_memory`.
pub const MEMORY_CHECK_INTERVAL: Duration = Duration::from_secs(1);

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

/// Plan the checks of a running slot instance. True when a stop was decided.
pub(super) fn plan_checks(
    app: &AppSpec,
    inst: &Instance,
    desired: &Desired,
    observed: &Observed,
    now: Instant,
    plan: &mut Plan,
) -> bool {
    let Some(run) = inst.run().filter(|r| r.stop.is_none()) else {
        return false;
    };
    let id = &inst.id;
    let who = Who::Slot(id.clone());
    let stop = |plan: &mut Plan, why| {
        plan.actions.push(Action::Stop(who.clone(), why));
        true
    };
    if let Some(why) = run.stop_wanted {
        return stop(plan, why);
    }
    if let (Some(limit), Some(used)) = (app.max_memory, run.memory) {
        if used > limit {
            return stop(plan, Why::Memory { used, limit });
        }
    }
    let started = run.started_at;
    if let (ReadySpec::Delay(delay), None) = (&app.ready, run.ready_at) {
        // Derived by `is_ready` already; recorded (and announced) once as a fact.
        if now >= started + *delay {
            plan.actions.push(Action::Ready(id.clone()));
        } else {
            plan.wake(started + *delay);
        }
    }
    if waits_for_fact(&app.ready) && run.ready_at.is_none() {
        let deadline = started + app.ready_timeout;
        if now >= deadline {
            return ready_timeout(app, desired.generation(app), id, observed, plan);
        }
        plan.wake(deadline);
        if probed(&app.ready) && !run.probe_in_flight {
            let due = run
                .last_probe_at
                .map_or(started, |t| t + READY_PROBE_INTERVAL);
            if now >= due {
                plan.actions.push(Action::Probe(who, Purpose::Ready));
            } else {
                plan.wake(due);
            }
        }
        return false;
    }
    if let Some(health) = &app.health {
        if run.health_failures >= health.failures {
            return stop(plan, Why::Unhealthy);
        }
        if !run.probe_in_flight && is_ready(Some(app), inst, now, plan) {
            let base = run.last_probe_at.or(run.ready_at).unwrap_or(started);
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
        let base = run.watchdog_at.or(run.ready_at).unwrap_or(started);
        if now >= base + watchdog {
            return stop(plan, Why::Watchdog);
        }
        plan.wake(base + watchdog);
    }
    false
}

/// Not ready within `ready_timeout`. During a rolling update the old instance takes
/// its place back and the app stays on the old version; otherwise the run failed.
fn ready_timeout(
    app: &AppSpec,
    generation: u64,
    id: &InstanceId,
    observed: &Observed,
    plan: &mut Plan,
) -> bool {
    let old_serves = observed
        .outgoing
        .values()
        .any(|o| &o.id == id && o.alive() && o.stop().is_none());
    let action = if old_serves {
        let why = format!(
            "was not ready within {}",
            format_duration(app.ready_timeout)
        );
        Action::Rollback(id.clone(), generation, why)
    } else {
        Action::Stop(Who::Slot(id.clone()), Why::NotReady)
    };
    plan.actions.push(action);
    true
}

/// While some running instance's app sets `max_memory`, sample their memory every
/// `MEMORY_CHECK_INTERVAL`; otherwise no timer at all.
pub(super) fn plan_memory(desired: &Desired, observed: &Observed, now: Instant, plan: &mut Plan) {
    let watched: Vec<(Who, i32)> = observed
        .instances
        .values()
        .filter(|i| i.up())
        .filter(|i| {
            desired
                .app(&i.id.app)
                .is_some_and(|a| a.max_memory.is_some())
        })
        .filter_map(|i| Some((Who::Slot(i.id.clone()), i.group()?)))
        .collect();
    if watched.is_empty() {
        return;
    }
    let due = observed
        .memory_sampled_at
        .map_or(now, |t| t + MEMORY_CHECK_INTERVAL);
    if now >= due {
        plan.actions.push(Action::SampleMemory(watched));
    } else {
        plan.wake(due);
    }
}
