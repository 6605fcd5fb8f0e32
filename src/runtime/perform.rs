//! Carrying out the plan's actions: the only place that starts or signals processes on
//! the core's behalf. Each effect is recorded as a fact (`state::observe`) before the
//! next plan; the words of the event log are chosen here, the decisions were not.

use std::time::Instant;

use nix::sys::signal::Signal;

use super::{Owner, Runtime};
use crate::config::units::format_duration;
use crate::control::table::human_bytes;
use crate::os;
use crate::plan::{stop_policy, Action};
use crate::state::{observe, Fact, InstanceId, Who, Why};

impl Runtime {
    pub(super) fn perform(&mut self, action: Action) {
        log::debug!("perform {action:?}");
        let now = Instant::now();
        match action {
            Action::Spawn(id) => self.spawn(id),
            Action::Replace(id) => self.record(Fact::Replaced(id)),
            Action::Stop(who, why) => self.stop(&who, why),
            Action::Kill(who) => self.kill(&who),
            Action::Forget(who) => self.record(Fact::Forgotten(who)),
            Action::Probe(who, purpose) => self.start_probe(who, purpose),
            Action::Ready(id) => {
                self.output.event(&format!("{id} is ready (delay)"));
                self.record(Fact::Ready(Who::Slot(id)));
            }
            Action::Rollback(id, generation, why) => {
                self.output.event(&format!(
                    "{id}: the new version {why}; keeping the old instance and leaving {} \
                     on its previous version",
                    id.app
                ));
                self.record(Fact::RolledBack {
                    id,
                    generation,
                    why,
                });
            }
            Action::SampleMemory(watched) => {
                let pgids: Vec<i32> = watched.iter().map(|(_, pgid)| *pgid).collect();
                let usage = os::procfs::groups_usage(&pgids);
                let samples = watched
                    .into_iter()
                    .filter_map(|(who, pgid)| Some((who, usage.get(&pgid)?.rss_bytes)))
                    .collect();
                observe(&mut self.observed, Fact::MemorySampled(samples), now);
            }
            Action::Reload => self.reload_file(false),
            Action::WatchRestart(app) => {
                self.output
                    .event(&format!("{app}: watched files changed, restarting"));
                *self.desired.epochs.entry(app.clone()).or_default() += 1;
                self.record(Fact::WatchHandled(app));
            }
            Action::Answer {
                ticket,
                asker,
                result,
            } => {
                self.answer(asker, result);
                self.record(Fact::Answered(ticket));
            }
            Action::ArmSchedule(app) => self.arm_schedule(app),
            Action::RunJob { app, skip } => self.run_job(app, skip),
            Action::ScheduledRestart(app) => self.scheduled_restart(app),
            Action::DropSchedule(app) => self.record(Fact::ScheduleDropped(app)),
            Action::Blocked { app, reason } => {
                if let Some(reason) = &reason {
                    self.output
                        .event(&format!("{app} is not started: {reason}"));
                }
                self.record(Fact::Blocked { app, reason });
            }
            Action::CriticalFailed(id, code) => {
                self.output.event(&format!(
                    "{id} is critical and failed for good: stopping everything, then \
                     exiting with its code {code}"
                ));
                self.record(Fact::CriticalFailed { code });
            }
            Action::Exit(_) => {}
        }
    }

    /// Record a fact observed now.
    pub(super) fn record(&mut self, fact: Fact<'_>) {
        observe(&mut self.observed, fact, Instant::now());
    }

    fn spawn(&mut self, id: InstanceId) {
        let Some(spec) = self.desired.app(&id.app) else {
            return;
        };
        let generation = self.desired.generation(spec);
        let now = Instant::now();
        let mut built = None;
        let spawned = match self.launcher.kept(&id) {
            Some(exec) => os::spawn::start(exec),
            None => self.instance_exec(spec, id.index).and_then(|mut exec| {
                let adapted = self.adapter.apply(spec, &mut exec.env);
                if let Err(e) = &adapted {
                    self.output
                        .event(&format!("{id}: {e}; starting it without"));
                }
                let started = os::spawn::start(&exec);
                // Kept only as it is when nothing went wrong (a failure is told again).
                if adapted.is_ok() && started.is_ok() {
                    built = Some(exec);
                }
                started
            }),
        };
        if let Some(exec) = built {
            self.launcher.keep(&id, exec);
        }
        match spawned {
            Ok((child, starting)) => {
                self.leaders.insert(child.pid, Owner::Instance(id.clone()));
                let fact = Fact::Spawned {
                    id: id.clone(),
                    pid: child.pid,
                    generation,
                };
                observe(&mut self.observed, fact, now);
                // "started" and its output come once its exec is confirmed (`starts`).
                let output = [child.stdout, child.stderr];
                let registry = self.poll.registry();
                if let Err(e) = self
                    .starts
                    .add(registry, child.pid, id.clone(), starting, output)
                {
                    log::warn!("cannot watch {id}'s start: {e}");
                }
                // In a burst, earlier starts may be known already (each holds its
                // child's image and stack until told); a lone one was just cloned.
                if self.starts.in_flight() > 1 {
                    self.check_oldest_start();
                }
            }
            Err(e) => {
                // A failed start is a crash like any other: it backs off and counts
                // towards max_restarts.
                self.output.event(&format!("{id} failed to start: {e}"));
                let fact = Fact::SpawnFailed {
                    id: id.clone(),
                    generation,
                    error: e.to_string(),
                    spec: Some(spec),
                };
                observe(&mut self.observed, fact, now);
                self.announce_end(&id);
            }
        }
    }

    /// Why a stop is sent, in the event log, before the stop itself.
    fn announce_why(&self, id: &InstanceId, why: Why) {
        let spec = self.desired.app(&id.app);
        let text = match why {
            Why::Asked | Why::RolledBack => return,
            Why::Restart => format!("{id} restarting (asked by supervise restart)"),
            Why::Unhealthy => format!("{id} is unhealthy, restarting it"),
            Why::Memory { used, limit } => format!(
                "{id} uses {} of memory, more than max_memory {}; restarting it",
                human_bytes(used),
                human_bytes(limit)
            ),
            Why::NotReady => format!(
                "{id} was not ready within {}, stopping it",
                format_duration(spec.map(|a| a.ready_timeout).unwrap_or_default())
            ),
            Why::Watchdog => format!(
                "{id} watchdog: no WATCHDOG=1 within {}, stopping it",
                spec.and_then(|a| a.watchdog)
                    .map(format_duration)
                    .unwrap_or_default()
            ),
        };
        self.output.event(&text);
    }

    fn stop(&mut self, who: &Who, why: Why) {
        let Some(inst) = self.observed.get(who) else {
            return;
        };
        let id = inst.id.clone();
        self.announce_why(&id, why);
        let (signal, _) = stop_policy(&self.desired, &id.app);
        let text = match (who, inst.pid().is_some()) {
            (Who::Old(pgid), _) => format!(
                "{id} (old instance, pid {pgid}) stopping ({})",
                signal.as_str()
            ),
            (_, true) => format!("{id} stopping ({})", signal.as_str()),
            (_, false) => format!(
                "{id} exited but processes remain in its group, stopping them ({})",
                signal.as_str()
            ),
        };
        self.output.event(&text);
        self.signal_instance(who, signal);
        self.record(Fact::StopSent(who.clone(), why));
    }

    fn kill(&mut self, who: &Who) {
        let Some(inst) = self.observed.get(who) else {
            return;
        };
        let id = &inst.id;
        let (_, timeout) = stop_policy(&self.desired, &id.app);
        let forced = self.observed.shutdown.is_some_and(|s| s.force);
        let text = if forced {
            format!("{id} killed (SIGKILL to its process group)")
        } else {
            format!(
                "{id} still running after {}, sending SIGKILL to its process group",
                format_duration(timeout)
            )
        };
        self.output.event(&text);
        self.signal_instance(who, Signal::SIGKILL);
        self.record(Fact::Killed(who.clone()));
    }

    /// Signal the whole group, and the leader on its own if it moved to another group.
    fn signal_instance(&self, who: &Who, signal: Signal) {
        let Some(inst) = self.observed.get(who) else {
            return;
        };
        let Some(pgid) = inst.group() else {
            return;
        };
        if let Err(e) = os::signal_group(pgid, signal) {
            log::debug!("signal {signal} to group {pgid} of {}: {e}", inst.id);
        }
        if let Some(pid) = inst.pid() {
            if os::group_of(pid) != Some(pgid) {
                let _ = os::signal_process(pid, signal);
            }
        }
    }
}
