//! Carrying out the plan's schedule actions: reading the wall clock for an app's next
//! `schedule` / `cron_restart` time (the one thing the pure plan cannot do), and the
//! words of the log when a time comes.

use std::time::{Instant, SystemTime};

use chrono::Local;

use super::Runtime;
use crate::plan::schedule::times_of;
use crate::state::{Armed, Fact};

impl Runtime {
    /// The next time of `app`'s schedule in local time (`TZ` honoured), as a deadline.
    pub(super) fn arm_schedule(&mut self, app: String) {
        let Some(times) = self.desired.app(&app).and_then(times_of).cloned() else {
            return;
        };
        let (now, wall_now) = (Instant::now(), Local::now());
        let next = times.next_after(&wall_now);
        let armed = Armed {
            at: next.map(|n| now + (n - wall_now).to_std().unwrap_or_default()),
            wall: next.map(SystemTime::from),
            times,
        };
        match next {
            Some(n) => log::debug!("{app}: next time {}", n.to_rfc3339()),
            None => self.output.event(&format!(
                "{app}: the schedule \"{}\" never matches again",
                armed.times
            )),
        }
        self.record(Fact::ScheduleArmed { app, armed });
    }

    pub(super) fn run_job(&mut self, app: String, skip: bool) {
        let instances = self.desired.app(&app).map_or(0, |a| a.instances);
        if skip {
            self.output.event(&format!(
                "{app}: scheduled run skipped, the previous run is still going"
            ));
            self.record(Fact::ScheduleFired { app, run: None });
        } else {
            self.output.event(&format!("{app}: scheduled run"));
            self.record(Fact::ScheduleFired {
                app,
                run: Some(instances),
            });
        }
    }

    pub(super) fn scheduled_restart(&mut self, app: String) {
        self.output
            .event(&format!("{app}: cron_restart time, restarting (rolling)"));
        *self.desired.epochs.entry(app.clone()).or_default() += 1;
        self.record(Fact::ScheduleFired { app, run: None });
    }
}
