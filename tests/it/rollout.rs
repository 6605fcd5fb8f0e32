//! Readiness and rollouts (issue 5, SPEC section 3): `ready = "notify"` / tcp / http /
//! exec readiness, rolling updates that wait for readiness (and roll back when it never
//! comes), health checks and the watchdog. Every wait is on a line, a pid file or a
//! response, against a deadline.

use std::fs;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn a_notify_app_is_starting_until_ready_and_its_dependents_wait() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.db]\ncommand = {}\nready = \"notify\"\n\n\
             [apps.api]\ncommand = {}\ndepends_on = [\"db\"]\n",
            app_cmd(&[
                "--pid-dir",
                h.pids(),
                "--notify-status",
                "warming up",
                "--notify-ready",
                "500ms"
            ]),
            app_cmd(&["--pid-dir", h.pids()]),
        ),
    );
    h.start(&config);
    h.wait_for_event(|t| t.starts_with("db.0 started (pid "), LONG);
    let seen_started = Instant::now();
    // Until READY=1, status says `starting` (or, if this answer came late, the ready
    // line is already out).
    let early = db_status(&h);
    assert!(
        early["state"] == "starting" && early["ready"] == false
            || h.count_events(|t| t == "db.0 is ready (sd_notify)") == 1,
        "{early}"
    );
    h.wait_for_output("db.0", |t| t == "notified STATUS=warming up", LONG);
    h.wait_for_event(|t| t == "db.0 is ready (sd_notify)", LONG);
    let waited = seen_started.elapsed();
    h.wait_for_event(|t| t.starts_with("api.0 started (pid "), LONG);
    h.wait_pid("api", 0);
    h.wait_for_output("db.0", |t| t == "notified READY=1", LONG);

    // api started only after db was ready: never while db was starting.
    let ready = event_index(&h, |t| t == "db.0 is ready (sd_notify)").unwrap();
    let api = event_index(&h, |t| t.starts_with("api.0 started")).unwrap();
    assert!(ready < api, "{:?}", h.events());
    // READY=1 comes 500 ms after the start; the test saw the start line late, if anything.
    assert!(
        waited >= Duration::from_millis(300),
        "db was ready {waited:?} after it started"
    );
    // Exactly one readiness, and nothing went wrong with the STATUS= datagram.
    assert_eq!(h.count_events(|t| t.contains("is ready")), 1);
    assert!(
        h.stderr_lines().is_empty(),
        "supervise wrote to stderr: {:?}",
        h.stderr_lines()
    );
    assert!(!h
        .events()
        .iter()
        .any(|t| t.contains("notify") && !t.ends_with("is ready (sd_notify)")));
    // After it: running, ready, and the STATUS= text kept.
    let after = db_status(&h);
    assert_eq!(after["state"], "running", "{after}");
    assert_eq!(after["ready"], true, "{after}");
    assert_eq!(after["status_text"], "warming up", "{after}");
}

/// db.0's row of `supervise status --json`.
fn db_status(h: &Harness) -> serde_json::Value {
    let out = h.cli(&["status", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["app"] == "db" && i["index"] == 0)
        .cloned()
        .unwrap()
}

/// `[apps.web]`: the test app serving on `port`, `ready = "notify"`, plus `extra` lines.
fn notify_web(h: &Harness, args: &[&str], port: u16, extra: &str) -> String {
    let mut argv = vec!["--pid-dir", h.pids(), "--serve"];
    argv.extend_from_slice(args);
    format!(
        "[apps.web]\ncommand = {}\nlisten = [\"tcp://127.0.0.1:{port}\"]\nready = \"notify\"\n{extra}\n",
        app_cmd(&argv)
    )
}

#[test]
fn a_rolling_update_keeps_the_old_instance_until_the_new_one_is_ready() {
    let mut h = Harness::new();
    let port = free_port();
    let v1 = notify_web(&h, &["--notify-ready", "1s"], port, "env = { V = \"1\" }");
    let v2 = notify_web(&h, &["--notify-ready", "1s"], port, "env = { V = \"2\" }");
    let config = h.write_config("eco.toml", &v1);
    h.start(&config);
    h.wait_for_event(|t| t == "web.0 is ready (sd_notify)", LONG);
    let old = h.wait_pid("web", 0);
    until_all_answer(port, &[old], 1, LONG);

    fs::write(&config, &v2).unwrap();
    let new = started_pid(&h.wait_for_event(
        |t| t.starts_with("web.0 started (pid ") && started_pid(t) != old,
        LONG,
    ));
    let new_started = Instant::now();
    // Until the new instance says READY=1, the old one runs and keeps answering. (The
    // event lines reach the test a little after they happen: a death seen in /proc is
    // checked against the events once they are all in.)
    let is_ready = |t: &str| t == "web.0 is ready (sd_notify)";
    let new_ready = || h.count_events(is_ready) >= 2;
    let mut old_answers = 0;
    let mut requests = 0;
    while !new_ready() {
        if !alive(old) {
            h.wait_for_events(is_ready, 2, LONG);
            break;
        }
        match get_tcp(port) {
            Ok((200, body)) => {
                let pid = body_pid(&body).unwrap();
                assert!(pid == old || pid == new, "pid {pid} answered");
                old_answers += (pid == old) as usize;
            }
            // The old instance goes once the new one is ready: a request it had taken
            // may die with it (the test app does not drain on SIGTERM). Any other
            // failure leaves the old one alive. (The events checked below say that it
            // was stopped only after the new one was ready.)
            Err(Failure::Exchange(_)) if poll_until(|| !alive(old), Duration::from_secs(2)) => {
                h.wait_for_events(is_ready, 2, LONG);
                break;
            }
            other => panic!("request during the update failed: {other:?}"),
        }
        requests += 1;
        assert!(
            new_started.elapsed() < LONG,
            "the new instance never got ready"
        );
    }
    let ready_after = new_started.elapsed();
    assert!(
        old_answers > 0,
        "the old instance answered none of {requests} requests while the new one started"
    );
    // Then, and only then, the old one is stopped gracefully.
    h.wait_for_event(
        |t| t == format!("web.0 (old instance, pid {old}) stopping (SIGTERM)"),
        LONG,
    );
    let ready = event_indices(&h, |t| t == "web.0 is ready (sd_notify)")[1];
    let stopping = event_index(&h, |t| {
        t.starts_with(&format!("web.0 (old instance, pid {old}) stopping"))
    })
    .unwrap();
    assert!(ready < stopping, "{:?}", h.events());
    assert!(
        ready_after >= Duration::from_millis(700),
        "the new instance was ready {ready_after:?} after it started (READY=1 after 1s)"
    );
    h.wait_for(|| !alive(old), LONG);
    assert!(alive(new));
    // Only the new version answers now.
    for _ in 0..10 {
        assert_eq!(served_by(port), Some(new));
    }
    eprintln!(
        "rolling update: {requests} requests while the new instance got ready, \
         {old_answers} answered by the old one"
    );
}

#[test]
fn a_new_version_that_never_gets_ready_leaves_the_old_one_serving() {
    let mut h = Harness::new();
    let port = free_port();
    let extra = |v: &str| format!("instances = 2\nready_timeout = \"1s\"\nenv = {{ V = \"{v}\" }}");
    let v1 = notify_web(&h, &["--notify-ready", "100ms"], port, &extra("1"));
    // The new version never sends READY=1.
    let v2 = notify_web(&h, &[], port, &extra("2"));
    let config = h.write_config("eco.toml", &v1);
    h.start(&config);
    h.wait_for_events(|t| t.ends_with(" is ready (sd_notify)"), 2, LONG);
    let old = [h.wait_pid("web", 0), h.wait_pid("web", 1)];
    until_all_answer(port, &old, 2, LONG);

    fs::write(&config, &v2).unwrap();
    let new = started_pid(&h.wait_for_event(
        |t| t.starts_with("web.0 started (pid ") && started_pid(t) != old[0],
        LONG,
    ));
    h.wait_for_event(
        |t| {
            t == "web.0: the new version was not ready within 1s; keeping the old instance \
                  and leaving web on its previous version"
        },
        LONG,
    );
    // The new one is stopped, the old ones keep running and serving.
    h.wait_for(|| !alive(new), LONG);
    assert!(alive(old[0]) && alive(old[1]), "{:?}", h.events());
    until_all_answer(port, &old, 30, LONG);
    assert!(alive(old[0]) && alive(old[1]));
    // One attempt, one instance: web.1 was never replaced, nothing else started.
    assert_eq!(started_pids(&h, "web.0"), vec![old[0], new]);
    assert_eq!(started_pids(&h, "web.1"), vec![old[1]]);
    assert!(
        !h.events()
            .iter()
            .any(|t| t.starts_with(&format!("web.0 (old instance, pid {}) stopping", old[0]))),
        "{:?}",
        h.events()
    );
}

#[test]
fn a_health_check_failing_3_times_restarts_the_instance() {
    let mut h = Harness::new();
    let port = free_port();
    let marker = h.path("unhealthy");
    let marker_arg = marker.to_str().unwrap().to_string();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.web]\ncommand = {}\nlisten = [\"tcp://127.0.0.1:{port}\"]\n\
             health = {{ http = \"http://127.0.0.1:{port}/health\", interval = \"200ms\", \
             timeout = \"1s\", failures = 3 }}\n",
            app_cmd(&[
                "--pid-dir",
                h.pids(),
                "--serve",
                "--unhealthy-file",
                &marker_arg
            ])
        ),
    );
    h.start(&config);
    let old = h.wait_pid("web", 0);
    until_all_answer(port, &[old], 1, LONG);
    // Healthy: a few intervals pass without a failure.
    let t0 = Instant::now();
    assert!(!poll_until(
        || h.count_events(|t| t.contains("health check failed")) > 0,
        Duration::from_millis(700)
    ));
    assert!(t0.elapsed() >= Duration::from_millis(700));

    // Only this pid turns unhealthy (its successor will not be).
    fs::write(&marker, format!("{old}\n")).unwrap();
    match get_tcp(port) {
        Ok((503, _)) => {}
        other => panic!("the marker did not make the instance answer 503: {other:?}"),
    }
    h.wait_for_event(|t| t == "web.0 is unhealthy, restarting it", LONG);
    let failures: Vec<String> = h
        .events()
        .into_iter()
        .filter(|t| t.starts_with("web.0 health check failed"))
        .collect();
    let expected: Vec<String> = (1..=3)
        .map(|n| {
            format!("web.0 health check failed ({n}/3): http://127.0.0.1:{port}/health: status 503")
        })
        .collect();
    assert_eq!(failures, expected);
    let new = h.wait_pid_change("web", 0, old, LONG);
    h.wait_for(|| !alive(old), LONG);
    until_all_answer(port, &[new], 5, LONG);
    assert_eq!(h.starts("web", 0), vec![old, new]);
    let unhealthy = event_index(&h, |t| t == "web.0 is unhealthy, restarting it").unwrap();
    let stopping = event_index(&h, |t| t == "web.0 stopping (SIGTERM)").unwrap();
    assert!(unhealthy < stopping, "{:?}", h.events());
}

#[test]
fn a_missed_watchdog_restarts_the_instance() {
    let mut h = Harness::new();
    let stop = h.path("stop-watchdog");
    let stop_arg = stop.to_str().unwrap().to_string();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.web]\ncommand = {}\nready = \"notify\"\nwatchdog = \"1s\"\n",
            app_cmd(&[
                "--pid-dir",
                h.pids(),
                "--notify-ready",
                "0s",
                "--watchdog-every",
                "200ms",
                "--stop-watchdog-file",
                &stop_arg
            ])
        ),
    );
    h.start(&config);
    h.wait_for_event(|t| t == "web.0 is ready (sd_notify)", LONG);
    let old = h.wait_pid("web", 0);
    // Fed every 200 ms: more than one watchdog period passes without a miss.
    assert!(!poll_until(
        || h.count_events(|t| t.contains("watchdog")) > 0,
        Duration::from_millis(1800)
    ));
    assert!(alive(old));

    fs::write(&stop, format!("{old}\n")).unwrap();
    h.wait_for_output(
        "web.0",
        |t| t == "watchdog: no longer sending WATCHDOG=1",
        LONG,
    );
    h.wait_for_event(
        |t| t == "web.0 watchdog: no WATCHDOG=1 within 1s, stopping it",
        LONG,
    );
    let new = h.wait_pid_change("web", 0, old, LONG);
    h.wait_for(|| !alive(old), LONG);
    h.wait_for_events(|t| t == "web.0 is ready (sd_notify)", 2, LONG);
    assert!(alive(new));
    assert_eq!(h.count_events(|t| t.contains("watchdog")), 1);
}

#[test]
fn exec_readiness_waits_for_the_marker_file() {
    let mut h = Harness::new();
    let marker = h.path("db-ready");
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.db]\ncommand = {}\nready = {{ exec = [\"test\", \"-e\", {}] }}\n\n\
             [apps.api]\ncommand = {}\ndepends_on = [\"db\"]\n",
            app_cmd(&["--pid-dir", h.pids()]),
            quote(marker.to_str().unwrap()),
            app_cmd(&["--pid-dir", h.pids()]),
        ),
    );
    h.start(&config);
    h.wait_for_event(|t| t.starts_with("db.0 started (pid "), LONG);
    // Probed every 100 ms: several probes fail while the file is missing.
    assert!(!poll_until(
        || h.count_events(|t| t.contains("is ready") || t.starts_with("api.")) > 0,
        Duration::from_millis(600)
    ));
    assert_eq!(
        h.read_pid("api", 0),
        None,
        "api started before db was ready"
    );

    fs::write(&marker, "").unwrap();
    let ready = h.wait_for_event(|t| t.starts_with("db.0 is ready"), LONG);
    assert_eq!(
        ready,
        format!("db.0 is ready (exec test -e {})", marker.display())
    );
    h.wait_for_event(|t| t.starts_with("api.0 started (pid "), LONG);
    h.wait_pid("api", 0);
    let ready = event_index(&h, |t| t.starts_with("db.0 is ready")).unwrap();
    let api = event_index(&h, |t| t.starts_with("api.0 started")).unwrap();
    assert!(ready < api, "{:?}", h.events());
}

#[test]
fn tcp_and_http_readiness_wait_for_the_server() {
    let mut h = Harness::new();
    let (tcp_port, http_port) = (free_port(), free_port());
    let app = |name: &str, port: u16, ready: String| {
        format!(
            "[apps.{name}]\ncommand = {}\nready = {ready}\n",
            app_cmd(&[
                "--pid-dir",
                h.pids(),
                "--serve-own",
                "--port",
                &port.to_string(),
                "--serve-delay",
                "700ms"
            ])
        )
    };
    let http_url = format!("http://127.0.0.1:{http_port}/");
    let text = format!(
        "{}\n{}\n[apps.api]\ncommand = {}\ndepends_on = [\"t\", \"w\"]\n",
        app(
            "t",
            tcp_port,
            format!("{{ tcp = \"127.0.0.1:{tcp_port}\" }}")
        ),
        app("w", http_port, format!("{{ http = {} }}", quote(&http_url))),
        app_cmd(&["--pid-dir", h.pids()]),
    );
    let config = h.write_config("eco.toml", &text);
    h.start(&config);
    h.wait_for_event(|t| t.starts_with("w.0 started (pid "), LONG);
    let seen_started = Instant::now();
    h.wait_for_event(
        |t| t == format!("t.0 is ready (tcp 127.0.0.1:{tcp_port})"),
        LONG,
    );
    h.wait_for_event(|t| t == format!("w.0 is ready (http {http_url})"), LONG);
    let waited = seen_started.elapsed();
    h.wait_for_event(|t| t.starts_with("api.0 started (pid "), LONG);
    assert!(
        waited >= Duration::from_millis(400),
        "ready {waited:?} after the start, the server came up after 700ms"
    );
    for name in ["t", "w"] {
        let ready = event_index(&h, |t| t.starts_with(&format!("{name}.0 is ready"))).unwrap();
        let api = event_index(&h, |t| t.starts_with("api.0 started")).unwrap();
        assert!(ready < api, "{:?}", h.events());
    }
    let w = h.wait_pid("w", 0);
    assert_eq!(served_by(http_port), Some(w));
}
