//! Simulations of the reconcile loop: facts in, actions out, time as an argument.

mod decisions;
mod depends;
mod rollouts;
mod schedules;

use super::*;
use crate::config::{RestartPolicy, Settings};
use crate::state::{observe, ExitStatus, Fact, Reading};
use std::path::PathBuf;

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(super) fn app(name: &str, instances: u32) -> AppSpec {
    let mut a = AppSpec::new(name, "/bin/sleep", &["sleep", "1000"]);
    a.instances = instances;
    a
}

pub(super) fn eco(apps: Vec<AppSpec>) -> Ecosystem {
    Ecosystem {
        path: PathBuf::from("/tmp/ecosystem.toml"),
        settings: Settings::default(),
        apps,
    }
}

pub(super) fn id(app: &str, index: u32) -> InstanceId {
    InstanceId::new(app, index)
}

pub(super) fn slot(app: &str, index: u32) -> Who {
    Who::Slot(id(app, index))
}

fn stop(who: Who) -> Action {
    Action::Stop(who, Why::Asked)
}

/// A fake runtime: performs actions the way the real one does, recording the same
/// facts through the same `state::observe`, with pids handed out in order and time as
/// a field. Answers to control commands are kept for the test to read.
pub(super) struct Sim {
    pub(super) d: Desired,
    pub(super) obs: Observed,
    pub(super) now: Instant,
    next_pid: i32,
    /// Resident memory per process group, as `SampleMemory` would read it.
    memory: BTreeMap<i32, u64>,
    answers: Vec<(usize, Result<String, String>)>,
    /// The wall clock, moving with `now` (schedules are computed from it).
    wall: chrono::DateTime<chrono::Utc>,
}

impl Sim {
    pub(super) fn new(eco: Ecosystem) -> Sim {
        Sim {
            d: Desired::new(eco),
            obs: Observed::default(),
            now: Instant::now(),
            next_pid: 100,
            memory: BTreeMap::new(),
            answers: Vec::new(),
            wall: "2026-11-30T06:59:30Z".parse().unwrap(),
        }
    }

    pub(super) fn record(&mut self, fact: Fact<'_>) {
        observe(&mut self.obs, fact, self.now);
    }

    fn perform(&mut self, action: &Action) {
        match action {
            Action::Spawn(i) => {
                self.next_pid += 1;
                let generation = self.d.generation(self.d.app(&i.app).unwrap());
                let fact = Fact::Spawned {
                    id: i.clone(),
                    pid: self.next_pid,
                    generation,
                };
                self.record(fact);
            }
            Action::Replace(i) => self.record(Fact::Replaced(i.clone())),
            Action::Stop(w, why) => self.record(Fact::StopSent(w.clone(), *why)),
            Action::Kill(w) => self.record(Fact::Killed(w.clone())),
            Action::Forget(w) => self.record(Fact::Forgotten(w.clone())),
            Action::Probe(w, _) => self.record(Fact::ProbeStarted(w.clone())),
            Action::Ready(i) => self.record(Fact::Ready(Who::Slot(i.clone()))),
            Action::Rollback(i, generation, why) => self.record(Fact::RolledBack {
                id: i.clone(),
                generation: *generation,
                why: why.clone(),
            }),
            Action::SampleMemory(watched) => {
                let samples = watched
                    .iter()
                    .filter_map(|(w, g)| Some((w.clone(), *self.memory.get(g)?)))
                    .collect();
                self.record(Fact::MemorySampled(samples));
            }
            Action::Reload => self.record(Fact::ConfigRead(Reading::Unchanged)),
            Action::WatchRestart(app) => {
                *self.d.epochs.entry(app.clone()).or_default() += 1;
                self.record(Fact::WatchHandled(app.clone()));
            }
            Action::Answer {
                ticket,
                asker,
                result,
            } => {
                self.answers.push((*asker, result.clone()));
                self.record(Fact::Answered(*ticket));
            }
            Action::ArmSchedule(app) => {
                let times = schedule::times_of(self.d.app(app).unwrap())
                    .unwrap()
                    .clone();
                let next = times.next_after(&self.wall);
                let armed = crate::state::Armed {
                    at: next.map(|n| self.now + (n - self.wall).to_std().unwrap()),
                    wall: next.map(std::time::SystemTime::from),
                    times,
                };
                self.record(Fact::ScheduleArmed {
                    app: app.clone(),
                    armed,
                });
            }
            Action::RunJob { app, skip } => {
                let run = (!skip).then(|| self.d.app(app).unwrap().instances);
                let app = app.clone();
                self.record(Fact::ScheduleFired { app, run });
            }
            Action::ScheduledRestart(app) => {
                *self.d.epochs.entry(app.clone()).or_default() += 1;
                let app = app.clone();
                self.record(Fact::ScheduleFired { app, run: None });
            }
            Action::DropSchedule(app) => self.record(Fact::ScheduleDropped(app.clone())),
            Action::Blocked { app, reason } => self.record(Fact::Blocked {
                app: app.clone(),
                reason: reason.clone(),
            }),
            Action::CriticalFailed(_, code) => self.record(Fact::CriticalFailed { code: *code }),
            Action::Exit(_) => {}
        }
    }

    /// Plan and perform until nothing more happens now; the actions taken.
    pub(super) fn step(&mut self) -> Vec<Action> {
        let mut all = Vec::new();
        for _ in 0..100 {
            let p = plan(&self.d, &self.obs, self.now);
            if p.actions.is_empty() {
                break;
            }
            let exit = p.actions.iter().any(|a| matches!(a, Action::Exit(_)));
            for a in &p.actions {
                self.perform(a);
            }
            all.extend(p.actions);
            if exit {
                break;
            }
        }
        all
    }

    pub(super) fn wake_at(&self) -> Option<Instant> {
        plan(&self.d, &self.obs, self.now).wake_at
    }

    /// The leader of `who` exited; what follows, as recorded.
    fn exit_who(&mut self, who: Who, status: ExitStatus, group_alive: bool) -> Next {
        let spec = self.d.app(&self.obs.get(&who).unwrap().id.app).cloned();
        let fact = Fact::Exited {
            who: who.clone(),
            status,
            group_alive,
            spec: spec.as_ref(),
        };
        observe(&mut self.obs, fact, self.now);
        self.obs.get(&who).unwrap().ended().unwrap().next.clone()
    }

    pub(super) fn exit(&mut self, i: &InstanceId, status: ExitStatus) -> Next {
        self.exit_who(Who::Slot(i.clone()), status, false)
    }

    pub(super) fn pid(&self, i: &InstanceId) -> Option<i32> {
        self.obs.instances.get(i).and_then(Instance::pid)
    }

    pub(super) fn advance(&mut self, d: Duration) {
        self.now += d;
        self.wall += chrono::Duration::from_std(d).unwrap();
    }
}

#[test]
fn starts_every_instance_and_then_rests() {
    let mut s = Sim::new(eco(vec![app("web", 3), app("worker", 1)]));
    let acts = s.step();
    assert_eq!(
        acts,
        vec![
            Action::Spawn(id("web", 0)),
            Action::Spawn(id("web", 1)),
            Action::Spawn(id("web", 2)),
            Action::Spawn(id("worker", 0)),
        ]
    );
    assert!(s.step().is_empty());
    assert_eq!(s.wake_at(), None, "nothing to wait for: no timer");
}

#[test]
fn crash_loop_backs_off_then_errors_while_others_run() {
    let mut bad = app("bad", 1);
    bad.max_restarts = 3;
    bad.restart_delay = ms(100);
    let mut s = Sim::new(eco(vec![bad, app("good", 1)]));
    s.step();
    let good_pid = s.pid(&id("good", 0));
    let mut starts = 1;
    let mut delays = Vec::new();
    loop {
        s.advance(ms(5));
        match s.exit(&id("bad", 0), ExitStatus::Code(1)) {
            Next::Restart(at) => delays.push(at - s.now),
            Next::Errored => {
                assert_eq!(s.obs.instances[&id("bad", 0)].crashes, 4);
                break;
            }
            o => panic!("{o:?}"),
        }
        assert!(s.step().is_empty(), "no restart before the delay");
        let wake = s.wake_at().expect("a restart is due");
        s.now = wake;
        assert_eq!(s.step(), vec![Action::Spawn(id("bad", 0))]);
        starts += 1;
    }
    assert_eq!(starts, 4);
    assert_eq!(delays, vec![ms(100), ms(200), ms(400)]);
    assert!(s.step().is_empty(), "errored instances are left alone");
    assert_eq!(s.wake_at(), None);
    assert_eq!(s.pid(&id("good", 0)), good_pid);
}

#[test]
fn dependency_starts_first_and_stops_last() {
    let mut api = app("api", 2);
    api.depends_on = vec!["db".into()];
    let mut s = Sim::new(eco(vec![api, app("db", 1)]));
    let acts = s.step();
    let pos = |a: &Action| acts.iter().position(|x| x == a).unwrap();
    assert!(pos(&Action::Spawn(id("db", 0))) < pos(&Action::Spawn(id("api", 0))));

    s.record(Fact::ShutdownAsked { quit: false });
    let acts = s.step();
    assert_eq!(acts, vec![stop(slot("api", 0)), stop(slot("api", 1))]);
    s.exit(&id("api", 0), ExitStatus::Signal(Signal::SIGTERM));
    assert!(s.step().is_empty(), "db waits for every api instance");
    s.exit(&id("api", 1), ExitStatus::Code(0));
    assert_eq!(s.step(), vec![stop(slot("db", 0))]);
    s.exit(&id("db", 0), ExitStatus::Code(0));
    assert_eq!(s.step(), vec![Action::Exit(0)]);
}

#[test]
fn dependents_wait_while_the_dependency_backs_off() {
    let mut api = app("api", 1);
    api.depends_on = vec!["db".into()];
    api.restart_delay = ms(10);
    let mut db = app("db", 1);
    db.restart_delay = ms(50);
    let mut s = Sim::new(eco(vec![db, api]));
    s.step();
    s.exit(&id("db", 0), ExitStatus::Code(1));
    s.exit(&id("api", 0), ExitStatus::Code(1));
    s.advance(ms(20));
    assert_eq!(s.step(), vec![], "api is due but waits for db to be up");
    s.advance(ms(40));
    assert_eq!(
        s.step(),
        vec![Action::Spawn(id("db", 0)), Action::Spawn(id("api", 0))]
    );
}

#[test]
fn stop_timeout_escalates_to_kill() {
    let mut a = app("web", 1);
    a.stop_timeout = ms(500);
    let mut s = Sim::new(eco(vec![a]));
    s.step();
    s.record(Fact::ShutdownAsked { quit: false });
    assert_eq!(s.step(), vec![stop(slot("web", 0))]);
    assert_eq!(s.wake_at(), Some(s.now + ms(500)));
    s.advance(ms(499));
    assert!(s.step().is_empty());
    s.advance(ms(1));
    assert_eq!(s.step(), vec![Action::Kill(slot("web", 0))]);
    assert!(s.step().is_empty(), "killed once");
    s.exit(&id("web", 0), ExitStatus::Signal(Signal::SIGKILL));
    assert_eq!(s.step(), vec![Action::Exit(0)]);
}

#[test]
fn second_signal_kills_at_once() {
    let mut s = Sim::new(eco(vec![app("web", 2)]));
    s.step();
    s.record(Fact::ShutdownAsked { quit: false });
    s.step();
    s.record(Fact::ShutdownAsked { quit: false });
    assert_eq!(
        s.step(),
        vec![Action::Kill(slot("web", 0)), Action::Kill(slot("web", 1))]
    );
}

#[test]
fn shutdown_drops_pending_restarts() {
    let mut s = Sim::new(eco(vec![app("web", 1)]));
    s.step();
    s.exit(&id("web", 0), ExitStatus::Code(1));
    s.record(Fact::ShutdownAsked { quit: false });
    assert_eq!(s.step(), vec![Action::Exit(0)]);
}

#[test]
fn leftover_group_is_stopped_before_restart() {
    let mut s = Sim::new(eco(vec![app("web", 1)]));
    s.step();
    let i = id("web", 0);
    s.advance(ms(5000));
    let w = Who::Slot(i.clone());
    let out = s.exit_who(w.clone(), ExitStatus::Code(0), true);
    assert_eq!(out, Next::Restart(s.now));
    assert_eq!(s.step(), vec![stop(w.clone())]);
    assert!(s.step().is_empty(), "no new run while the old group lives");
    s.record(Fact::GroupGone(w));
    assert_eq!(s.step(), vec![Action::Spawn(i)]);
}

#[test]
fn scaling_down_stops_the_highest_numbers_and_forgets_them() {
    let mut s = Sim::new(eco(vec![app("web", 4)]));
    s.step();
    let pids: Vec<_> = (0..2).map(|n| s.pid(&id("web", n))).collect();
    s.d.eco.apps[0].instances = 2;
    assert_eq!(s.step(), vec![stop(slot("web", 2)), stop(slot("web", 3))]);
    s.exit(&id("web", 2), ExitStatus::Signal(Signal::SIGTERM));
    s.exit(&id("web", 3), ExitStatus::Signal(Signal::SIGTERM));
    assert_eq!(
        s.step(),
        vec![
            Action::Forget(slot("web", 2)),
            Action::Forget(slot("web", 3))
        ]
    );
    let after: Vec<_> = (0..2).map(|n| s.pid(&id("web", n))).collect();
    assert_eq!(pids, after);
}

#[test]
fn finished_apps_end_supervise_with_their_code() {
    let mut a = app("job", 2);
    a.restart = RestartPolicy::Never;
    let mut s = Sim::new(eco(vec![a]));
    s.step();
    s.exit(&id("job", 0), ExitStatus::Code(0));
    assert!(s.step().is_empty(), "one instance still runs");
    s.exit(&id("job", 1), ExitStatus::Code(3));
    assert_eq!(s.step(), vec![Action::Exit(1)]);

    let mut a = app("job", 1);
    a.restart = RestartPolicy::OnFailure;
    let mut s = Sim::new(eco(vec![a]));
    s.step();
    s.advance(ms(5000));
    s.exit(&id("job", 0), ExitStatus::Code(0));
    assert_eq!(s.step(), vec![Action::Exit(0)]);
}

#[test]
fn an_app_scaled_to_zero_keeps_supervise_running() {
    let mut a = app("job", 1);
    a.restart = RestartPolicy::Never;
    let mut s = Sim::new(eco(vec![a, app("idle", 0)]));
    s.step();
    s.exit(&id("job", 0), ExitStatus::Code(0));
    assert!(s.step().is_empty());
}

#[test]
fn a_finished_one_shot_dependency_lets_dependents_start() {
    let mut migrate = app("migrate", 1);
    migrate.restart = RestartPolicy::OnFailure;
    let mut web = app("web", 1);
    web.depends_on = vec!["migrate".into()];
    let mut s = Sim::new(eco(vec![migrate, web]));
    s.step();
    s.exit(&id("migrate", 0), ExitStatus::Code(0));
    s.record(Fact::Forgotten(slot("web", 0)));
    assert_eq!(s.step(), vec![Action::Spawn(id("web", 0))]);
}

fn pids(s: &Sim, app: &str, n: u32) -> Vec<Option<i32>> {
    (0..n).map(|i| s.pid(&id(app, i))).collect()
}

#[test]
fn rolling_update_replaces_one_at_a_time_new_before_old() {
    let mut s = Sim::new(eco(vec![app("web", 2), app("other", 1)]));
    s.step();
    let other = s.pid(&id("other", 0));
    s.d.eco.apps[0].env.insert("V".into(), "2".into());
    let p = plan(&s.d, &s.obs, s.now);
    assert_eq!(
        p.actions,
        vec![Action::Replace(id("web", 0))],
        "one at a time"
    );
    let acts = s.step();
    let old0 = Who::Old(101);
    let old1 = Who::Old(102);
    assert_eq!(
        acts,
        vec![
            Action::Replace(id("web", 0)),
            Action::Spawn(id("web", 0)),
            stop(old0.clone()),
            Action::Replace(id("web", 1)),
            Action::Spawn(id("web", 1)),
            stop(old1.clone()),
        ],
        "each new instance starts before its old one is stopped"
    );
    assert_eq!(s.pid(&id("other", 0)), other, "untouched app keeps its pid");
    // The old ones are forgotten once gone.
    for (w, pid) in [(old0, 101), (old1, 102)] {
        let who = s
            .obs
            .find_leader(&id("web", 0), pid)
            .or(s.obs.find_leader(&id("web", 1), pid));
        assert_eq!(who, Some(w.clone()));
        s.exit_who(w, ExitStatus::Signal(Signal::SIGTERM), false);
    }
    assert_eq!(
        s.step(),
        vec![Action::Forget(Who::Old(101)), Action::Forget(Who::Old(102))]
    );
    assert!(s.step().is_empty());
}

#[test]
fn rolling_update_keeps_the_old_instance_while_the_new_one_is_down() {
    let mut s = Sim::new(eco(vec![app("web", 1)]));
    s.step();
    s.d.eco.apps[0].command.argv.push("--v2".into());
    // The successor starts, and crashes before the old one is told to stop.
    let p = plan(&s.d, &s.obs, s.now);
    assert_eq!(p.actions, vec![Action::Replace(id("web", 0))]);
    s.perform(&p.actions[0]);
    let p = plan(&s.d, &s.obs, s.now);
    assert_eq!(p.actions, vec![Action::Spawn(id("web", 0))]);
    s.perform(&p.actions[0]);
    let new = s.pid(&id("web", 0)).unwrap();
    assert_ne!(new, 101);
    s.exit(&id("web", 0), ExitStatus::Code(1));
    assert!(
        s.step().is_empty(),
        "old keeps serving while the new one backs off"
    );
    assert!(s.obs.outgoing[&101].alive());
}

#[test]
fn recreate_stops_first_then_starts() {
    let mut a = app("web", 1);
    a.update = crate::config::UpdateStrategy::Recreate;
    let mut s = Sim::new(eco(vec![a]));
    s.step();
    s.d.eco.apps[0].env.insert("V".into(), "2".into());
    assert_eq!(s.step(), vec![stop(slot("web", 0))]);
    s.exit(&id("web", 0), ExitStatus::Signal(Signal::SIGTERM));
    assert_eq!(s.step(), vec![Action::Spawn(id("web", 0))]);
}

#[test]
fn policy_only_change_touches_nothing() {
    let mut s = Sim::new(eco(vec![app("web", 3)]));
    s.step();
    let before = pids(&s, "web", 3);
    s.d.eco.apps[0].max_restarts = 1;
    s.d.eco.apps[0].restart_delay = ms(5);
    assert!(s.step().is_empty());
    assert_eq!(pids(&s, "web", 3), before);
}

#[test]
fn scale_up_and_down_keep_survivors() {
    let mut s = Sim::new(eco(vec![app("web", 2)]));
    s.step();
    let before = pids(&s, "web", 2);
    s.d.eco.apps[0].instances = 5;
    assert_eq!(
        s.step(),
        vec![
            Action::Spawn(id("web", 2)),
            Action::Spawn(id("web", 3)),
            Action::Spawn(id("web", 4))
        ]
    );
    assert_eq!(pids(&s, "web", 2), before);
    s.d.eco.apps[0].instances = 1;
    let acts = s.step();
    assert_eq!(acts.len(), 4);
    assert_eq!(s.pid(&id("web", 0)), before[0]);
}

#[test]
fn removed_app_is_stopped_and_added_app_started() {
    let mut s = Sim::new(eco(vec![app("old", 1), app("keep", 1)]));
    s.step();
    let keep = s.pid(&id("keep", 0));
    s.d.eco.apps.remove(0);
    s.d.eco.apps.push(app("new", 1));
    let acts = s.step();
    assert_eq!(
        acts,
        vec![Action::Spawn(id("new", 0)), stop(slot("old", 0))]
    );
    assert_eq!(s.pid(&id("keep", 0)), keep);
    s.exit(&id("old", 0), ExitStatus::Code(0));
    assert_eq!(s.step(), vec![Action::Forget(slot("old", 0))]);
}

#[test]
fn edits_during_a_rollout_converge_to_the_last_version() {
    let mut s = Sim::new(eco(vec![app("web", 3)]));
    s.step();
    for v in 0..5 {
        s.d.eco.apps[0].env.insert("V".into(), v.to_string());
        // Only part of the rollout happens before the next edit.
        for _ in 0..2 {
            let p = plan(&s.d, &s.obs, s.now);
            for a in &p.actions {
                s.perform(a);
            }
        }
    }
    s.step();
    // Every stopped outgoing instance exits.
    let old: Vec<i32> = s.obs.outgoing.keys().copied().collect();
    for pgid in old {
        s.exit_who(Who::Old(pgid), ExitStatus::Code(0), false);
    }
    s.step();
    let g = s.d.generation(&s.d.eco.apps[0]);
    assert!(s.obs.outgoing.is_empty());
    assert_eq!(s.obs.instances.len(), 3);
    assert!(s
        .obs
        .instances
        .values()
        .all(|i| i.generation == g && i.up()));
}

#[test]
fn watch_epoch_bump_rolls_the_app() {
    let mut s = Sim::new(eco(vec![app("web", 1)]));
    s.step();
    *s.d.epochs.entry("web".into()).or_default() += 1;
    assert_eq!(
        s.step(),
        vec![
            Action::Replace(id("web", 0)),
            Action::Spawn(id("web", 0)),
            stop(Who::Old(101))
        ]
    );
}

#[test]
fn delay_readiness_holds_the_rollout_and_dependents() {
    let mut web = app("web", 1);
    web.ready = crate::config::ReadySpec::Delay(ms(500));
    let mut api = app("api", 1);
    api.depends_on = vec!["web".into()];
    let mut s = Sim::new(eco(vec![web, api]));
    assert_eq!(s.step(), vec![Action::Spawn(id("web", 0))]);
    assert_eq!(
        s.wake_at(),
        Some(s.now + ms(500)),
        "wakes when web becomes ready"
    );
    s.advance(ms(500));
    assert_eq!(
        s.step(),
        vec![Action::Ready(id("web", 0)), Action::Spawn(id("api", 0))]
    );
    // A new version: the old instance serves until the new one is ready.
    s.d.eco.apps[0].env.insert("V".into(), "2".into());
    assert_eq!(
        s.step(),
        vec![Action::Replace(id("web", 0)), Action::Spawn(id("web", 0))]
    );
    s.advance(ms(499));
    assert!(s.step().is_empty());
    s.advance(ms(1));
    assert_eq!(
        s.step(),
        vec![Action::Ready(id("web", 0)), stop(Who::Old(101))]
    );
}

#[test]
fn held_instances_are_stopped_and_not_restarted() {
    let mut s = Sim::new(eco(vec![app("web", 2)]));
    s.step();
    s.d.holds.insert(id("web", 1));
    assert_eq!(s.step(), vec![stop(slot("web", 1))]);
    s.exit(&id("web", 1), ExitStatus::Signal(Signal::SIGTERM));
    assert!(
        s.step().is_empty(),
        "held: not restarted, and supervise does not exit"
    );
    s.d.holds.clear();
    assert_eq!(s.step(), vec![Action::Spawn(id("web", 1))]);
}
