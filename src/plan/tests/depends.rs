//! `depends_on` conditions: what each lets start, and a dependency that fails for good
//! blocking its dependents until it is started again.

use super::*;
use crate::config::{Condition, Dependency, ReadySpec};
use crate::state::{Command, Verb};

fn dependent(on: &str, condition: Condition) -> AppSpec {
    let mut web = app("web", 1);
    web.depends_on = vec![Dependency {
        app: on.into(),
        condition,
    }];
    web
}

fn notify_db() -> AppSpec {
    let mut db = app("db", 1);
    db.ready = ReadySpec::Notify;
    db
}

#[test]
fn started_lets_the_dependent_start_before_readiness() {
    let mut s = Sim::new(eco(vec![notify_db(), dependent("db", Condition::Started)]));
    assert_eq!(
        s.step(),
        vec![Action::Spawn(id("db", 0)), Action::Spawn(id("web", 0))]
    );
}

#[test]
fn ready_waits_for_readiness() {
    let mut s = Sim::new(eco(vec![notify_db(), dependent("db", Condition::Ready)]));
    assert_eq!(s.step(), vec![Action::Spawn(id("db", 0))]);
    s.record(Fact::Ready(slot("db", 0)));
    assert_eq!(s.step(), vec![Action::Spawn(id("web", 0))]);
}

#[test]
fn completed_waits_for_a_clean_exit() {
    let mut job = app("job", 2);
    job.restart = RestartPolicy::OnFailure;
    let mut s = Sim::new(eco(vec![job, dependent("job", Condition::Completed)]));
    s.step();
    assert!(s.step().is_empty(), "running is not completed");
    s.advance(ms(5000));
    s.exit(&id("job", 0), ExitStatus::Code(0));
    assert!(s.step().is_empty(), "every instance");
    s.exit(&id("job", 1), ExitStatus::Code(0));
    assert_eq!(s.step(), vec![Action::Spawn(id("web", 0))]);
}

#[test]
fn a_failed_job_blocks_its_dependents_until_it_is_started_again() {
    let mut job = app("job", 1);
    job.restart = RestartPolicy::Never;
    let mut s = Sim::new(eco(vec![job, dependent("job", Condition::Completed)]));
    s.step();
    s.exit(&id("job", 0), ExitStatus::Code(3));
    let reason = "dependency job (completed) failed: job.0 exited with code 3";
    assert_eq!(
        s.step(),
        vec![Action::Blocked {
            app: "web".into(),
            reason: Some(reason.into())
        }]
    );
    assert!(s.step().is_empty(), "said once");
    assert_eq!(s.obs.blocked["web"], reason);
    assert_eq!(s.wake_at(), None);
    // `supervise start job`: the job runs again, and its clean exit unblocks web.
    s.record(Fact::Command(Command {
        ticket: 0,
        asker: 1,
        verb: Verb::Start,
        targets: vec![id("job", 0)],
        since: s.now,
        deadline: s.now + ms(60_000),
    }));
    let acts = s.step();
    assert!(acts.contains(&Action::Spawn(id("job", 0))), "{acts:?}");
    assert!(acts.contains(&Action::Blocked {
        app: "web".into(),
        reason: None
    }));
    s.exit(&id("job", 0), ExitStatus::Code(0));
    assert_eq!(s.step(), vec![Action::Spawn(id("web", 0))]);
}

#[test]
fn an_errored_dependency_blocks_for_every_condition() {
    for condition in Condition::ALL {
        let mut db = app("db", 1);
        db.max_restarts = 1;
        let mut s = Sim::new(eco(vec![db, dependent("db", condition)]));
        s.step();
        for _ in 0..2 {
            s.exit(&id("db", 0), ExitStatus::Code(1));
            s.now = s.wake_at().unwrap_or(s.now);
            s.step();
        }
        // A new instance of web is due: it waits for db, which errored.
        s.d.eco.apps[1].instances = 2;
        s.step();
        assert_eq!(s.pid(&id("web", 1)), None);
        let reason = format!(
            "dependency db ({}) failed: db.0 errored",
            condition.as_str()
        );
        assert_eq!(s.obs.blocked.get("web"), Some(&reason), "{condition:?}");
    }
}
