//! The plan's verdicts on running instances and its timers, with a fake clock and no
//! processes: health, readiness timeouts and rollback, the watchdog, `max_memory`,
//! the reload debounce, and when a control command is done.

use super::*;
use crate::config::{HealthCheck, HealthSpec, ReadySpec};
use crate::plan::checks::{MEMORY_CHECK_INTERVAL, READY_PROBE_INTERVAL};
use crate::state::{Command, NotifyMessage, Verb};

/// A control command as the runtime records it.
fn command(s: &mut Sim, verb: Verb, targets: Vec<InstanceId>) {
    let command = Command {
        ticket: 0,
        asker: 7,
        verb,
        deadline: commands::deadline(&s.d, &targets, s.now),
        targets,
        since: s.now,
    };
    s.record(Fact::Command(command));
}

/// The actions, without the answers to commands.
fn without_answers(actions: Vec<Action>) -> Vec<Action> {
    actions
        .into_iter()
        .filter(|a| !matches!(a, Action::Answer { .. }))
        .collect()
}

fn probe_result(s: &mut Sim, who: &Who, purpose: Purpose, passed: bool) {
    let pid = s.obs.get(who).and_then(Instance::pid).unwrap();
    let fact = Fact::ProbeResult {
        who: who.clone(),
        pid,
        purpose,
        passed,
    };
    s.record(fact);
}

fn healthy_web() -> AppSpec {
    let mut web = app("web", 1);
    web.health = Some(HealthSpec {
        check: HealthCheck::Tcp("127.0.0.1:1".into()),
        interval: ms(1000),
        timeout: ms(500),
        failures: 3,
    });
    web
}

#[test]
fn health_failures_in_a_row_restart_the_instance() {
    let mut s = Sim::new(eco(vec![healthy_web()]));
    let web = slot("web", 0);
    assert_eq!(s.step(), vec![Action::Spawn(id("web", 0))]);
    assert_eq!(
        s.wake_at(),
        Some(s.now + ms(1000)),
        "first check after interval"
    );
    let check = |s: &mut Sim, passed| {
        s.now = s.wake_at().unwrap();
        assert_eq!(s.step(), vec![Action::Probe(web.clone(), Purpose::Health)]);
        probe_result(s, &web, Purpose::Health, passed);
    };
    // Two failures, then a pass: the count starts over.
    check(&mut s, false);
    check(&mut s, false);
    check(&mut s, true);
    check(&mut s, false);
    check(&mut s, false);
    assert!(s.step().is_empty(), "2 of 3");
    check(&mut s, false);
    assert_eq!(s.step(), vec![Action::Stop(web.clone(), Why::Unhealthy)]);
    assert!(s.step().is_empty(), "stopped once");
    // The restart is asked for: at once, not as a crash.
    s.advance(ms(10));
    assert_eq!(s.exit(&id("web", 0), ExitStatus::Code(0)), Next::Stopped);
    assert_eq!(s.step(), vec![Action::Spawn(id("web", 0))]);
    assert_eq!(s.obs.instances[&id("web", 0)].crashes, 0);
}

fn tcp_ready(name: &str, timeout: Duration) -> AppSpec {
    let mut a = app(name, 1);
    a.ready = ReadySpec::Tcp("127.0.0.1:1".into());
    a.ready_timeout = timeout;
    a
}

#[test]
fn ready_timeout_without_a_previous_version_fails_the_run() {
    let mut web = tcp_ready("web", ms(1000));
    web.min_uptime = ms(2000);
    let mut s = Sim::new(eco(vec![web]));
    let web = slot("web", 0);
    assert_eq!(
        s.step(),
        vec![
            Action::Spawn(id("web", 0)),
            Action::Probe(web.clone(), Purpose::Ready)
        ]
    );
    probe_result(&mut s, &web, Purpose::Ready, false);
    assert_eq!(s.wake_at(), Some(s.now + READY_PROBE_INTERVAL));
    s.advance(ms(999));
    assert_eq!(s.step(), vec![Action::Probe(web.clone(), Purpose::Ready)]);
    s.advance(ms(1));
    assert_eq!(s.step(), vec![Action::Stop(web.clone(), Why::NotReady)]);
    // The exit of a failed run is judged by the restart policy, like a crash.
    let next = s.exit(&id("web", 0), ExitStatus::Signal(Signal::SIGTERM));
    assert_eq!(next, Next::Restart(s.now + ms(100)));
}

#[test]
fn ready_timeout_of_a_new_version_rolls_back_to_the_old_one() {
    let mut s = Sim::new(eco(vec![tcp_ready("web", ms(1000))]));
    let web = slot("web", 0);
    s.step();
    probe_result(&mut s, &web, Purpose::Ready, true);
    assert!(s.step().is_empty());
    let old = s.pid(&id("web", 0)).unwrap();

    s.d.eco.apps[0].env.insert("V".into(), "2".into());
    assert_eq!(
        s.step(),
        vec![
            Action::Replace(id("web", 0)),
            Action::Spawn(id("web", 0)),
            Action::Probe(web.clone(), Purpose::Ready)
        ]
    );
    let new = s.pid(&id("web", 0)).unwrap();
    probe_result(&mut s, &web, Purpose::Ready, false);
    s.advance(ms(1000));
    let generation = s.d.generation(&s.d.eco.apps[0]);
    assert_eq!(
        without_probes(s.step()),
        vec![
            Action::Rollback(id("web", 0), generation, "was not ready within 1s".into()),
            Action::Stop(Who::Old(new), Why::RolledBack)
        ]
    );
    assert_eq!(
        s.pid(&id("web", 0)),
        Some(old),
        "the old one has its slot back"
    );
    // The app stays on its previous version: no new attempt until the file changes.
    s.exit_who(Who::Old(new), ExitStatus::Signal(Signal::SIGTERM), false);
    assert_eq!(s.step(), vec![Action::Forget(Who::Old(new))]);
    s.advance(ms(5000));
    assert!(s.step().is_empty());
    s.d.eco.apps[0].env.insert("V".into(), "3".into());
    s.record(Fact::ConfigRead(Reading::Applied));
    assert_eq!(s.step()[0], Action::Replace(id("web", 0)));
}

fn without_probes(actions: Vec<Action>) -> Vec<Action> {
    actions
        .into_iter()
        .filter(|a| !matches!(a, Action::Probe(..)))
        .collect()
}

#[test]
fn a_missed_watchdog_fails_the_run() {
    let mut web = app("web", 1);
    web.ready = ReadySpec::Notify;
    web.watchdog = Some(ms(1000));
    let mut s = Sim::new(eco(vec![web]));
    let who = slot("web", 0);
    s.step();
    let notify = |s: &mut Sim, ready, watchdog| {
        let fact = Fact::Notified {
            who: who.clone(),
            message: NotifyMessage {
                ready,
                watchdog,
                ..Default::default()
            },
            ready_counts: true,
        };
        s.record(fact);
    };
    notify(&mut s, true, false);
    assert_eq!(
        s.wake_at(),
        Some(s.now + ms(1000)),
        "counted from readiness"
    );
    s.advance(ms(600));
    notify(&mut s, false, true);
    assert_eq!(
        s.wake_at(),
        Some(s.now + ms(1000)),
        "each WATCHDOG=1 pushes it"
    );
    s.advance(ms(999));
    assert!(s.step().is_empty());
    s.advance(ms(1));
    assert_eq!(s.step(), vec![Action::Stop(who.clone(), Why::Watchdog)]);
    let next = s.exit(&id("web", 0), ExitStatus::Signal(Signal::SIGTERM));
    assert!(matches!(next, Next::Restart(_)), "{next:?}");
}

#[test]
fn max_memory_restarts_an_instance_over_its_limit() {
    let mut web = app("web", 1);
    web.max_memory = Some(1000);
    let mut s = Sim::new(eco(vec![web, app("other", 1)]));
    assert_eq!(
        s.step(),
        vec![
            Action::Spawn(id("web", 0)),
            Action::Spawn(id("other", 0)),
            Action::SampleMemory(vec![(slot("web", 0), 101)])
        ],
        "only the limited app's instances are sampled"
    );
    s.memory.insert(101, 500);
    assert_eq!(s.wake_at(), Some(s.now + MEMORY_CHECK_INTERVAL));
    s.advance(MEMORY_CHECK_INTERVAL);
    assert_eq!(
        s.step(),
        vec![Action::SampleMemory(vec![(slot("web", 0), 101)])]
    );
    s.memory.insert(101, 2000);
    s.advance(MEMORY_CHECK_INTERVAL);
    let used = Why::Memory {
        used: 2000,
        limit: 1000,
    };
    assert_eq!(
        s.step(),
        vec![
            Action::SampleMemory(vec![(slot("web", 0), 101)]),
            Action::Stop(slot("web", 0), used)
        ]
    );
    s.exit(&id("web", 0), ExitStatus::Signal(Signal::SIGTERM));
    assert_eq!(s.step()[0], Action::Spawn(id("web", 0)));
}

#[test]
fn no_max_memory_no_sampling_and_no_timer() {
    let mut s = Sim::new(eco(vec![app("web", 2)]));
    s.step();
    assert_eq!(s.wake_at(), None);
}

#[test]
fn file_events_are_debounced_and_a_storm_still_reloads() {
    let mut s = Sim::new(eco(vec![app("web", 1)]));
    s.step();
    let t0 = s.now;
    let changed = |s: &mut Sim| {
        s.record(Fact::FilesChanged {
            config: true,
            apps: Vec::new(),
        })
    };
    changed(&mut s);
    assert_eq!(s.wake_at(), Some(t0 + reload::DEBOUNCE));
    s.advance(ms(50));
    changed(&mut s);
    assert_eq!(
        s.wake_at(),
        Some(t0 + ms(150)),
        "quiet time counts from the last"
    );
    s.advance(ms(99));
    assert!(s.step().is_empty());
    s.advance(ms(1));
    assert_eq!(s.step(), vec![Action::Reload]);
    assert_eq!(s.wake_at(), None, "acted on once");
    // An event every 50ms: reloaded at the latest DEBOUNCE_MAX after the first.
    let t1 = s.now;
    let mut reloads = Vec::new();
    for _ in 0..20 {
        changed(&mut s);
        s.advance(ms(50));
        if s.step() == vec![Action::Reload] {
            reloads.push(s.now - t1);
        }
    }
    assert_eq!(reloads[0], reload::DEBOUNCE_MAX);
    assert_eq!(reloads.len(), 2);
}

#[test]
fn watched_files_roll_the_app_after_the_debounce() {
    let mut s = Sim::new(eco(vec![app("web", 1)]));
    s.step();
    s.record(Fact::FilesChanged {
        config: false,
        apps: vec!["web".into()],
    });
    assert!(s.step().is_empty());
    s.advance(reload::DEBOUNCE);
    assert_eq!(
        s.step(),
        vec![
            Action::WatchRestart("web".into()),
            Action::Replace(id("web", 0)),
            Action::Spawn(id("web", 0)),
            Action::Stop(Who::Old(101), Why::Asked)
        ]
    );
}

#[test]
fn reload_command_rolls_the_instance_and_answers_once_the_new_one_is_ready() {
    let mut s = Sim::new(eco(vec![app("web", 1)]));
    s.step();
    s.advance(ms(1));
    command(&mut s, Verb::Reload, vec![id("web", 0)]);
    assert_eq!(
        without_answers(s.step()),
        vec![
            Action::Replace(id("web", 0)),
            Action::Spawn(id("web", 0)),
            Action::Stop(Who::Old(101), Why::Asked)
        ]
    );
    assert_eq!(s.answers, vec![(7, Ok("web.0 reloaded".to_string()))]);
    assert!(s.obs.commands.is_empty());
}

#[test]
fn restart_command_is_done_when_a_new_run_is_ready() {
    let mut s = Sim::new(eco(vec![tcp_ready("web", ms(5000))]));
    let web = slot("web", 0);
    s.step();
    probe_result(&mut s, &web, Purpose::Ready, true);
    s.advance(ms(1));
    command(&mut s, Verb::Restart, vec![id("web", 0)]);
    assert_eq!(s.step(), vec![Action::Stop(web.clone(), Why::Restart)]);
    s.advance(ms(10));
    s.exit(&id("web", 0), ExitStatus::Signal(Signal::SIGTERM));
    assert_eq!(
        s.step(),
        vec![
            Action::Spawn(id("web", 0)),
            Action::Probe(web.clone(), Purpose::Ready)
        ]
    );
    assert!(s.answers.is_empty(), "running, not ready yet");
    probe_result(&mut s, &web, Purpose::Ready, true);
    s.step();
    assert_eq!(s.answers, vec![(7, Ok("web.0 restarted".to_string()))]);
}

#[test]
fn stop_command_is_done_when_nothing_is_left() {
    let mut s = Sim::new(eco(vec![app("web", 2)]));
    s.step();
    s.d.holds.insert(id("web", 1));
    command(&mut s, Verb::Stop, vec![id("web", 1)]);
    assert_eq!(s.step(), vec![Action::Stop(slot("web", 1), Why::Asked)]);
    assert!(s.answers.is_empty());
    s.exit_who(slot("web", 1), ExitStatus::Signal(Signal::SIGTERM), true);
    s.step();
    assert!(s.answers.is_empty(), "its group is still there");
    s.record(Fact::GroupGone(slot("web", 1)));
    s.step();
    assert_eq!(s.answers, vec![(7, Ok("web.1 stopped".to_string()))]);
}

#[test]
fn a_command_that_cannot_finish_is_answered_with_the_failure_or_at_its_deadline() {
    let mut bad = tcp_ready("bad", ms(60_000));
    bad.max_restarts = 1;
    let mut s = Sim::new(eco(vec![bad, tcp_ready("slow", ms(60_000))]));
    s.step();
    command(&mut s, Verb::Start, vec![id("bad", 0)]);
    s.step();
    assert!(s.answers.is_empty(), "not ready yet");
    // A crash since the command fails it with the exit (SPEC 6), backoff or not.
    s.exit(&id("bad", 0), ExitStatus::Code(1));
    s.step();
    assert_eq!(
        s.answers,
        vec![(7, Err("bad.0 exited with code 1".to_string()))]
    );
    s.answers.clear();
    s.now = s.wake_at().unwrap();
    s.step();
    assert_eq!(s.exit(&id("bad", 0), ExitStatus::Code(1)), Next::Errored);

    s.answers.clear();
    command(&mut s, Verb::Start, vec![id("slow", 0)]);
    let deadline = commands::deadline(&s.d, &[id("slow", 0)], s.now);
    s.now = deadline - ms(1);
    s.step();
    assert!(s.answers.is_empty());
    s.now = deadline;
    s.step();
    assert_eq!(
        s.answers,
        vec![(7, Err("start slow.0: not done after 1m20s".to_string()))]
    );
}
