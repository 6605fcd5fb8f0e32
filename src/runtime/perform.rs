//! Carrying out the plan's actions: the only place that starts or signals processes on
//! the core's behalf. Each effect is recorded as a fact before the next plan.

use std::time::Instant;

use nix::sys::signal::Signal;

use super::{Owner, Runtime};
use crate::config::units::format_duration;
use crate::logs::Stream;
use crate::os;
use crate::plan::{stop_policy, Action};
use crate::state::{ExitStatus, InstanceId, Who};

impl Runtime {
    pub(super) fn perform(&mut self, action: Action) {
        log::debug!("perform {action:?}");
        match action {
            Action::Spawn(id) => self.spawn(id),
            Action::Replace(id) => {
                if let Some(old) = self.observed.replace(&id) {
                    log::debug!("{id} replaced, old instance is now {old:?}");
                }
            }
            Action::Stop(who) => self.stop(&who),
            Action::Kill(who) => self.kill(&who),
            Action::Forget(who) => self.observed.forget(&who),
            Action::Probe(who, purpose) => self.start_probe(who, purpose),
            Action::Ready(id) => {
                self.observed
                    .mark_ready(&Who::Slot(id.clone()), Instant::now());
                self.output.event(&format!("{id} is ready (delay)"));
            }
            Action::ReadyTimeout(id) => self.ready_timeout(&id),
            Action::WatchdogMiss(who) => self.watchdog_missed(&who),
            Action::Exit(_) => {}
        }
    }

    fn spawn(&mut self, id: InstanceId) {
        let Some(spec) = self.desired.app(&id.app) else {
            return;
        };
        let generation = self.desired.generation(spec);
        let now = Instant::now();
        let spawned = self.instance_exec(spec, id.index).and_then(|mut exec| {
            if let Err(e) = self.adapter.apply(spec, &mut exec.env) {
                self.output
                    .event(&format!("{id}: {e}; starting it without"));
            }
            os::spawn::spawn(&exec)
        });
        match spawned {
            Ok(child) => {
                self.leaders.insert(child.pid, Owner::Instance(id.clone()));
                self.observed.spawned(&id, child.pid, generation, now);
                let registry = self.poll.registry();
                let pipes = [
                    (child.stdout, Stream::Stdout),
                    (child.stderr, Stream::Stderr),
                ];
                for (fd, stream) in pipes {
                    let Some(fd) = fd else { continue };
                    if let Err(e) = self.pipes.add(registry, fd, &id, stream) {
                        log::warn!("cannot watch {id}'s {stream:?}: {e}");
                    }
                }
                self.output
                    .event(&format!("{id} started (pid {})", child.pid));
            }
            Err(e) => {
                // A failed start is a crash like any other: it backs off and counts
                // towards max_restarts.
                self.output.event(&format!("{id} failed to start: {e}"));
                self.observed.spawned(&id, 0, generation, now);
                let who = Who::Slot(id.clone());
                let spec = self.desired.app(&id.app);
                let status = ExitStatus::SpawnFailed(e.to_string());
                let outcome = self.observed.exited(&who, spec, status, false, now);
                if let Some(inst) = self.observed.instances.get_mut(&id) {
                    inst.pgid = None;
                }
                self.announce_outcome(&id, outcome, false);
            }
        }
    }

    pub(super) fn stop(&mut self, who: &Who) {
        let Some(inst) = self.observed.get(who) else {
            return;
        };
        let id = &inst.id;
        let (signal, _) = stop_policy(&self.desired, &id.app);
        let text = match (who, inst.pid.is_some()) {
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
        self.observed.stop_requested(who, Instant::now());
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
        self.observed.killed(who, Instant::now());
    }

    /// Signal the whole group, and the leader on its own if it moved to another group.
    fn signal_instance(&self, who: &Who, signal: Signal) {
        let Some(inst) = self.observed.get(who) else {
            return;
        };
        if let Some(pgid) = inst.pgid {
            if let Err(e) = os::signal_group(pgid, signal) {
                log::debug!("signal {signal} to group {pgid} of {}: {e}", inst.id);
            }
        }
        if let Some(pid) = inst.pid {
            if os::group_of(pid) != inst.pgid {
                let _ = os::signal_process(pid, signal);
            }
        }
    }
}
