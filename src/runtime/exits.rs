//! Ends of processes: reaping (the one waiter), what an instance's exit means, its
//! group's leftovers, and the final sweep before supervise itself leaves.

use std::time::{Duration, Instant};

use mio::Events;
use nix::sys::signal::Signal;

use super::{Owner, Runtime, SWEEP_GRACE};
use crate::config::units::format_duration;
use crate::config::RestartPolicy;
use crate::os;
use crate::state::{ExitStatus, InstanceId, Outcome, Who};

impl Runtime {
    pub(super) fn reap(&mut self) {
        for (pid, status) in os::reap::reap_all() {
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

    pub(super) fn on_exit(&mut self, who: Who, pid: i32, status: ExitStatus) {
        let now = Instant::now();
        let Some(inst) = self.observed.get(&who) else {
            return;
        };
        let id = inst.id.clone();
        let started_at = inst.started_at;
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
        let group_alive = os::group_exists(pid);
        let spec = self.desired.app(&id.app);
        let outcome = self.observed.exited(&who, spec, status, group_alive, now);
        if matches!(who, Who::Slot(_)) {
            self.announce_outcome(&id, outcome, group_alive);
        }
    }

    pub(super) fn announce_outcome(&self, id: &InstanceId, outcome: Outcome, group_alive: bool) {
        let spec = self.desired.app(&id.app);
        let text = match outcome {
            Outcome::Restart(delay) if delay.is_zero() => format!("{id} restarting now"),
            Outcome::Restart(delay) => format!("{id} restarting in {}", format_duration(delay)),
            Outcome::Finished => {
                let why = match spec.map(|s| s.restart) {
                    Some(RestartPolicy::OnFailure) => "restart = on-failure, clean exit",
                    _ => "restart = never",
                };
                format!("{id} finished ({why})")
            }
            Outcome::Errored(crashes) => format!(
                "{id} errored: crashed {crashes} times in a row (max_restarts = {}), not restarting",
                spec.map(|s| s.max_restarts).unwrap_or_default()
            ),
            Outcome::Stopped if group_alive => return,
            Outcome::Stopped => format!("{id} stopped"),
        };
        self.output.event(&text);
    }

    /// Instances whose leader is gone but whose group was not empty: notice when the
    /// group has emptied. Orphaned members are reparented to us and reaped as orphans,
    /// so this runs after every reap; it costs one kill(2) per such instance.
    pub(super) fn check_groups(&mut self) {
        let emptied: Vec<(Who, InstanceId, bool)> = self
            .observed
            .all()
            .filter(|(_, i)| i.pid.is_none() && i.group_alive)
            .filter(|(_, i)| !i.pgid.is_some_and(os::group_exists))
            .map(|(who, i)| (who, i.id.clone(), i.stop.is_some()))
            .collect();
        for (who, id, stopping) in emptied {
            self.observed.group_gone(&who);
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
