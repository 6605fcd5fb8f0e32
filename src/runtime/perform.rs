//! Carrying out the plan's actions: the only place that starts or signals processes on
//! the core's behalf. Each effect is recorded as a fact before the next plan.

use std::time::Instant;

use nix::sys::signal::Signal;

use super::Runtime;
use crate::config::units::format_duration;
use crate::logs::Stream;
use crate::os;
use crate::plan::{stop_policy, Action};
use crate::state::{ExitStatus, InstanceId};

impl Runtime {
    pub(super) fn perform(&mut self, action: Action) {
        log::debug!("perform {action:?}");
        match action {
            Action::Spawn(id) => self.spawn(id),
            Action::Stop(id) => self.stop(&id),
            Action::Kill(id) => self.kill(&id),
            Action::Forget(id) => {
                self.observed.instances.remove(&id);
            }
            Action::Exit(_) => {}
        }
    }

    fn spawn(&mut self, id: InstanceId) {
        let Some(spec) = self.desired.app(&id.app) else {
            return;
        };
        let now = Instant::now();
        match os::spawn::spawn(spec, id.index) {
            Ok(child) => {
                self.leaders.insert(child.pid, id.clone());
                self.observed.spawned(&id, child.pid, now);
                let registry = self.poll.registry();
                for (fd, stream) in [(child.stdout, Stream::Stdout), (child.stderr, Stream::Stderr)] {
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
                self.observed.spawned(&id, 0, now);
                let spec = self.desired.app(&id.app);
                let outcome =
                    self.observed
                        .exited(&id, spec, ExitStatus::SpawnFailed(e.to_string()), false, now);
                if let Some(inst) = self.observed.instances.get_mut(&id) {
                    inst.pgid = None;
                }
                self.announce_outcome(&id, outcome, false);
            }
        }
    }

    fn stop(&mut self, id: &InstanceId) {
        let (signal, _) = stop_policy(&self.desired, id);
        let Some(inst) = self.observed.instances.get(id) else {
            return;
        };
        if inst.pid.is_some() {
            self.output
                .event(&format!("{id} stopping ({})", signal.as_str()));
        } else {
            self.output.event(&format!(
                "{id} exited but processes remain in its group, stopping them ({})",
                signal.as_str()
            ));
        }
        self.signal_instance(id, signal);
        self.observed.stop_requested(id, Instant::now());
    }

    fn kill(&mut self, id: &InstanceId) {
        let (_, timeout) = stop_policy(&self.desired, id);
        let forced = self.observed.shutdown.is_some_and(|s| s.force);
        if forced {
            self.output.event(&format!("{id} killed (SIGKILL to its process group)"));
        } else {
            self.output.event(&format!(
                "{id} still running after {}, sending SIGKILL to its process group",
                format_duration(timeout)
            ));
        }
        self.signal_instance(id, Signal::SIGKILL);
        self.observed.killed(id, Instant::now());
    }

    /// Signal the whole group, and the leader on its own if it moved to another group.
    fn signal_instance(&self, id: &InstanceId, signal: Signal) {
        let Some(inst) = self.observed.instances.get(id) else {
            return;
        };
        if let Some(pgid) = inst.pgid {
            if let Err(e) = os::signal_group(pgid, signal) {
                log::debug!("signal {signal} to group {pgid} of {id}: {e}");
            }
        }
        if let Some(pid) = inst.pid {
            if os::group_of(pid) != inst.pgid {
                let _ = os::signal_process(pid, signal);
            }
        }
    }
}
