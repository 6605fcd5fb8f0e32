//! Is supervise as a whole ready? One answer, instance by instance, behind `/readyz`
//! and the `STATUS=` line and `READY=1` told to a parent service manager (SPEC section
//! 7). Pure: facts and `now` in.

use std::fmt::Write;
use std::time::Instant;

use super::Desired;
use crate::state::{state_of, InstanceId, Next, Observed};

/// How many names a one-line summary lists before it counts the rest.
const NAMED: usize = 3;

/// One instance that should run (held instances, stopped by a user, should not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceReadiness {
    pub id: InstanceId,
    /// Ready, or finished cleanly for good (a one-shot job): nothing to wait for.
    pub ok: bool,
    /// `ready`, else the state `supervise status` shows (`starting`, `backoff`, ...).
    pub state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub instances: Vec<InstanceReadiness>,
    /// A stop signal was received (or supervise is leaving): never ready again.
    pub shutting_down: bool,
    /// No rolling update or replacement is under way: every running instance is of the
    /// version in force.
    pub converged: bool,
    pub config_error: bool,
}

pub fn readiness(desired: &Desired, observed: &Observed, now: Instant) -> Readiness {
    let mut instances = Vec::new();
    let mut converged = observed.outgoing.is_empty();
    for app in &desired.eco.apps {
        let generation = desired.generation(app);
        for index in 0..app.instances {
            let id = InstanceId::new(&app.name, index);
            if desired.holds.contains(&id) {
                continue;
            }
            let inst = observed.instances.get(&id);
            if let Some(i) = inst.filter(|i| i.pid().is_some()) {
                converged &= i.generation == generation && !i.outdated;
            }
            let ready = inst.is_some_and(|i| i.is_ready(Some(&app.ready), now));
            let clean = inst.and_then(|i| i.ended()).is_some_and(
                |e| matches!(&e.next, Next::Finished(s) if s.clean(&app.success_exit_codes)),
            );
            let state = if ready {
                "ready"
            } else {
                state_of(inst, Some(&app.ready), false, now).as_str()
            };
            instances.push(InstanceReadiness {
                id,
                ok: ready || clean,
                state,
            });
        }
    }
    Readiness {
        instances,
        shutting_down: observed.shutdown.is_some(),
        converged,
        config_error: observed.config_error.is_some(),
    }
}

impl Readiness {
    /// `/readyz` says 200: every instance that should run is ready, and no stop began.
    pub fn ready(&self) -> bool {
        !self.shutting_down && self.instances.iter().all(|i| i.ok)
    }

    /// One line: `12/12 ready`, or what is missing: `10/12 ready; not ready: web.3
    /// starting, db.0 errored`.
    pub fn summary(&self) -> String {
        let total = self.instances.len();
        let ok = self.instances.iter().filter(|i| i.ok).count();
        let mut line = if self.shutting_down {
            format!("stopping; {ok}/{total} ready")
        } else {
            format!("{ok}/{total} ready")
        };
        let missing: Vec<&InstanceReadiness> = self.instances.iter().filter(|i| !i.ok).collect();
        if !self.shutting_down && !missing.is_empty() {
            line.push_str("; not ready:");
            for (n, i) in missing.iter().take(NAMED).enumerate() {
                let sep = if n == 0 { " " } else { ", " };
                let _ = write!(line, "{sep}{} {}", i.id, i.state);
            }
            if missing.len() > NAMED {
                let _ = write!(line, " and {} more", missing.len() - NAMED);
            }
        }
        if self.config_error {
            line.push_str("; the last reload failed (see supervise status)");
        }
        line
    }

    /// The body of `/readyz`: one line per instance, `[+] web.0 ready`.
    pub fn body(&self) -> String {
        let mut body = String::new();
        for i in &self.instances {
            let mark = if i.ok { '+' } else { '-' };
            let _ = writeln!(body, "[{mark}] {} {}", i.id, i.state);
        }
        if self.shutting_down {
            body.push_str("[-] supervise stopping\n");
        }
        body
    }
}

/// What supervise's parent (systemd, podman) has been told so far over sd_notify.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Announced {
    ready: bool,
    reloading: bool,
    stopping: bool,
    status: String,
    /// The count of applied config versions last seen.
    reloads: u64,
}

/// The sd_notify datagrams to send to the parent now, in order, given what it was told:
/// `READY=1` once everything is first ready; `RELOADING=1` with `MONOTONIC_USEC` when a
/// new version of the file is applied (`reloads` counts them) and `READY=1` again once
/// it has converged; `STOPPING=1` once at shutdown; `STATUS=` whenever the summary
/// changes.
pub fn announce(
    told: &mut Announced,
    now: &Readiness,
    reloads: u64,
    monotonic_usec: u64,
) -> Vec<String> {
    let mut out = Vec::new();
    let status = now.summary();
    if now.shutting_down {
        if !told.stopping {
            told.stopping = true;
            out.push(format!("STOPPING=1\nSTATUS={status}"));
        } else if status != told.status {
            out.push(format!("STATUS={status}"));
        }
        told.status = status;
        return out;
    }
    if reloads != told.reloads {
        told.reloads = reloads;
        if told.ready {
            told.reloading = true;
            out.push(format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}"));
        }
    }
    if now.ready() && now.converged && (!told.ready || told.reloading) {
        told.ready = true;
        told.reloading = false;
        out.push(format!("READY=1\nSTATUS={status}"));
    } else if status != told.status {
        out.push(format!("STATUS={status}"));
    }
    told.status = status;
    out
}

#[cfg(test)]
#[path = "readiness_tests.rs"]
mod tests;
