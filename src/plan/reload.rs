//! The reload debounce: file events are recorded as they come (`state::Changes`), and
//! acted on once the files have been quiet for `DEBOUNCE`, or at the latest
//! `DEBOUNCE_MAX` after the first event of a burst, so editors that save three times
//! cause one reload and an edit storm still gets applied along the way.

use std::time::{Duration, Instant};

use super::{Action, Desired, Plan};
use crate::state::Observed;

/// Quiet time after the last file event before acting on it.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// Longest a burst of events may postpone a reload.
pub const DEBOUNCE_MAX: Duration = Duration::from_millis(500);

pub(super) fn plan_changes(desired: &Desired, observed: &Observed, now: Instant, plan: &mut Plan) {
    let changes = &observed.changes;
    if let Some((first, last)) = changes.config {
        let due = (last + DEBOUNCE).min(first + DEBOUNCE_MAX);
        if now >= due {
            plan.actions.push(Action::Reload);
        } else {
            plan.wake(due);
        }
    }
    for (app, last) in &changes.apps {
        let due = *last + DEBOUNCE;
        if now < due {
            plan.wake(due);
        } else if desired.app(app).is_some() {
            plan.actions.push(Action::WatchRestart(app.clone()));
        }
    }
}
