//! The answer to `status`: every wanted instance, plus those on their way out, with
//! its user-visible state, readiness and the cpu and memory of its process group (one
//! /proc scan per report; the loop makes one report per turn however many ask). An
//! instance being replaced shows in its successor's row, not as a second one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Runtime;
use crate::control::protocol::{InstanceStatus, Outgoing, StatusReport};
use crate::os;
use crate::state::{state_of, ExitStatus, Instance, InstanceId, Who};

fn exit_text(status: &ExitStatus) -> String {
    match status {
        ExitStatus::Signal(s) => s.as_str().to_string(),
        other => other.to_string(),
    }
}

impl Runtime {
    pub(super) fn status_report(&mut self, now: Instant) -> StatusReport {
        let mut rows: Vec<(Who, Option<&Instance>, InstanceId)> = Vec::new();
        for app in &self.desired.eco.apps {
            for index in 0..app.instances {
                let id = InstanceId::new(&app.name, index);
                rows.push((Who::Slot(id.clone()), self.observed.instances.get(&id), id));
            }
        }
        // Instances on their way out. One being replaced shows in its successor's row
        // (`outgoing`); one scaled down or removed has a row of its own.
        let mut outgoing: HashMap<InstanceId, &Instance> = HashMap::new();
        for (who, inst) in self.observed.all() {
            let slot_wanted = self
                .desired
                .app(&inst.id.app)
                .is_some_and(|a| inst.id.index < a.instances);
            if !inst.alive() || (matches!(who, Who::Slot(_)) && slot_wanted) {
                continue;
            }
            if matches!(who, Who::Old(_)) && slot_wanted && !outgoing.contains_key(&inst.id) {
                outgoing.insert(inst.id.clone(), inst);
            } else {
                rows.push((who, Some(inst), inst.id.clone()));
            }
        }
        let pgids: Vec<i32> = rows
            .iter()
            .filter_map(|(_, i, _)| i.and_then(Instance::group))
            .collect();
        let usage = os::procfs::groups_usage(&pgids);
        let mut samples = HashMap::new();
        let mut instances = Vec::with_capacity(rows.len());
        for (who, inst, id) in &rows {
            let ready_kind = self.desired.app(&id.app).map(|a| &a.ready);
            let held = self.desired.holds.contains(id);
            let mut row = InstanceStatus {
                app: id.app.clone(),
                index: id.index,
                state: state_of(*inst, ready_kind, held, now).as_str().into(),
                next_run: self.observed.schedules.get(&id.app).and_then(|a| {
                    let wall = chrono::DateTime::<chrono::Local>::from(a.wall?);
                    Some(wall.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
                }),
                ..Default::default()
            };
            // A job's instance waits for its time: stopped until its first run.
            if inst.is_none()
                && self
                    .desired
                    .app(&id.app)
                    .is_some_and(|a| a.schedule.is_some())
            {
                row.state = "stopped".into();
            }
            if let Some(inst) = inst {
                row.pid = inst.pid();
                row.restarts = inst.restarts();
                row.ready = inst.is_ready(ready_kind, now);
                row.status_text = inst.status_text.clone();
                row.last_exit = inst.last_exit.as_ref().map(|(s, _)| exit_text(s));
                row.uptime_ms = inst
                    .started_at()
                    .map(|t| now.saturating_duration_since(t).as_millis() as u64);
                if let Some(u) = inst.group().and_then(|g| usage.get(&g).map(|u| (g, u))) {
                    let (pgid, u) = u;
                    row.memory_bytes = Some(u.rss_bytes);
                    let prev = self
                        .control
                        .cpu
                        .get(&pgid)
                        .copied()
                        .or_else(|| inst.started_at().map(|t| (Duration::ZERO, t)));
                    row.cpu_percent = prev.map(|p| os::procfs::cpu_percent(p, (u.cpu, now)));
                    samples.insert(pgid, (u.cpu, now));
                }
            }
            if let (Who::Slot(_), Some(old)) = (who, outgoing.get(id)) {
                let state = state_of(Some(old), ready_kind, false, now).as_str();
                row.outgoing = Some(Outgoing {
                    pid: old.pid().or(old.group()),
                    state: if state == "running" {
                        state
                    } else {
                        "stopping"
                    }
                    .into(),
                });
            }
            // Not started because a dependency failed for good: say why.
            if row.pid.is_none() {
                if let Some(reason) = self.observed.blocked.get(&id.app) {
                    row.status_text = Some(format!("blocked: {reason}"));
                }
            }
            instances.push(row);
        }
        self.control.cpu = samples;
        StatusReport {
            config: self.desired.eco.path.display().to_string(),
            config_error: self.observed.config_error.clone(),
            instances,
        }
    }
}
