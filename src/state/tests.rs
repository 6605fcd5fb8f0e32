use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn spec() -> AppSpec {
    AppSpec::new("web", "/bin/true", &["true"])
}

#[test]
fn backoff_doubles_and_caps() {
    let d = ms(100);
    let max = ms(1000);
    assert_eq!(backoff(d, 0, max), Duration::ZERO);
    assert_eq!(backoff(d, 1, max), ms(100));
    assert_eq!(backoff(d, 2, max), ms(200));
    assert_eq!(backoff(d, 3, max), ms(400));
    assert_eq!(backoff(d, 4, max), ms(800));
    assert_eq!(backoff(d, 5, max), ms(1000));
    assert_eq!(backoff(d, 40, max), ms(1000));
    assert_eq!(backoff(d, u32::MAX, max), ms(1000));
    assert_eq!(backoff(Duration::ZERO, 7, max), Duration::ZERO);
    assert_eq!(backoff(ms(5000), 1, max), ms(1000));
}

#[test]
fn short_runs_are_crashes_and_long_runs_reset() {
    let s = spec();
    let mut crashes = 0;
    let fail = ExitStatus::Code(1);
    assert_eq!(
        decide(&s, &mut crashes, &fail, ms(10)),
        Outcome::Restart(ms(100))
    );
    assert_eq!(
        decide(&s, &mut crashes, &fail, ms(10)),
        Outcome::Restart(ms(200))
    );
    assert_eq!(crashes, 2);
    // A run past min_uptime resets the count and restarts at once.
    assert_eq!(
        decide(&s, &mut crashes, &fail, ms(5000)),
        Outcome::Restart(ms(0))
    );
    assert_eq!(crashes, 0);
    assert_eq!(
        decide(&s, &mut crashes, &fail, ms(10)),
        Outcome::Restart(ms(100))
    );
}

#[test]
fn max_restarts_gives_up_after_that_many_restarts() {
    let mut s = spec();
    s.max_restarts = 3;
    let mut crashes = 0;
    let fail = ExitStatus::Code(1);
    let mut starts = 1;
    loop {
        match decide(&s, &mut crashes, &fail, ms(1)) {
            Outcome::Restart(_) => starts += 1,
            Outcome::Errored(n) => {
                assert_eq!(n, 4);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(starts, 4, "started once plus max_restarts restarts");
}

#[test]
fn max_restarts_zero_never_gives_up() {
    let mut s = spec();
    s.max_restarts = 0;
    let mut crashes = 0;
    for _ in 0..1000 {
        assert!(matches!(
            decide(&s, &mut crashes, &ExitStatus::Code(1), ms(1)),
            Outcome::Restart(_)
        ));
    }
}

#[test]
fn policies() {
    let mut s = spec();
    let ok = ExitStatus::Code(0);
    let bad = ExitStatus::Signal(Signal::SIGKILL);
    s.restart = RestartPolicy::OnFailure;
    assert_eq!(decide(&s, &mut 0, &ok, ms(5000)), Outcome::Finished);
    assert_eq!(decide(&s, &mut 0, &bad, ms(5000)), Outcome::Restart(ms(0)));
    s.restart = RestartPolicy::Never;
    assert_eq!(decide(&s, &mut 0, &bad, ms(5000)), Outcome::Finished);
    s.restart = RestartPolicy::Always;
    assert_eq!(decide(&s, &mut 0, &ok, ms(5000)), Outcome::Restart(ms(0)));
}

#[test]
fn exit_codes_follow_the_shell_convention() {
    assert_eq!(ExitStatus::Signal(Signal::SIGKILL).code(), 137);
    assert_eq!(ExitStatus::Code(3).code(), 3);
    assert_eq!(
        ExitStatus::Signal(Signal::SIGTERM).to_string(),
        "signal SIGTERM"
    );
    assert_eq!(ExitStatus::Code(1).to_string(), "code 1");
}

fn spawned(obs: &mut Observed, id: &InstanceId, pid: i32, generation: u64, now: Instant) {
    let fact = Fact::Spawned {
        id: id.clone(),
        pid,
        generation,
    };
    observe(obs, fact, now);
}

fn exited(obs: &mut Observed, who: &Who, spec: Option<&AppSpec>, group_alive: bool, now: Instant) {
    let fact = Fact::Exited {
        who: who.clone(),
        status: ExitStatus::Code(1),
        group_alive,
        spec,
    };
    observe(obs, fact, now);
}

fn next(obs: &Observed, who: &Who) -> Next {
    obs.get(who).unwrap().ended().unwrap().next.clone()
}

#[test]
fn observe_spawn_exit_restart() {
    let s = spec();
    let id = InstanceId::new("web", 0);
    let who = Who::Slot(id.clone());
    let t0 = Instant::now();
    let mut obs = Observed::default();
    spawned(&mut obs, &id, 100, 7, t0);
    let inst = &obs.instances[&id];
    assert!(inst.up() && inst.restarts() == 0);
    exited(&mut obs, &who, Some(&s), false, t0 + ms(10));
    assert_eq!(next(&obs, &who), Next::Restart(t0 + ms(110)));
    assert!(!obs.instances[&id].alive());
    spawned(&mut obs, &id, 101, 7, t0 + ms(110));
    let inst = &obs.instances[&id];
    assert_eq!(inst.restarts(), 1);
    assert_eq!(inst.pid(), Some(101));
    assert_eq!(inst.crashes, 1);
}

#[test]
fn a_failed_spawn_is_a_crash_without_a_pid() {
    let id = InstanceId::new("web", 0);
    let t0 = Instant::now();
    let mut obs = Observed::default();
    let fact = Fact::SpawnFailed {
        id: id.clone(),
        generation: 7,
        error: "No such file".into(),
        spec: Some(&spec()),
    };
    observe(&mut obs, fact, t0);
    let inst = &obs.instances[&id];
    assert_eq!(inst.pid(), None);
    assert!(!inst.alive());
    assert_eq!(inst.crashes, 1);
    assert_eq!(next(&obs, &Who::Slot(id)), Next::Restart(t0 + ms(100)));
}

#[test]
fn exit_after_a_stop_request_is_not_a_crash() {
    let s = spec();
    let id = InstanceId::new("web", 0);
    let who = Who::Slot(id.clone());
    let t0 = Instant::now();
    let mut obs = Observed::default();
    spawned(&mut obs, &id, 100, 7, t0);
    observe(&mut obs, Fact::StopSent(who.clone(), Why::Asked), t0);
    exited(&mut obs, &who, Some(&s), true, t0);
    assert_eq!(next(&obs, &who), Next::Stopped);
    let inst = &obs.instances[&id];
    assert_eq!(inst.crashes, 0);
    assert!(inst.alive(), "its group is still there");
    observe(&mut obs, Fact::GroupGone(who.clone()), t0);
    assert!(!obs.instances[&id].alive());
}

#[test]
fn exit_after_a_failure_stop_is_judged_as_a_crash() {
    let id = InstanceId::new("web", 0);
    let who = Who::Slot(id.clone());
    let t0 = Instant::now();
    let mut obs = Observed::default();
    spawned(&mut obs, &id, 100, 7, t0);
    observe(&mut obs, Fact::StopSent(who.clone(), Why::NotReady), t0);
    exited(&mut obs, &who, Some(&spec()), false, t0);
    assert_eq!(next(&obs, &who), Next::Restart(t0 + ms(100)));
}

#[test]
fn unknown_instance_exit_is_harmless() {
    let mut obs = Observed::default();
    let who = Who::Slot(InstanceId::new("x", 9));
    exited(&mut obs, &who, None, false, Instant::now());
    assert!(obs.instances.is_empty());
}

#[test]
fn replace_moves_the_running_instance_out_and_frees_the_slot() {
    let id = InstanceId::new("web", 0);
    let t0 = Instant::now();
    let mut obs = Observed::default();
    spawned(&mut obs, &id, 100, 1, t0);
    observe(&mut obs, Fact::Replaced(id.clone()), t0);
    let old = Who::Old(100);
    assert_eq!(obs.get(&old).unwrap().pid(), Some(100));
    assert_eq!(obs.instances[&id].pid(), None);
    spawned(&mut obs, &id, 200, 2, t0);
    assert_eq!(obs.instances[&id].restarts(), 1);
    assert_eq!(obs.find_leader(&id, 100), Some(Who::Old(100)));
    assert_eq!(obs.find_leader(&id, 200), Some(Who::Slot(id.clone())));
    // An outgoing instance that exits is never restarted.
    exited(&mut obs, &old, Some(&spec()), false, t0);
    assert_eq!(next(&obs, &old), Next::Stopped);
    observe(&mut obs, Fact::Forgotten(old), t0);
    assert!(obs.outgoing.is_empty());
    // Nothing to replace when the slot is not running.
    let idle = InstanceId::new("web", 1);
    observe(&mut obs, Fact::Replaced(idle.clone()), t0);
    assert!(obs.outgoing.is_empty());
    assert!(!obs.instances.contains_key(&idle));
}

#[test]
fn a_probe_result_for_an_older_run_is_ignored() {
    let id = InstanceId::new("web", 0);
    let who = Who::Slot(id.clone());
    let t0 = Instant::now();
    let mut obs = Observed::default();
    spawned(&mut obs, &id, 100, 1, t0);
    let result = |pid, passed| Fact::ProbeResult {
        who: who.clone(),
        pid,
        purpose: Purpose::Health,
        passed,
    };
    observe(&mut obs, result(100, false), t0);
    observe(&mut obs, result(99, false), t0);
    assert_eq!(obs.instances[&id].run().unwrap().health_failures, 1);
    observe(&mut obs, result(100, true), t0);
    assert_eq!(obs.instances[&id].run().unwrap().health_failures, 0);
}

#[test]
fn states_as_status_shows_them() {
    use crate::config::ReadySpec;
    let id = InstanceId::new("web", 0);
    let who = Who::Slot(id.clone());
    let t0 = Instant::now();
    let notify = Some(&ReadySpec::Notify);
    let state = |obs: &Observed, held| state_of(obs.instances.get(&id), notify, held, t0).as_str();
    let mut obs = Observed::default();
    assert_eq!(state(&obs, false), "starting");
    assert_eq!(state(&obs, true), "stopped");
    spawned(&mut obs, &id, 10, 1, t0);
    assert_eq!(state(&obs, false), "starting");
    observe(&mut obs, Fact::Ready(who.clone()), t0);
    assert_eq!(state(&obs, false), "running");
    let stopping = Fact::Notified {
        who: who.clone(),
        message: NotifyMessage {
            stopping: true,
            ..Default::default()
        },
        ready_counts: true,
    };
    observe(&mut obs, stopping, t0);
    assert_eq!(state(&obs, false), "stopping", "STOPPING=1");
    spawned(&mut obs, &id, 11, 1, t0);
    observe(&mut obs, Fact::StopSent(who.clone(), Why::Asked), t0);
    assert_eq!(state(&obs, false), "stopping");
    exited(&mut obs, &who, Some(&spec()), true, t0);
    assert_eq!(state(&obs, false), "stopping", "leftovers of its group");
    observe(&mut obs, Fact::GroupGone(who.clone()), t0);
    assert_eq!(state(&obs, false), "stopped");
    spawned(&mut obs, &id, 12, 1, t0);
    exited(&mut obs, &who, Some(&spec()), false, t0);
    assert_eq!(state(&obs, false), "backoff");
    assert_eq!(state(&obs, true), "stopped");
    let mut never = spec();
    never.restart = RestartPolicy::Never;
    spawned(&mut obs, &id, 13, 1, t0);
    exited(&mut obs, &who, Some(&never), false, t0);
    assert_eq!(state(&obs, false), "exited");
    let mut fragile = spec();
    fragile.max_restarts = 1;
    for pid in [14, 15] {
        spawned(&mut obs, &id, pid, 1, t0);
        exited(&mut obs, &who, Some(&fragile), false, t0);
    }
    assert_eq!(state(&obs, false), "errored");
}
