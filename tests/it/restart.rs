//! The restart policy: respawn, backoff, min_uptime, max_restarts and `errored`,
//! `on-failure` and `never`, and exit lines with a code or a signal (issue 3, point 5).

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::*;

#[test]
fn kill_9_brings_a_new_instance_within_1s() {
    let mut h = Harness::new();
    h.start_ecosystem(&Ecosystem::new().app("web", &["--pid-dir", h.pids()]));
    let old = h.wait_pid("web", 0);
    h.wait_for_event(|t| t.starts_with("web.0 started"), LONG);
    let killed_at = Instant::now();
    kill(Pid::from_raw(old), Signal::SIGKILL).unwrap();
    let new = h.wait_pid_change("web", 0, old, LONG);
    let elapsed = killed_at.elapsed();
    assert!(alive(new));
    assert!(
        elapsed < Duration::from_secs(1),
        "respawn took {elapsed:?}, more than 1 s"
    );
    h.wait_for_event(
        |t| t.starts_with("web.0 killed by signal SIGKILL after"),
        LONG,
    );
    h.wait_for_event(|t| t == format!("web.0 started (pid {new})"), LONG);
}

#[test]
fn crash_loop_is_errored_after_max_restarts_while_others_run_on() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.steady]
command = {steady}

[apps.crash]
command = {crash}
max_restarts = 3
restart_delay = "10ms"
"#,
            steady = app_cmd(&["--pid-dir", h.pids()]),
            crash = app_cmd(&[
                "--pid-dir",
                h.pids(),
                "--exit-after",
                "0",
                "--exit-code",
                "1"
            ]),
        ),
    );
    h.start(&config);
    let steady = h.wait_pid("steady", 0);
    let errored = h.wait_for_event(|t| t.starts_with("crash.0 errored"), LONG);
    assert!(errored.contains("max_restarts = 3"), "{errored}");
    assert_eq!(
        h.starts("crash", 0).len(),
        4,
        "started once plus 3 restarts"
    );
    assert_eq!(
        h.count_events(|t| t.starts_with("crash.0 exited with code 1 after")),
        4
    );
    // Errored means left alone: no fifth start comes (an absence, so a bounded look).
    assert!(!poll_until(
        || h.starts("crash", 0).len() > 4,
        Duration::from_millis(500)
    ));
    // Meanwhile the other app was never touched.
    assert_eq!(h.read_pid("steady", 0), Some(steady));
    assert_eq!(h.starts("steady", 0), vec![steady]);
    assert!(alive(steady));
    assert!(
        !h.has_exited(),
        "an errored instance must not stop supervise"
    );
}

#[test]
fn on_failure_does_not_restart_a_clean_exit() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.steady]
command = {steady}

[apps.clean]
command = {clean}
restart = "on-failure"
restart_delay = "10ms"
"#,
            steady = app_cmd(&["--pid-dir", h.pids()]),
            clean = app_cmd(&[
                "--pid-dir",
                h.pids(),
                "--exit-after",
                "0",
                "--exit-code",
                "0"
            ]),
        ),
    );
    h.start(&config);
    h.wait_for_event(|t| t.starts_with("clean.0 exited with code 0"), LONG);
    h.wait_for_event(|t| t.starts_with("clean.0 finished"), LONG);
    assert!(!poll_until(
        || h.starts("clean", 0).len() > 1,
        Duration::from_millis(300)
    ));
    assert_eq!(h.starts("clean", 0).len(), 1);
    assert_eq!(h.count_events(|t| t.starts_with("clean.0 restarting")), 0);
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
}

#[test]
fn on_failure_restarts_a_failed_exit() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.steady]
command = {steady}

[apps.failing]
command = {failing}
restart = "on-failure"
restart_delay = "10ms"
max_restarts = 0
"#,
            steady = app_cmd(&["--pid-dir", h.pids()]),
            failing = app_cmd(&[
                "--pid-dir",
                h.pids(),
                "--exit-after",
                "0",
                "--exit-code",
                "2"
            ]),
        ),
    );
    h.start(&config);
    h.wait_for_event(|t| t.starts_with("failing.0 exited with code 2"), LONG);
    h.wait_for_event(|t| t.starts_with("failing.0 restarting"), LONG);
    h.wait_for(|| h.starts("failing", 0).len() >= 3, LONG);
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
}

#[test]
fn restart_never_leaves_an_exited_instance_alone() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.steady]
command = {steady}

[apps.once]
command = {once}
restart = "never"
restart_delay = "10ms"
"#,
            steady = app_cmd(&["--pid-dir", h.pids()]),
            once = app_cmd(&[
                "--pid-dir",
                h.pids(),
                "--exit-after",
                "0",
                "--exit-code",
                "1"
            ]),
        ),
    );
    h.start(&config);
    h.wait_for_event(|t| t.starts_with("once.0 exited with code 1"), LONG);
    h.wait_for_event(|t| t == "once.0 finished (restart = never)", LONG);
    assert!(!poll_until(
        || h.starts("once", 0).len() > 1,
        Duration::from_millis(300)
    ));
    assert_eq!(h.count_events(|t| t.starts_with("once.0 restarting")), 0);
    assert!(!h.has_exited(), "steady still runs, so supervise does too");
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
}

/// The delay out of a `restarting in <delay>` / `restarting now` event.
fn delay_of(event: &str) -> Duration {
    let rest = event.split("restarting").nth(1).unwrap().trim();
    let rest = rest.strip_prefix("in ").unwrap_or(rest);
    parse_delay(rest).unwrap_or_else(|| panic!("cannot read the delay of {event:?}"))
}

#[test]
fn restart_delay_doubles_per_consecutive_crash() {
    let mut h = Harness::new();
    h.start_ecosystem(
        &Ecosystem::new()
            .app("crash", &["--exit-after", "0", "--exit-code", "1"])
            .set("restart_delay", "100ms")
            .set("backoff_max", "10s")
            .set("max_restarts", 10),
    );
    let events = h.wait_for_events(|t| t.starts_with("crash.0 restarting"), 3, LONG);
    let delays: Vec<Duration> = events.iter().take(3).map(|e| delay_of(e)).collect();
    assert_eq!(
        delays,
        [100, 200, 400].map(Duration::from_millis),
        "{events:?}"
    );
    assert_eq!(events[0], "crash.0 restarting in 100ms");
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
}

#[test]
fn backoff_stops_at_backoff_max() {
    let mut h = Harness::new();
    h.start_ecosystem(
        &Ecosystem::new()
            .app("crash", &["--exit-after", "0", "--exit-code", "1"])
            .set("restart_delay", "20ms")
            .set("backoff_max", "50ms")
            .set("max_restarts", 0),
    );
    let events = h.wait_for_events(|t| t.starts_with("crash.0 restarting"), 5, LONG);
    let delays: Vec<Duration> = events.iter().take(5).map(|e| delay_of(e)).collect();
    assert_eq!(
        delays,
        [20, 40, 50, 50, 50].map(Duration::from_millis),
        "{events:?}"
    );
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
}

#[test]
fn runs_longer_than_min_uptime_reset_backoff_and_the_crash_count() {
    let mut h = Harness::new();
    // Each run lasts 400 ms, longer than min_uptime: not a crash loop, so the delay never
    // grows and max_restarts = 2 never trips, however many times it exits.
    h.start_ecosystem(
        &Ecosystem::new()
            .app("slow", &["--exit-after", "400ms", "--exit-code", "1"])
            .set("restart_delay", "100ms")
            .set("min_uptime", "200ms")
            .set("max_restarts", 2),
    );
    h.wait_for_events(|t| t.starts_with("slow.0 exited with code 1"), 4, LONG);
    let events = h.events();
    assert!(!events.iter().any(|e| e.contains("errored")), "{events:?}");
    for event in events.iter().filter(|e| e.starts_with("slow.0 restarting")) {
        assert!(delay_of(event) <= Duration::from_millis(100), "{events:?}");
    }
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
}

#[test]
fn every_exit_line_shows_a_code_or_a_signal() {
    let mut h = Harness::new();
    h.start_ecosystem(
        &Ecosystem::new()
            .app("seven", &["--exit-after", "0", "--exit-code", "7"])
            .set("restart", "never")
            .app("victim", &["--pid-dir", h.pids()])
            .set("restart", "never"),
    );
    let event = h.wait_for_event(|t| t.starts_with("seven.0 exited"), LONG);
    assert!(
        event.starts_with("seven.0 exited with code 7 after "),
        "{event}"
    );
    let victim = h.wait_pid("victim", 0);
    // SIGUSR1's default action terminates the process.
    kill(Pid::from_raw(victim), Signal::SIGUSR1).unwrap();
    let event = h.wait_for_event(
        |t| t.starts_with("victim.0 killed") || t.starts_with("victim.0 exited"),
        LONG,
    );
    assert!(
        event.starts_with("victim.0 killed by signal SIGUSR1 after "),
        "{event}"
    );
    // Both finished for good, one of them not cleanly.
    assert_eq!(h.wait_exit(LONG).code(), Some(1));
}

#[test]
fn a_failed_start_is_told_backs_off_and_counts_like_a_crash() {
    // The app removes its own working directory and fails: every later start fails in
    // the child (chdir), after supervise has cloned it, without waiting for it.
    let mut h = Harness::new();
    let dir = h.path("gone");
    std::fs::create_dir(&dir).unwrap();
    let script = format!("rmdir {}; exit 1", dir.display());
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.gone]
command = ["/bin/sh", "-c", "{script}"]
cwd = "{dir}"
max_restarts = 2
restart_delay = "10ms"
"#,
            dir = dir.display(),
        ),
    );
    h.start(&config);
    assert_eq!(h.wait_exit(LONG).code(), Some(1));
    let events: Vec<String> = h
        .events()
        .into_iter()
        .map(|t| match t.split_once(" after ") {
            Some((what, _)) => format!("{what} after ..."),
            None => t,
        })
        .filter(|t| !t.starts_with("gone.0 started"))
        .collect();
    let failed = "gone.0 failed to start: No such file or directory (os error 2)";
    assert_eq!(
        events,
        [
            "gone.0 exited with code 1 after ...",
            "gone.0 restarting in 10ms",
            failed,
            "gone.0 restarting in 20ms",
            failed,
            "gone.0 errored: crashed 3 times in a row (max_restarts = 2), not restarting",
            "all apps finished, exiting with code 1",
        ]
    );
    assert_eq!(h.count_events(|t| t.starts_with("gone.0 started")), 1);
}
