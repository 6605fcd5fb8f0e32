//! Safer rolling updates (SPEC §8): `min_ready` (a new instance must stay ready, and
//! pass its health checks, this long before its old one is stopped; an exit or a
//! failed check meanwhile rolls the update back) and `max_surge` (how many instances
//! of an app are replaced at once).

use std::time::Instant;

use super::Plan;
use crate::config::units::format_duration;
use crate::config::AppSpec;
use crate::state::{Instance, Observed, Phase};

/// How many of the app's instances are being replaced right now: old ones still
/// serving while their successors start.
pub(super) fn replacing(app: &AppSpec, observed: &Observed) -> u32 {
    observed
        .outgoing
        .values()
        .filter(|o| o.id.app == app.name && o.alive() && o.stop().is_none())
        .count() as u32
}

/// The successor `inst` has been ready for its app's `min_ready` (at once without it);
/// until then the plan is woken when it will have been.
pub(super) fn stable(
    spec: Option<&AppSpec>,
    inst: &Instance,
    now: Instant,
    plan: &mut Plan,
) -> bool {
    let Some(since) = inst.ready_since(spec.map(|s| &s.ready)) else {
        return false;
    };
    let at = since + spec.map(|s| s.min_ready).unwrap_or_default();
    if now >= at {
        true
    } else {
        plan.wake(at);
        false
    }
}

/// With `min_ready`, a new instance (of `generation`) that exits or fails a health
/// check while its old instance still serves: why, so the update is rolled back.
pub(super) fn unstable(
    app: &AppSpec,
    inst: &Instance,
    observed: &Observed,
    generation: u64,
) -> Option<String> {
    if app.min_ready.is_zero() || inst.generation != generation {
        return None;
    }
    let old_serves = observed
        .outgoing
        .values()
        .any(|o| o.id == inst.id && o.alive() && o.stop().is_none());
    if !old_serves {
        return None;
    }
    let within = format_duration(app.min_ready);
    match &inst.phase {
        Phase::Ended(_) => {
            let how = inst
                .last_exit
                .as_ref()
                .map_or("exited".to_string(), |(s, _)| format!("exited with {s}"));
            Some(format!("{how} within min_ready ({within})"))
        }
        Phase::Running(run) if run.stop.is_none() && run.health_failures > 0 => {
            Some(format!("failed a health check within min_ready ({within})"))
        }
        _ => None,
    }
}
