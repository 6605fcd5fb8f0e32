//! Ends of processes: reaping (the one waiter), what an instance's exit means, its
//! group's leftovers, and the final sweep before supervise itself leaves.

use std::time::{Duration, Instant};

use mio::Events;
use nix::sys::signal::Signal;

use super::{Owner, Runtime, SWEEP_GRACE};
use crate::config::units::format_duration;
use crate::config::RestartPolicy;
use crate::os;
use crate::state::{observe, ExitStatus, Fact, Instance, InstanceId, Next, Who};

impl Runtime {
    pub(super) fn reap(&mut self) {
        for (pid, status) in os::reap::reap_all() {
            if !self.reaped_start(pid) {
                continue;
            }
            match self.leaders.remove(&pid) {
                Some(Owner::Instance(id)) => match self.observed.find_leader(&id, pid) {
                    Some(who) => self.on_exit(who, pid, status),
                    None => log::debug!("reaped {pid} of {id}, no longer tracked ({status})"),
                },
                Some(Owner::Probe(probe)) => self.on_exec_probe_exit(probe, status),
                None => log::debug!("reaped orphan {pid} ({status})"),
            }
        }
    }

    /// A leader exited: drain its pipes, say how it ended, record the fact, and say
    /// what follows (decided by the fact's policy, announced from the new state).
    pub(super) fn on_exit(&mut self, who: Who, pid: i32, status: ExitStatus) {
        let now = Instant::now();
        let Some(inst) = self.observed.get(&who) else {
            return;
        };
        let id = inst.id.clone();
        let started_at = inst.started_at();
        if matches!(who, Who::Slot(_)) {
            self.pipes
                .drain(self.poll.registry(), &id, &mut sinks!(self));
        }
        let uptime = started_at
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or_default();
        let how = match &status {
            ExitStatus::Signal(sig) => format!("killed by signal {}", sig.as_str()),
            other => format!("exited with {other}"),
        };
        let name = match who {
            Who::Old(pgid) => format!("{id} (old instance, pid {pgid})"),
            Who::Slot(_) => id.to_string(),
        };
        self.output
            .event(&format!("{name} {how} after {}", format_duration(uptime)));
        let fact = Fact::Exited {
            who: who.clone(),
            status,
            group_alive: os::group_exists(pid),
            spec: self.desired.app(&id.app),
        };
        observe(&mut self.observed, fact, now);
        if matches!(who, Who::Slot(_)) {
            self.announce_end(&id);
        }
    }

    /// What follows the slot's run that just ended.
    pub(super) fn announce_end(&self, id: &InstanceId) {
        let Some(inst) = self.observed.instances.get(id) else {
            return;
        };
        let Some(ended) = inst.ended() else {
            return;
        };
        let spec = self.desired.app(&id.app);
        let text = match &ended.next {
            Next::Restart(at) => match inst.last_exit.as_ref().map(|(_, t)| *at - *t) {
                Some(delay) if !delay.is_zero() => {
                    format!("{id} restarting in {}", format_duration(delay))
                }
                _ => format!("{id} restarting now"),
            },
            Next::Finished(_) => {
                let why = match spec.map(|s| (s.restart, s.schedule.is_some())) {
                    Some((_, true)) => "scheduled run done, waiting for the next time",
                    Some((RestartPolicy::OnFailure, _)) => "restart = on-failure, clean exit",
                    _ => "restart = never",
                };
                format!("{id} finished ({why})")
            }
            Next::Errored => format!(
                "{id} errored: crashed {} times in a row (max_restarts = {}), not restarting",
                inst.crashes,
                spec.map(|s| s.max_restarts).unwrap_or_default()
            ),
            Next::Stopped if ended.leftovers.is_some() => return,
            Next::Stopped => format!("{id} stopped"),
        };
        self.output.event(&text);
    }

    /// Instances whose leader is gone but whose group was not empty: notice when the
    /// group has emptied. Orphaned members are reparented to us and reaped as orphans,
    /// so this runs after every reap; it costs one kill(2) per such instance.
    pub(super) fn check_groups(&mut self) {
        let gone = |i: &Instance| {
            i.ended()
                .and_then(|e| e.leftovers)
                .is_some_and(|g| !os::group_exists(g))
        };
        let emptied: Vec<(Who, InstanceId, bool)> = self
            .observed
            .all_where(gone)
            .map(|(who, i)| {
                (
                    who,
                    i.id.clone(),
                    i.ended().is_some_and(|e| e.stop.is_some()),
                )
            })
            .collect();
        for (who, id, stopping) in emptied {
            self.record(Fact::GroupGone(who));
            if stopping {
                self.output.event(&format!("{id} stopped"));
            }
        }
    }

    /// Last duty before leaving: nothing we started may outlive us, including daemons
    /// that escaped their instance's group (as PID 1 this is every other process).
    pub(super) fn sweep(&mut self) {
        let me = std::process::id() as i32;
        let left = os::procs::descendants(me);
        if left.is_empty() {
            return;
        }
        self.output.event(&format!(
            "{} leftover process(es) outside any instance's group, sending SIGTERM",
            left.len()
        ));
        for pid in &left {
            let _ = os::signal_process(*pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + SWEEP_GRACE;
        let mut events = Events::with_capacity(16);
        while Instant::now() < deadline {
            os::reap::reap_all();
            if os::procs::descendants(me).is_empty() {
                return;
            }
            let _ = self.poll.poll(&mut events, Some(Duration::from_millis(20)));
            let _ = self.signals.pending().count();
        }
        for pid in os::procs::descendants(me) {
            let _ = os::signal_process(pid, Signal::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline && !os::procs::descendants(me).is_empty() {
            os::reap::reap_all();
            let _ = self.poll.poll(&mut events, Some(Duration::from_millis(10)));
        }
        os::reap::reap_all();
    }
}
