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

#[test]
fn observe_spawn_exit_restart() {
    let s = spec();
    let id = InstanceId::new("web", 0);
    let who = Who::Slot(id.clone());
    let t0 = Instant::now();
    let mut obs = Observed::default();
    obs.spawned(&id, 100, 7, t0);
    let inst = &obs.instances[&id];
    assert!(inst.up() && inst.restarts == 0);
    let out = obs.exited(&who, Some(&s), ExitStatus::Code(1), false, t0 + ms(10));
    assert_eq!(out, Outcome::Restart(ms(100)));
    let inst = &obs.instances[&id];
    assert!(!inst.alive());
    assert_eq!(inst.restart_at, Some(t0 + ms(110)));
    obs.spawned(&id, 101, 7, t0 + ms(110));
    let inst = &obs.instances[&id];
    assert_eq!(inst.restarts, 1);
    assert_eq!(inst.restart_at, None);
    assert_eq!(inst.crashes, 1);
}

#[test]
fn exit_after_a_stop_request_is_not_a_crash() {
    let s = spec();
    let id = InstanceId::new("web", 0);
    let who = Who::Slot(id.clone());
    let t0 = Instant::now();
    let mut obs = Observed::default();
    obs.spawned(&id, 100, 7, t0);
    obs.stop_requested(&who, t0);
    let out = obs.exited(
        &who,
        Some(&s),
        ExitStatus::Signal(Signal::SIGTERM),
        true,
        t0,
    );
    assert_eq!(out, Outcome::Stopped);
    let inst = &obs.instances[&id];
    assert_eq!(inst.crashes, 0);
    assert!(inst.alive(), "its group is still there");
    obs.group_gone(&who);
    assert!(!obs.instances[&id].alive());
}

#[test]
fn unknown_instance_exit_is_harmless() {
    let mut obs = Observed::default();
    let out = obs.exited(
        &Who::Slot(InstanceId::new("x", 9)),
        None,
        ExitStatus::Code(0),
        false,
        Instant::now(),
    );
    assert_eq!(out, Outcome::Stopped);
}

#[test]
fn replace_moves_the_running_instance_out_and_frees_the_slot() {
    let id = InstanceId::new("web", 0);
    let t0 = Instant::now();
    let mut obs = Observed::default();
    obs.spawned(&id, 100, 1, t0);
    let old = obs
        .replace(&id)
        .expect("a running instance can be replaced");
    assert_eq!(old, Who::Old(100));
    assert_eq!(obs.get(&old).unwrap().pid, Some(100));
    assert_eq!(obs.instances[&id].pid, None);
    obs.spawned(&id, 200, 2, t0);
    assert_eq!(obs.find_leader(&id, 100), Some(Who::Old(100)));
    assert_eq!(obs.find_leader(&id, 200), Some(Who::Slot(id.clone())));
    // An outgoing instance that exits is never restarted.
    let out = obs.exited(&old, Some(&spec()), ExitStatus::Code(1), false, t0);
    assert_eq!(out, Outcome::Stopped);
    obs.forget(&old);
    assert!(obs.outgoing.is_empty());
    // Nothing to replace when the slot is not running.
    let idle = InstanceId::new("web", 1);
    assert_eq!(obs.replace(&idle), None);
}
