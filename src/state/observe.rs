//! The one entry point for every change to the observed state: a [`Fact`] (something
//! that happened, or an effect the runtime carried out) is recorded by [`observe`].
//! The runtime translates its events into facts; the plan simulator in the unit tests
//! records the same facts, so both keep the books the same way.

use std::time::Instant;

use super::instance::{Ended, Instance, Next, Phase, Run, Stop, Why};
use super::{
    decide, Armed, Command, ExitStatus, InstanceId, NotifyMessage, Observed, Outcome, Purpose,
    Shutdown, Verb, Who,
};
use crate::config::AppSpec;

/// What reading the ecosystem file again gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// The same bytes as the version in force.
    Unchanged,
    /// Invalid; the running apps are left as they are.
    Refused(String),
    /// A valid version replaced the desired state.
    Applied,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Fact<'a> {
    /// The slot's instance started: its leader and the generation it runs.
    Spawned {
        id: InstanceId,
        pid: i32,
        generation: u64,
    },
    /// fork/exec failed: a crash like any other, judged by the app's policy.
    SpawnFailed {
        id: InstanceId,
        generation: u64,
        error: String,
        spec: Option<&'a AppSpec>,
    },
    /// The leader exited; `group_alive` says whether members of its group remain.
    Exited {
        who: Who,
        status: ExitStatus,
        group_alive: bool,
        spec: Option<&'a AppSpec>,
    },
    /// The leftovers of an exited leader's group are gone.
    GroupGone(Who),
    /// The stop signal was sent.
    StopSent(Who, Why),
    /// SIGKILL was sent.
    Killed(Who),
    /// A readiness that comes with time (`delay`) has elapsed.
    Ready(Who),
    /// An sd_notify message; `ready_counts` when the app's readiness is `notify`.
    Notified {
        who: Who,
        message: NotifyMessage,
        ready_counts: bool,
    },
    ProbeStarted(Who),
    /// A probe of the run led by `pid` ended (a result for an older run is ignored).
    ProbeResult {
        who: Who,
        pid: i32,
        purpose: Purpose,
        passed: bool,
    },
    /// Resident memory of the instances' groups, in bytes.
    MemorySampled(Vec<(Who, u64)>),
    /// Files changed: the ecosystem file (or an env_file), and apps' `watch` paths.
    FilesChanged {
        config: bool,
        apps: Vec<String>,
    },
    /// The ecosystem file was read again (debounced, or on SIGHUP).
    ConfigRead(Reading),
    /// An app's watched files changed and its restart epoch was bumped.
    WatchHandled(String),
    /// SIGTERM or SIGINT (a second one forces), or SIGQUIT (`quit`: forces at once).
    ShutdownAsked {
        quit: bool,
    },
    /// A critical app failed for good with this exit code: stop everything.
    CriticalFailed {
        code: i32,
    },
    /// A rolling update begins for this slot: its instance becomes an outgoing one,
    /// serving until its successor is ready.
    Replaced(InstanceId),
    /// A rolling update's new instance failed: the old one, still serving, takes its
    /// slot back, the new one is to be stopped, and the app stays on `generation`'s
    /// predecessor.
    RolledBack {
        id: InstanceId,
        generation: u64,
        /// What the new instance did (`did not get ready within 30s`).
        why: String,
    },
    /// The record is gone and no longer wanted.
    Forgotten(Who),
    /// An app's next `schedule` / `cron_restart` time was computed.
    ScheduleArmed {
        app: String,
        armed: Armed,
    },
    /// An app's time came: the job's instances get a fresh run (`run`), or the run was
    /// skipped (its previous run still going), or the rolling restart was begun. The
    /// next time is computed afresh.
    ScheduleFired {
        app: String,
        run: Option<u32>,
    },
    /// The app no longer has a schedule.
    ScheduleDropped(String),
    /// A control command, with what it changes in the observed state at once.
    Command(Command),
    /// The command with this ticket was answered.
    Answered(u64),
    /// A control client left; its commands are dropped.
    ClientGone(usize),
    /// An app's start waits for a dependency that failed for good, or no longer does.
    Blocked {
        app: String,
        reason: Option<String>,
    },
}

/// Record one fact.
pub fn observe(obs: &mut Observed, fact: Fact<'_>, now: Instant) {
    match fact {
        Fact::Spawned {
            id,
            pid,
            generation,
        } => {
            let inst = begin_run(obs, &id, generation);
            inst.phase = Phase::Running(Run {
                pid,
                started_at: now,
                ready_at: None,
                notify_stopping: false,
                watchdog_at: None,
                probe_in_flight: false,
                last_probe_at: None,
                health_failures: 0,
                memory: None,
                stop_wanted: None,
                stop: None,
            });
        }
        Fact::SpawnFailed {
            id,
            generation,
            error,
            spec,
        } => {
            let shutting_down = obs.shutdown.is_some();
            let inst = begin_run(obs, &id, generation);
            let status = ExitStatus::SpawnFailed(error);
            let next = judge(inst, spec, &status, shutting_down, false, None, now);
            inst.last_exit = Some((status, now));
            inst.phase = Phase::Ended(Ended {
                leftovers: None,
                stop: None,
                next,
            });
        }
        Fact::Exited {
            who,
            status,
            group_alive,
            spec,
        } => {
            let shutting_down = obs.shutdown.is_some();
            let outgoing = matches!(who, Who::Old(_));
            let Some(inst) = obs.get_mut(&who) else {
                return;
            };
            let Some(run) = inst.run().cloned() else {
                return;
            };
            let next = judge(inst, spec, &status, shutting_down, outgoing, run.stop, now);
            inst.last_exit = Some((status, now));
            inst.phase = Phase::Ended(Ended {
                leftovers: group_alive.then_some(run.pid),
                stop: run.stop,
                next,
            });
        }
        Fact::GroupGone(who) => {
            if let Some(Phase::Ended(ended)) = obs.get_mut(&who).map(|i| &mut i.phase) {
                ended.leftovers = None;
            }
        }
        Fact::StopSent(who, why) => {
            if let Some(inst) = obs.get_mut(&who) {
                if let Some(run) = inst.run_mut() {
                    run.stop_wanted = None;
                }
                if let Some(stop) = inst.stop_mut() {
                    *stop = Some(Stop {
                        at: now,
                        killed: false,
                        why,
                    });
                }
            }
        }
        Fact::Killed(who) => {
            if let Some(stop) = obs.get_mut(&who).and_then(Instance::stop_mut) {
                let (at, why) = stop.map_or((now, Why::Asked), |s| (s.at, s.why));
                *stop = Some(Stop {
                    at,
                    killed: true,
                    why,
                });
            }
        }
        Fact::Ready(who) => {
            if let Some(run) = obs.get_mut(&who).and_then(Instance::run_mut) {
                run.ready_at.get_or_insert(now);
            }
        }
        Fact::Notified {
            who,
            message,
            ready_counts,
        } => {
            let Some(inst) = obs.get_mut(&who) else {
                return;
            };
            if let Some(text) = message.status {
                inst.status_text = Some(text);
            }
            if let Some(run) = inst.run_mut() {
                if message.ready && ready_counts {
                    run.ready_at.get_or_insert(now);
                }
                run.notify_stopping |= message.stopping;
                if message.watchdog {
                    run.watchdog_at = Some(now);
                }
            }
        }
        Fact::ProbeStarted(who) => {
            if let Some(run) = obs.get_mut(&who).and_then(Instance::run_mut) {
                run.probe_in_flight = true;
                run.last_probe_at = Some(now);
            }
        }
        Fact::ProbeResult {
            who,
            pid,
            purpose,
            passed,
        } => {
            let Some(run) = obs.get_mut(&who).and_then(Instance::run_mut) else {
                return;
            };
            if run.pid != pid {
                return;
            }
            run.probe_in_flight = false;
            run.last_probe_at = Some(now);
            match (purpose, passed) {
                (Purpose::Ready, true) => {
                    run.ready_at.get_or_insert(now);
                }
                (Purpose::Ready, false) => {}
                (Purpose::Health, true) => run.health_failures = 0,
                (Purpose::Health, false) => run.health_failures += 1,
            }
        }
        Fact::MemorySampled(samples) => {
            obs.memory_sampled_at = Some(now);
            for (who, bytes) in samples {
                if let Some(run) = obs.get_mut(&who).and_then(Instance::run_mut) {
                    run.memory = Some(bytes);
                }
            }
        }
        Fact::FilesChanged { config, apps } => {
            if config {
                let first = obs.changes.config.map_or(now, |(first, _)| first);
                obs.changes.config = Some((first, now));
            }
            for app in apps {
                obs.changes.apps.insert(app, now);
            }
        }
        Fact::ConfigRead(reading) => {
            obs.changes.config = None;
            match reading {
                Reading::Unchanged => {}
                Reading::Refused(error) => obs.config_error = Some(error),
                Reading::Applied => {
                    obs.config_error = None;
                    obs.failed_generation.clear();
                    obs.rollback_why.clear();
                    obs.reloads += 1;
                    obs.reloaded_at = Some(now);
                }
            }
        }
        Fact::ScheduleArmed { app, armed } => {
            obs.schedules.insert(app, armed);
        }
        Fact::ScheduleFired { app, run } => {
            obs.schedules.remove(&app);
            for index in 0..run.unwrap_or(0) {
                let id = InstanceId::new(&app, index);
                let inst = obs
                    .instances
                    .entry(id.clone())
                    .or_insert_with(|| Instance::new(id));
                if !inst.alive() {
                    inst.crashes = 0;
                    inst.phase = Phase::New;
                }
            }
        }
        Fact::ScheduleDropped(app) => {
            obs.schedules.remove(&app);
        }
        Fact::WatchHandled(app) => {
            obs.changes.apps.remove(&app);
        }
        Fact::ShutdownAsked { quit } => {
            let force = quit || obs.shutdown.is_some();
            let exit_code = obs.shutdown.and_then(|s| s.exit_code);
            obs.shutdown = Some(Shutdown {
                at: now,
                force,
                exit_code,
            });
        }
        Fact::CriticalFailed { code } => {
            if obs.shutdown.is_none() {
                obs.shutdown = Some(Shutdown {
                    at: now,
                    force: false,
                    exit_code: Some(code),
                });
            }
        }
        Fact::Replaced(id) => replace(obs, &id),
        Fact::RolledBack {
            id,
            generation,
            why,
        } => {
            if let Some(new) = rollback(obs, &id) {
                obs.failed_generation.insert(id.app.clone(), generation);
                obs.rollback_why.insert(id.app.clone(), why);
                let run = new.and_then(|new| obs.outgoing.get_mut(&new));
                if let Some(run) = run.and_then(Instance::run_mut) {
                    run.stop_wanted = Some(Why::RolledBack);
                }
            }
        }
        Fact::Forgotten(who) => {
            match who {
                Who::Slot(id) => obs.instances.remove(&id),
                Who::Old(pgid) => obs.outgoing.remove(&pgid),
            };
        }
        Fact::Command(mut command) => {
            for id in &command.targets {
                let Some(inst) = obs.instances.get_mut(id) else {
                    continue;
                };
                match command.verb {
                    Verb::Stop => {}
                    Verb::Start if !inst.alive() => reset(inst),
                    Verb::Start => {}
                    Verb::Restart | Verb::Reload if inst.pid().is_none() => reset(inst),
                    Verb::Restart => {
                        if let Some(run) = inst.run_mut() {
                            run.stop_wanted = Some(Why::Restart);
                        }
                    }
                    Verb::Reload => inst.outdated = true,
                }
            }
            obs.tickets += 1;
            command.ticket = obs.tickets;
            obs.commands.push(command);
        }
        Fact::Answered(ticket) => obs.commands.retain(|c| c.ticket != ticket),
        Fact::ClientGone(asker) => obs.commands.retain(|c| c.asker != asker),
        Fact::Blocked { app, reason } => match reason {
            Some(reason) => {
                obs.blocked.insert(app, reason);
            }
            None => {
                obs.blocked.remove(&app);
            }
        },
    }
}

/// The bookkeeping every new run of a slot starts with.
fn begin_run<'o>(obs: &'o mut Observed, id: &InstanceId, generation: u64) -> &'o mut Instance {
    let inst = obs
        .instances
        .entry(id.clone())
        .or_insert_with(|| Instance::new(id.clone()));
    inst.runs += 1;
    if inst.generation != generation {
        // A new version starts with a clean slate.
        inst.crashes = 0;
    }
    inst.generation = generation;
    inst.outdated = false;
    inst.status_text = None;
    inst
}

/// What follows an exit: asked-for exits (a stop that was not a failure, shutdown, an
/// outgoing instance) are just stopped; the others go by the app's restart policy.
fn judge(
    inst: &mut Instance,
    spec: Option<&AppSpec>,
    status: &ExitStatus,
    shutting_down: bool,
    outgoing: bool,
    stop: Option<Stop>,
    now: Instant,
) -> Next {
    let asked = stop.is_some_and(|s| !s.why.failure());
    let uptime = inst.uptime(now);
    match spec {
        Some(spec) if !(asked || shutting_down || outgoing) => {
            match decide(spec, &mut inst.crashes, status, uptime) {
                Outcome::Restart(delay) => Next::Restart(now + delay),
                Outcome::Finished => Next::Finished(status.clone()),
                Outcome::Errored(_) => Next::Errored,
                Outcome::Stopped => Next::Stopped,
            }
        }
        _ => Next::Stopped,
    }
}

/// `start`/`restart` of an instance that errored, finished or backs off: a clean
/// slate, started at once.
fn reset(inst: &mut Instance) {
    inst.crashes = 0;
    if let Phase::Ended(ended) = &mut inst.phase {
        ended.next = Next::Stopped;
    }
}

fn replace(obs: &mut Observed, id: &InstanceId) {
    let Some(pgid) = obs.instances.get(id).and_then(Instance::group) else {
        return;
    };
    let Some(old) = obs.instances.remove(id) else {
        return;
    };
    // The slot keeps its history (restart count) for status.
    let mut fresh = Instance::new(id.clone());
    fresh.runs = old.runs;
    obs.instances.insert(id.clone(), fresh);
    obs.outgoing.insert(pgid, old);
}

/// Swap the slot's new instance with its outgoing predecessor; the new one's key.
fn rollback(obs: &mut Observed, id: &InstanceId) -> Option<Option<i32>> {
    let old_key = *obs
        .outgoing
        .iter()
        .find(|(_, o)| &o.id == id && o.alive() && o.stop().is_none())?
        .0;
    obs.instances.get(id)?;
    let old = obs.outgoing.remove(&old_key)?;
    let new = obs.instances.insert(id.clone(), old)?;
    // A new instance that already exited leaves nothing to stop.
    let new_key = new.group();
    if let Some(key) = new_key {
        obs.outgoing.insert(key, new);
    }
    Some(new_key)
}
