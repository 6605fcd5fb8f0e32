//! The two ways a stop of everything begins besides a second signal (SPEC section 7):
//! `shutdown_delay`, during which the apps keep serving after SIGTERM while `/readyz`
//! already says 503, and a `critical` app that failed for good. Pure.

use std::time::Instant;

use super::{Desired, Plan};
use crate::state::{InstanceId, Next, Observed, Shutdown};

/// Still within `shutdown_delay` of the stop signal: nothing is stopped yet, the plan
/// wakes when the delay ends. Not after a critical failure, a second signal, or when
/// nothing runs any more.
pub fn draining(
    desired: &Desired,
    observed: &Observed,
    shutdown: &Shutdown,
    now: Instant,
    plan: &mut Plan,
) -> bool {
    let ends = shutdown.at + desired.eco.settings.shutdown_delay;
    let drains = !shutdown.force
        && shutdown.exit_code.is_none()
        && now < ends
        && observed.all().any(|(_, i)| i.alive());
    if drains {
        plan.wake(ends);
    }
    drains
}

/// The first instance of a `critical` app that failed for good (errored, or finished
/// with a code outside `success_exit_codes`), with the exit code supervise leaves with:
/// the last run's (128+N for signal N; 1 where that was 0).
pub fn critical_failure(desired: &Desired, observed: &Observed) -> Option<(InstanceId, i32)> {
    for app in desired.eco.apps.iter().filter(|a| a.critical) {
        for index in 0..app.instances {
            let id = InstanceId::new(&app.name, index);
            let Some(inst) = observed.instances.get(&id) else {
                continue;
            };
            let last_code = inst.last_exit.as_ref().map_or(1, |(s, _)| s.code());
            let failed = match &inst.ended().map(|e| &e.next) {
                Some(Next::Errored) => Some(last_code),
                Some(Next::Finished(s)) if !s.clean(&app.success_exit_codes) => Some(s.code()),
                _ => None,
            };
            if let Some(code) = failed {
                // A failure never leaves as a success.
                return Some((id, if code == 0 { 1 } else { code }));
            }
        }
    }
    None
}

#[cfg(test)]
#[path = "shutdown_tests.rs"]
mod tests;
