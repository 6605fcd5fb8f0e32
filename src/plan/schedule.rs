//! `schedule` and `cron_restart` (SPEC §8): an app's next time is a deadline of the
//! plan like any other, so nothing polls and an idle supervise still never wakes.
//!
//! The next time itself is computed by the runtime (`Action::ArmSchedule`), because
//! only it reads the wall clock; it records the time as a fact, and everything after
//! that (sleeping until it, running the job or skipping a run that overlaps the
//! previous one, the rolling restart) is decided here from the facts and `now`.

use std::time::Instant;

use super::{Action, Desired, Plan};
use crate::config::{AppSpec, CronTimes};
use crate::state::{InstanceId, Observed};

/// The times an app is scheduled by, if any.
pub fn times_of(app: &AppSpec) -> Option<&CronTimes> {
    app.schedule.as_ref().or(app.cron_restart.as_ref())
}

pub(super) fn plan_schedules(
    desired: &Desired,
    observed: &Observed,
    now: Instant,
    plan: &mut Plan,
) {
    for app in &desired.eco.apps {
        let Some(times) = times_of(app) else { continue };
        let armed = observed
            .schedules
            .get(&app.name)
            .filter(|a| &a.times == times);
        let Some(armed) = armed else {
            plan.actions.push(Action::ArmSchedule(app.name.clone()));
            continue;
        };
        match armed.at {
            Some(at) if now < at => plan.wake(at),
            Some(_) if app.schedule.is_some() => {
                let running = (0..app.instances).any(|index| {
                    observed
                        .instances
                        .get(&InstanceId::new(&app.name, index))
                        .is_some_and(|i| i.alive())
                });
                plan.actions.push(Action::RunJob {
                    app: app.name.clone(),
                    skip: running,
                });
            }
            Some(_) => plan
                .actions
                .push(Action::ScheduledRestart(app.name.clone())),
            None => {}
        }
    }
    for name in observed.schedules.keys() {
        if desired.app(name).and_then(times_of).is_none() {
            plan.actions.push(Action::DropSchedule(name.clone()));
        }
    }
}
