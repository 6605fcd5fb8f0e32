//! shutdown_delay, critical apps and success_exit_codes, simulated with a fake clock.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::config::RestartPolicy;
use crate::plan::tests::{app, eco, id, ms, slot, Sim};
use crate::plan::Action;
use crate::state::{ExitStatus, Fact, Why};

fn stop(app: &str, index: u32) -> Action {
    Action::Stop(slot(app, index), Why::Asked)
}

#[test]
fn shutdown_delay_keeps_serving_then_stops() {
    let mut e = eco(vec![app("web", 1)]);
    e.settings.shutdown_delay = Duration::from_secs(5);
    let mut s = Sim::new(e);
    s.step();
    s.record(Fact::ShutdownAsked { quit: false });
    assert!(s.step().is_empty(), "nothing stops during the delay");
    assert_eq!(s.wake_at(), Some(s.now + Duration::from_secs(5)));
    s.advance(ms(4999));
    assert!(s.step().is_empty());
    s.advance(ms(1));
    assert_eq!(s.step(), vec![stop("web", 0)]);
    s.exit(&id("web", 0), ExitStatus::Code(0));
    assert_eq!(s.step(), vec![Action::Exit(0)]);
}

#[test]
fn a_second_signal_during_the_delay_kills_at_once() {
    let mut e = eco(vec![app("web", 1)]);
    e.settings.shutdown_delay = Duration::from_secs(5);
    let mut s = Sim::new(e);
    s.step();
    s.record(Fact::ShutdownAsked { quit: false });
    s.advance(ms(100));
    assert!(s.step().is_empty());
    s.record(Fact::ShutdownAsked { quit: false });
    assert_eq!(s.step(), vec![Action::Kill(slot("web", 0))]);
}

#[test]
fn nothing_running_means_no_delay() {
    let mut e = eco(vec![app("web", 1)]);
    e.settings.shutdown_delay = Duration::from_secs(5);
    let mut s = Sim::new(e);
    s.step();
    s.exit(&id("web", 0), ExitStatus::Code(1));
    s.record(Fact::ShutdownAsked { quit: false });
    assert_eq!(s.step(), vec![Action::Exit(0)]);
}

#[test]
fn a_critical_app_that_finishes_unclean_stops_everything_with_its_code() {
    let mut job = app("job", 1);
    job.critical = true;
    job.restart = RestartPolicy::Never;
    let mut e = eco(vec![job, app("web", 2)]);
    e.settings.shutdown_delay = Duration::from_secs(5);
    let mut s = Sim::new(e);
    s.step();
    s.exit(&id("job", 0), ExitStatus::Code(3));
    let acts = s.step();
    assert_eq!(
        acts,
        vec![
            Action::CriticalFailed(id("job", 0), 3),
            stop("web", 0),
            stop("web", 1)
        ],
        "no shutdown_delay after a critical failure"
    );
    s.exit(&id("web", 0), ExitStatus::Code(0));
    s.exit(&id("web", 1), ExitStatus::Signal(Signal::SIGTERM));
    assert_eq!(s.step(), vec![Action::Exit(3)]);
}

#[test]
fn a_critical_app_that_errors_leaves_with_its_last_code_signals_as_128_plus_n() {
    let mut a = app("core", 1);
    a.critical = true;
    a.max_restarts = 1;
    let mut s = Sim::new(eco(vec![a, app("web", 1)]));
    s.step();
    s.exit(&id("core", 0), ExitStatus::Signal(Signal::SIGSEGV));
    s.advance(ms(100));
    assert_eq!(
        s.step(),
        vec![Action::Spawn(id("core", 0))],
        "the first crash restarts"
    );
    s.exit(&id("core", 0), ExitStatus::Signal(Signal::SIGSEGV));
    let acts = s.step();
    assert_eq!(acts[0], Action::CriticalFailed(id("core", 0), 128 + 11));
    s.exit(&id("web", 0), ExitStatus::Code(0));
    assert_eq!(s.step(), vec![Action::Exit(139)]);
}

#[test]
fn success_exit_codes_make_an_exit_clean() {
    let mut job = app("job", 1);
    job.critical = true;
    job.restart = RestartPolicy::OnFailure;
    job.success_exit_codes = vec![0, 3];
    let mut s = Sim::new(eco(vec![job]));
    s.step();
    s.advance(Duration::from_secs(5));
    s.exit(&id("job", 0), ExitStatus::Code(3));
    assert_eq!(
        s.step(),
        vec![Action::Exit(0)],
        "3 is clean: not restarted, not a critical failure, exit 0"
    );

    let mut job = app("job", 1);
    job.critical = true;
    job.restart = RestartPolicy::Never;
    job.success_exit_codes = vec![3];
    let mut s = Sim::new(eco(vec![job]));
    s.step();
    s.exit(&id("job", 0), ExitStatus::Code(0));
    assert_eq!(
        s.step()[0],
        Action::CriticalFailed(id("job", 0), 1),
        "0 is not clean here, and a failure never leaves with 0"
    );
}

#[test]
fn a_critical_app_that_finishes_clean_is_no_failure() {
    let mut job = app("migrate", 1);
    job.critical = true;
    job.restart = RestartPolicy::Never;
    let mut s = Sim::new(eco(vec![job, app("web", 1)]));
    s.step();
    s.exit(&id("migrate", 0), ExitStatus::Code(0));
    assert!(s.step().is_empty(), "web keeps running");
}
