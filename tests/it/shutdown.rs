//! Stopping: SIGTERM/SIGINT, stop_timeout then SIGKILL to the whole group, a second
//! signal, reverse dependency order, and exiting when every app finished (issue 3, point 6).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::*;

#[test]
fn sigterm_stops_an_app_that_traps_it() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.web]
command = {}
"#,
            app_cmd(&["--pid-dir", h.pids(), "--trap-term", "--ready-line"])
        ),
    );
    h.start(&config);
    let pid = h.wait_pid("web", 0);
    h.wait_for_output("web.0", |t| t.starts_with("ready pid="), LONG);
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
    assert!(!alive(pid));
    let out = h.instance_output("web.0");
    assert!(out.iter().any(|l| l == "got SIGTERM, exiting"), "{out:?}");
    let events = h.events();
    for expected in [
        "received SIGTERM, stopping",
        "web.0 stopping (SIGTERM)",
        "web.0 exited with code 0",
        "all apps stopped, exiting with code 0",
    ] {
        assert!(
            events.iter().any(|e| e.starts_with(expected)),
            "no {expected:?} in {events:?}"
        );
    }
}

#[test]
fn sigint_stops_too() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.web]
command = {}
instances = 2
"#,
            app_cmd(&["--pid-dir", h.pids()])
        ),
    );
    h.start(&config);
    let pids = [h.wait_pid("web", 0), h.wait_pid("web", 1)];
    h.wait_for_events(|t| t.contains(" started (pid "), 2, LONG);
    h.send_signal(Signal::SIGINT);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
    assert!(pids.iter().all(|&p| !alive(p)));
    assert!(h.events().iter().any(|e| e == "received SIGINT, stopping"));
}

#[test]
fn an_app_ignoring_sigterm_is_killed_after_stop_timeout() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.stubborn]
command = {}
stop_timeout = "500ms"
"#,
            app_cmd(&["--pid-dir", h.pids(), "--ignore-term", "--ready-line"])
        ),
    );
    h.start(&config);
    let pid = h.wait_pid("stubborn", 0);
    h.wait_for_output("stubborn.0", |t| t.starts_with("ready pid="), LONG);
    let signalled = Instant::now();
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
    assert!(
        signalled.elapsed() >= Duration::from_millis(500),
        "stop_timeout was not waited for"
    );
    assert!(!alive(pid));
    h.wait_for_output("stubborn.0", |t| t == "ignoring SIGTERM", LONG);
    let event = h.wait_for_event(|t| t.starts_with("stubborn.0 still running after"), LONG);
    assert!(
        event.ends_with("sending SIGKILL to its process group"),
        "{event}"
    );
    h.wait_for_event(
        |t| t.starts_with("stubborn.0 killed by signal SIGKILL"),
        LONG,
    );
}

fn is_sleep_1000(args: &[String]) -> bool {
    args.len() == 2 && args[0].ends_with("sleep") && args[1] == "1000"
}

#[test]
fn a_shell_wrapper_leaves_no_sleep_behind() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        r#"
[apps.wrapper]
command = "sleep 1000 & wait"
shell = true
stop_timeout = "2s"
"#,
    );
    h.start(&config);
    let supervise = h.supervise_pid();
    let mut sleeps = Vec::new();
    h.wait_for(
        || {
            sleeps = descendants(supervise)
                .into_iter()
                .filter(|&p| cmdline(p).is_some_and(|a| is_sleep_1000(&a)))
                .collect();
            !sleeps.is_empty()
        },
        LONG,
    );
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
    for pid in sleeps {
        assert!(!alive(pid), "sleep 1000 (pid {pid}) survived the shutdown");
    }
    let left = processes_with_cmdline(is_sleep_1000);
    assert!(
        left.is_empty(),
        "`sleep 1000` processes left behind: {left:?}"
    );
}

#[test]
fn forked_children_are_gone_after_shutdown() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.parent]
command = {}
stop_timeout = "2s"
"#,
            app_cmd(&["--pid-dir", h.pids(), "--fork", "3"])
        ),
    );
    h.start(&config);
    let pid = h.wait_pid("parent", 0);
    let mut children = Vec::new();
    h.wait_for(
        || {
            children = h.child_pids("parent", 0);
            children.len() == 3
        },
        LONG,
    );
    assert!(children.iter().all(|&c| alive(c)));
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
    assert!(!alive(pid));
    for child in children {
        assert!(!alive(child), "forked child {child} survived the shutdown");
    }
}

#[test]
fn a_second_signal_kills_at_once() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.stubborn]
command = {}
stop_timeout = "60s"
"#,
            app_cmd(&["--pid-dir", h.pids(), "--ignore-term", "--ready-line"])
        ),
    );
    h.start(&config);
    let pid = h.wait_pid("stubborn", 0);
    h.wait_for_output("stubborn.0", |t| t.starts_with("ready pid="), LONG);
    let first = Instant::now();
    h.send_signal(Signal::SIGTERM);
    h.wait_for_output("stubborn.0", |t| t == "ignoring SIGTERM", LONG);
    h.wait_for_event(|t| t == "received SIGTERM, stopping", LONG);
    h.send_signal(Signal::SIGTERM);
    h.wait_exit(LONG);
    assert!(
        first.elapsed() < Duration::from_secs(30),
        "the second SIGTERM did not cut stop_timeout short"
    );
    assert!(!alive(pid));
    assert!(h
        .events()
        .iter()
        .any(|e| e == "received SIGTERM again, killing everything now"));
}

#[test]
fn apps_stop_in_reverse_dependency_order() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.db]
command = {cmd}

[apps.web]
command = {cmd}
depends_on = ["db"]
"#,
            cmd = app_cmd(&["--pid-dir", h.pids(), "--trap-term"])
        ),
    );
    h.start(&config);
    h.wait_for_event(|t| t.starts_with("web.0 started"), LONG);
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
    let events = h.events();
    let position = |prefix: &str| {
        events
            .iter()
            .position(|e| e.starts_with(prefix))
            .unwrap_or_else(|| panic!("no event {prefix:?}: {events:?}"))
    };
    assert!(
        position("web.0 stopping") < position("db.0 stopping"),
        "the dependent must be stopped first: {events:?}"
    );
}

#[test]
fn all_apps_finished_cleanly_exits_0() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.a]
command = {cmd}
restart = "never"
instances = 2

[apps.b]
command = {cmd}
restart = "on-failure"
"#,
            cmd = app_cmd(&["--exit-after", "0"])
        ),
    );
    h.start(&config);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
    assert!(h
        .events()
        .iter()
        .any(|e| e == "all apps finished, exiting with code 0"));
}

#[test]
fn all_apps_finished_with_a_failure_exits_1() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.good]
command = {good}
restart = "never"

[apps.bad]
command = {bad}
restart = "never"
"#,
            good = app_cmd(&["--exit-after", "0"]),
            bad = app_cmd(&["--exit-after", "0", "--exit-code", "3"]),
        ),
    );
    h.start(&config);
    assert_eq!(h.wait_exit(LONG).code(), Some(1));
    assert!(h
        .events()
        .iter()
        .any(|e| e.starts_with("bad.0 exited with code 3")));
    assert!(h
        .events()
        .iter()
        .any(|e| e == "all apps finished, exiting with code 1"));
}
