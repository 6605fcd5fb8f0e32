//! Safer rolling updates with a fake clock: `min_ready` holds the old instance until
//! its successor has stayed up this long, and rolls back a successor that exits or
//! fails a health check meanwhile; `max_surge` replaces that many at once.

use super::*;
use crate::config::{HealthCheck, HealthSpec};
use crate::state::{Command, Verb};

fn web(instances: u32, min_ready: u64) -> AppSpec {
    let mut a = app("web", instances);
    a.min_ready = ms(min_ready);
    a
}

/// Edit the file: a process-shaping change, so the instances are replaced.
fn new_version(s: &mut Sim) {
    s.d.eco.apps[0].env.insert("V".into(), "2".into());
}

fn pids(s: &Sim, n: u32) -> Vec<Option<i32>> {
    (0..n).map(|i| s.pid(&id("web", i))).collect()
}

#[test]
fn min_ready_holds_the_old_instance_until_the_new_one_has_stayed_up() {
    let mut s = Sim::new(eco(vec![web(1, 3000)]));
    s.step();
    let old = s.pid(&id("web", 0)).unwrap();
    new_version(&mut s);
    assert_eq!(
        s.step(),
        vec![Action::Replace(id("web", 0)), Action::Spawn(id("web", 0))]
    );
    // Ready at once (`started`), but the old one serves on for min_ready.
    assert_eq!(s.wake_at(), Some(s.now + ms(3000)));
    s.advance(ms(2999));
    assert!(s.step().is_empty());
    s.advance(ms(1));
    assert_eq!(s.step(), vec![Action::Stop(Who::Old(old), Why::Asked)]);
}

#[test]
fn a_new_instance_that_exits_within_min_ready_is_rolled_back() {
    let mut s = Sim::new(eco(vec![web(1, 3000)]));
    s.step();
    let old = s.pid(&id("web", 0)).unwrap();
    new_version(&mut s);
    s.step();
    let generation = s.d.generation(&s.d.eco.apps[0]);
    s.record(Fact::Command(Command {
        ticket: 1,
        asker: 7,
        verb: Verb::Reload,
        targets: vec![id("web", 0)],
        since: s.now,
        deadline: s.now + Duration::from_secs(60),
    }));
    s.advance(ms(1500));
    s.exit(&id("web", 0), ExitStatus::Code(3));
    let acts = s.step();
    let why = "exited with code 3 within min_ready (3s)".to_string();
    assert!(
        acts.contains(&Action::Rollback(id("web", 0), generation, why)),
        "{acts:?}"
    );
    assert_eq!(
        s.pid(&id("web", 0)),
        Some(old),
        "the old one has its slot back"
    );
    assert!(
        s.obs.outgoing.is_empty(),
        "nothing of the new one is left to stop"
    );
    assert!(
        !acts.iter().any(|a| matches!(a, Action::Spawn(_))),
        "no new attempt: {acts:?}"
    );
    let (_, answer) = s.answers.last().unwrap().clone();
    assert_eq!(
        answer,
        Err(
            "web.0: the new instance exited with code 3 within min_ready (3s); rolled back, \
             the old one keeps running"
                .into()
        )
    );
    s.advance(Duration::from_secs(10));
    assert!(
        s.step().is_empty(),
        "stays on the old version until the file changes"
    );
}

#[test]
fn a_failed_health_check_within_min_ready_rolls_back() {
    let mut app = web(1, 5000);
    app.health = Some(HealthSpec {
        check: HealthCheck::Tcp("127.0.0.1:1".into()),
        interval: ms(1000),
        timeout: ms(500),
        failures: 3,
    });
    let mut s = Sim::new(eco(vec![app]));
    s.step();
    let old = s.pid(&id("web", 0)).unwrap();
    new_version(&mut s);
    s.step();
    let new = s.pid(&id("web", 0)).unwrap();
    s.advance(ms(1000));
    let acts = s.step();
    assert!(
        acts.contains(&Action::Probe(slot("web", 0), Purpose::Health)),
        "{acts:?}"
    );
    s.record(Fact::ProbeResult {
        who: slot("web", 0),
        pid: new,
        purpose: Purpose::Health,
        passed: false,
    });
    let acts = s.step();
    assert_eq!(
        acts[0],
        Action::Rollback(
            id("web", 0),
            s.d.generation(&s.d.eco.apps[0]),
            "failed a health check within min_ready (5s)".into()
        )
    );
    assert!(
        acts.contains(&Action::Stop(Who::Old(new), Why::RolledBack)),
        "{acts:?}"
    );
    assert_eq!(s.pid(&id("web", 0)), Some(old));
}

#[test]
fn max_surge_replaces_that_many_at_once() {
    let mut app = web(4, 0);
    app.max_surge = 2;
    let mut s = Sim::new(eco(vec![app]));
    s.step();
    let before = pids(&s, 4);
    new_version(&mut s);
    // Two replacements begin in the first round; the next two once those are done.
    let first = plan(&s.d, &s.obs, s.now).actions;
    assert_eq!(
        first,
        vec![Action::Replace(id("web", 0)), Action::Replace(id("web", 1))]
    );
    let acts = s.step();
    assert!(acts.contains(&Action::Replace(id("web", 3))), "{acts:?}");
    let after = pids(&s, 4);
    assert!(
        before.iter().zip(&after).all(|(b, a)| b != a),
        "{before:?} {after:?}"
    );
}

#[test]
fn one_at_a_time_by_default() {
    let mut s = Sim::new(eco(vec![web(3, 1000)]));
    s.step();
    new_version(&mut s);
    let acts = s.step();
    let replaced = acts
        .iter()
        .filter(|a| matches!(a, Action::Replace(_)))
        .count();
    assert_eq!(replaced, 1, "{acts:?}");
    s.advance(ms(1000));
    let acts = s.step();
    assert!(acts.contains(&Action::Replace(id("web", 1))), "{acts:?}");
    assert!(!acts.contains(&Action::Replace(id("web", 2))), "{acts:?}");
}
