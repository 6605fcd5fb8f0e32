//! Readiness and health probes: running them and turning their results into facts. tcp/http probes run on the prober's threads; exec probes
//! are children of ours like any other, spawned and reaped on this thread and killed
//! at their timeout. Nothing here waits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Waker;
use nix::sys::signal::Signal;

use super::{Owner, Runtime};
use crate::config::{per_instance, AppSpec, HealthCheck, ReadySpec};
use crate::os;
use crate::os::sd_notify::NotifySocket;
use crate::plan::Purpose;
use crate::probes::{ProbeId, ProbeKind, Prober};
use crate::state::{observe, ExitStatus, Fact, Who};

/// Longest a single readiness probe may take.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

struct InFlight {
    who: Who,
    /// The instance's leader when the probe started: a result for an older run is stale.
    pid: i32,
    purpose: Purpose,
    what: String,
    /// For exec probes: the probe's pid and its deadline.
    exec: Option<(i32, Instant)>,
}

pub(super) struct Checks {
    waker: Arc<Waker>,
    prober: Option<Prober>,
    next_id: ProbeId,
    in_flight: HashMap<ProbeId, InFlight>,
    pub(super) notify: Option<NotifySocket>,
}

impl Checks {
    pub(super) fn new(waker: Arc<Waker>) -> Checks {
        Checks {
            waker,
            prober: None,
            next_id: 1,
            in_flight: HashMap::new(),
            notify: None,
        }
    }

    /// The earliest exec probe deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.in_flight
            .values()
            .filter_map(|p| p.exec.map(|(_, at)| at))
            .min()
    }
}

/// What to run for a probe, from the spec.
enum Probe<'a> {
    Net(ProbeKind, String),
    Exec(&'a crate::config::CommandLine),
}

/// The probe of instance `index` (its `{port}` and other placeholders filled in).
fn probe_of(spec: &AppSpec, index: u32, purpose: Purpose) -> Option<(Probe<'_>, Duration)> {
    let tcp = |a: &str| {
        let a = per_instance::expand(spec, index, a);
        Probe::Net(ProbeKind::Tcp(a.clone()), format!("tcp {a}"))
    };
    let http = |u: &str| {
        let u = per_instance::expand(spec, index, u);
        Probe::Net(ProbeKind::Http(u.clone()), format!("http {u}"))
    };
    match purpose {
        Purpose::Ready => {
            let timeout = READY_PROBE_TIMEOUT.min(spec.ready_timeout);
            let probe = match &spec.ready {
                ReadySpec::Tcp(a) => tcp(a),
                ReadySpec::Http(u) => http(u),
                ReadySpec::Exec(c) => Probe::Exec(c),
                _ => return None,
            };
            Some((probe, timeout))
        }
        Purpose::Health => {
            let health = spec.health.as_ref()?;
            let probe = match &health.check {
                HealthCheck::Tcp(a) => tcp(a),
                HealthCheck::Http(u) => http(u),
                HealthCheck::Exec(c) => Probe::Exec(c),
            };
            Some((probe, health.timeout))
        }
    }
}

impl Runtime {
    pub(super) fn start_probe(&mut self, who: Who, purpose: Purpose) {
        let Some(inst) = self.observed.get(&who) else {
            return;
        };
        let (Some(pid), id) = (inst.pid(), inst.id.clone()) else {
            return;
        };
        let Some(spec) = self.desired.app(&id.app) else {
            return;
        };
        let Some((probe, timeout)) = probe_of(spec, id.index, purpose) else {
            return;
        };
        let probe_id = self.checks.next_id;
        self.checks.next_id += 1;
        let now = Instant::now();
        let mut flight = InFlight {
            who: who.clone(),
            pid,
            purpose,
            what: String::new(),
            exec: None,
        };
        match probe {
            Probe::Net(kind, what) => {
                let waker = self.checks.waker.clone();
                let prober = self
                    .checks
                    .prober
                    .get_or_insert_with(|| Prober::start(waker));
                prober.submit(probe_id, kind, timeout);
                flight.what = what;
            }
            Probe::Exec(command) => {
                flight.what = format!("exec {}", command.argv.join(" "));
                let spawned = self
                    .launcher
                    .exec_spec(spec, id.index, Some(command))
                    .and_then(|exec| os::spawn::spawn(&exec));
                match spawned {
                    Ok(child) => {
                        self.leaders.insert(child.pid, Owner::Probe(probe_id));
                        flight.exec = Some((child.pid, now + timeout));
                    }
                    Err(e) => {
                        self.checks.in_flight.insert(probe_id, flight);
                        observe(&mut self.observed, Fact::ProbeStarted(who), now);
                        self.probe_finished(probe_id, Err(format!("cannot start: {e}")));
                        return;
                    }
                }
            }
        }
        self.checks.in_flight.insert(probe_id, flight);
        observe(&mut self.observed, Fact::ProbeStarted(who), now);
    }

    /// The prober woke the loop.
    pub(super) fn on_probe_results(&mut self) {
        let results = match &self.checks.prober {
            Some(prober) => prober.results(),
            None => return,
        };
        for (id, result) in results {
            self.probe_finished(id, result);
        }
    }

    pub(super) fn on_exec_probe_exit(&mut self, id: ProbeId, status: ExitStatus) {
        let timed_out = self
            .checks
            .in_flight
            .get(&id)
            .and_then(|p| p.exec)
            .is_some_and(|(_, at)| Instant::now() >= at);
        let result = match status {
            _ if timed_out => Err("timed out".to_string()),
            s if s.success() => Ok(()),
            s => Err(format!("exited with {s}")),
        };
        self.probe_finished(id, result);
    }

    /// Exec probes past their timeout are killed; their exit reports the failure.
    pub(super) fn expire_exec_probes(&mut self, now: Instant) {
        for probe in self.checks.in_flight.values_mut() {
            if let Some((pid, at)) = probe.exec {
                if now >= at {
                    let _ = os::signal_group(pid, Signal::SIGKILL);
                    // Past its deadline for good: the next deadline is not this one.
                    probe.exec = Some((pid, at + Duration::from_secs(3600)));
                }
            }
        }
    }

    /// A probe ended: record its result, and say what it means.
    fn probe_finished(&mut self, id: ProbeId, result: Result<(), String>) {
        let Some(flight) = self.checks.in_flight.remove(&id) else {
            return;
        };
        let current = self
            .observed
            .get(&flight.who)
            .filter(|i| i.pid() == Some(flight.pid))
            .map(|i| i.id.clone());
        let Some(inst_id) = current else {
            return; // the run it probed is over
        };
        let fact = Fact::ProbeResult {
            who: flight.who.clone(),
            pid: flight.pid,
            purpose: flight.purpose,
            passed: result.is_ok(),
        };
        self.record(fact);
        match (flight.purpose, result) {
            (Purpose::Ready, Ok(())) => self
                .output
                .event(&format!("{inst_id} is ready ({})", flight.what)),
            (Purpose::Ready, Err(e)) => log::debug!("{inst_id} not ready yet: {e}"),
            (Purpose::Health, Ok(())) => {}
            (Purpose::Health, Err(e)) => {
                let failures = self
                    .observed
                    .get(&flight.who)
                    .and_then(|i| i.run())
                    .map_or(0, |r| r.health_failures);
                let limit = self
                    .desired
                    .app(&inst_id.app)
                    .and_then(|a| a.health.as_ref())
                    .map_or(1, |h| h.failures);
                self.output.event(&format!(
                    "{inst_id} health check failed ({failures}/{limit}): {e}"
                ));
            }
        }
    }
}
