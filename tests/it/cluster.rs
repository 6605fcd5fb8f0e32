//! Cluster mode (issue 5, SPEC section 3): `listen` sockets passed to every instance by
//! socket activation, `ready = "notify"` / tcp / http / exec readiness, rolling updates
//! that wait for readiness (and roll back when it never comes), health checks and the
//! watchdog. The test app serves HTTP/1.0 on the passed sockets and answers `pid=<pid>`,
//! so each response says which instance took the connection. Every wait is on a line, a
//! pid file or a response, against a deadline.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::*;

/// How long one client request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Why a request failed: the connection itself (refused, unreachable), or the exchange
/// after it was established (reset, closed early, timed out).
#[derive(Debug)]
enum Failure {
    Connect(String),
    Exchange(String),
}

/// One HTTP/1.0 GET on an open connection: `(status, body)`.
fn exchange(mut conn: impl Read + Write) -> Result<(u16, String), Failure> {
    let fail = |e: std::io::Error| Failure::Exchange(e.to_string());
    conn.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        .map_err(fail)?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response).map_err(fail)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| Failure::Exchange(format!("no complete response: {text:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Failure::Exchange(format!("bad status line: {head:?}")))?;
    Ok((status, body.to_string()))
}

fn get_tcp(port: u16) -> Result<(u16, String), Failure> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let conn = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)
        .map_err(|e| Failure::Connect(e.to_string()))?;
    conn.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    conn.set_write_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    exchange(conn)
}

fn get_unix(path: &Path) -> Result<(u16, String), Failure> {
    let conn = UnixStream::connect(path).map_err(|e| Failure::Connect(e.to_string()))?;
    conn.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    conn.set_write_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    exchange(conn)
}

/// The pid in a `pid=<pid>` body.
fn body_pid(body: &str) -> Option<i32> {
    let digits: String = body
        .strip_prefix("pid=")?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The pid of the instance that answered 200 on `port`, if one did.
fn served_by(port: u16) -> Option<i32> {
    match get_tcp(port) {
        Ok((200, body)) => body_pid(&body),
        _ => None,
    }
}

/// Make requests until every pid of `want` has answered (at least `min` requests);
/// returns every pid that answered. Panics on an answer from another pid or after
/// `timeout`.
#[track_caller]
fn until_all_answer(port: u16, want: &[i32], min: usize, timeout: Duration) -> Vec<i32> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut requests = 0;
    loop {
        requests += 1;
        match get_tcp(port) {
            Ok((200, body)) => {
                let pid = body_pid(&body).unwrap_or_else(|| panic!("bad body {body:?}"));
                assert!(
                    want.contains(&pid),
                    "pid {pid} answered, not one of {want:?}"
                );
                seen.push(pid);
            }
            other => panic!("request {requests} on port {port} failed: {other:?}"),
        }
        if requests >= min && want.iter().all(|p| seen.contains(p)) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "after {requests} requests in {timeout:?}, only {:?} of {want:?} answered",
            seen.iter().collect::<BTreeSet<_>>()
        );
    }
}

/// Position of the first event matching `pred`.
fn event_index(h: &Harness, pred: impl Fn(&str) -> bool) -> Option<usize> {
    h.events().iter().position(|t| pred(t))
}

/// Positions of every event matching `pred`.
fn event_indices(h: &Harness, pred: impl Fn(&str) -> bool) -> Vec<usize> {
    h.events()
        .iter()
        .enumerate()
        .filter(|(_, t)| pred(t))
        .map(|(i, _)| i)
        .collect()
}

/// The pid in an event `NAME started (pid N)`.
fn started_pid(event: &str) -> i32 {
    event
        .rsplit_once("(pid ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {event:?}"))
}

/// Every pid `NAME started (pid N)` reported, in order.
fn started_pids(h: &Harness, instance: &str) -> Vec<i32> {
    let prefix = format!("{instance} started (pid ");
    h.events()
        .iter()
        .filter(|t| t.starts_with(&prefix))
        .map(|t| started_pid(t))
        .collect()
}

/// Wait for the `listen ...` line of `instance` from its run with `pid`.
#[track_caller]
fn listen_line(h: &Harness, instance: &str, pid: i32) -> String {
    let mine = format!(" pid={pid} ");
    h.wait_for_output(
        instance,
        |t| t.starts_with("listen ") && t.contains(&mine),
        LONG,
    )
}

#[test]
fn two_instances_on_one_listen_address_both_answer() {
    let mut h = Harness::new();
    let port = free_port();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.web]\ncommand = {}\ninstances = 2\nlisten = [\"tcp://127.0.0.1:{port}\"]\n",
            app_cmd(&["--pid-dir", h.pids(), "--serve"])
        ),
    );
    h.start(&config);
    let pids = [h.wait_pid("web", 0), h.wait_pid("web", 1)];
    assert_ne!(pids[0], pids[1]);
    // Requests may come before an instance accepts: they wait in the backlog.
    let seen = until_all_answer(port, &pids, 50, LONG);
    let counts: Vec<usize> = pids
        .iter()
        .map(|p| seen.iter().filter(|s| *s == p).count())
        .collect();
    eprintln!(
        "cluster: {} requests, web.0 (pid {}) answered {}, web.1 (pid {}) {}",
        seen.len(),
        pids[0],
        counts[0],
        pids[1],
        counts[1]
    );
    // Every answer came from one of the two (supervise never accepts), and each
    // instance saw the socket at fd 3.
    for (i, &pid) in pids.iter().enumerate() {
        listen_line(&h, &format!("web.{i}"), pid);
    }
}

#[test]
fn instances_get_the_sockets_the_systemd_way() {
    let mut h = Harness::new();
    let (p1, p2) = (free_port(), free_port());
    let sock = h.path("web.sock");
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.one]\ncommand = {cmd}\nlisten = [\"tcp://127.0.0.1:{p1}\"]\n\n\
             [apps.two]\ncommand = {cmd}\nlisten = [\"tcp://127.0.0.1:{p2}\", {unix}]\n",
            cmd = app_cmd(&["--pid-dir", h.pids(), "--serve"]),
            unix = quote(&format!("unix:{}", sock.display())),
        ),
    );
    h.start(&config);

    let one = h.wait_pid("one", 0);
    let line = listen_line(&h, "one.0", one);
    assert_eq!(
        line,
        format!(
            "listen LISTEN_PID={one} pid={one} LISTEN_FDS=1 \
             LISTEN_FDNAMES=tcp-127.0.0.1-{p1} fd3=tcp types=tcp"
        )
    );
    let two = h.wait_pid("two", 0);
    let line = listen_line(&h, "two.0", two);
    assert_eq!(
        line,
        format!(
            "listen LISTEN_PID={two} pid={two} LISTEN_FDS=2 \
             LISTEN_FDNAMES=tcp-127.0.0.1-{p2}:unix-web.sock fd3=tcp types=tcp,unix"
        )
    );
    until_all_answer(p1, &[one], 1, LONG);
    until_all_answer(p2, &[two], 1, LONG);
    match get_unix(&sock) {
        Ok((200, body)) => assert_eq!(body_pid(&body), Some(two), "{body:?}"),
        other => panic!(
            "the unix socket {} did not answer: {other:?}",
            sock.display()
        ),
    }

    // A restarted instance gets the same sockets, and LISTEN_PID is its own new pid.
    kill(Pid::from_raw(two), Signal::SIGKILL).unwrap();
    let new = h.wait_pid_change("two", 0, two, LONG);
    let line = listen_line(&h, "two.0", new);
    assert!(
        line.starts_with(&format!("listen LISTEN_PID={new} pid={new} LISTEN_FDS=2 ")),
        "{line}"
    );
    until_all_answer(p2, &[new], 1, LONG);
    match get_unix(&sock) {
        Ok((200, body)) => assert_eq!(body_pid(&body), Some(new), "{body:?}"),
        other => panic!("the unix socket did not answer after a restart: {other:?}"),
    }
    assert!(
        !h.lines()
            .iter()
            .any(|l| l.contains("LISTEN_PID is not our pid")),
        "an instance refused the sockets"
    );
}

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
fn a_listen_address_in_use_is_a_located_config_error() {
    let mut h = Harness::new();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let sock = h.path("busy.sock");
    let _live = UnixListener::bind(&sock).unwrap();
    let unix = quote(&format!("unix:{}", sock.display()));
    let tcp = format!("\"tcp://127.0.0.1:{port}\"");
    let text = format!(
        "[apps.web]\ncommand = {}\nlisten = [{tcp}, {unix}]\n",
        app_cmd(&["--serve"])
    );
    let config = h.write_config("eco.toml", &text);
    // Located at the element: line 3, the column of its opening quote.
    let col_tcp = "listen = [".len() + 1;
    let col_unix = col_tcp + tcp.len() + ", ".len();
    let want = [
        format!(
            "eco.toml:3:{col_tcp}: apps.web.listen[0]: cannot listen on \
             tcp://127.0.0.1:{port}: address already in use"
        ),
        format!(
            "eco.toml:3:{col_unix}: apps.web.listen[1]: cannot listen on \
             unix:{}: address already in use",
            sock.display()
        ),
    ];

    let out = Command::new(supervise_bin())
        .args(["check", "eco.toml"])
        .current_dir(h.dir())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for want in &want {
        assert!(
            stderr.contains(want.as_str()),
            "expected {want:?} in:\n{stderr}"
        );
    }

    // Starting refuses the file the same way, and starts nothing.
    h.start(&config);
    let status = h.wait_exit(LONG);
    assert_eq!(status.code(), Some(1));
    let stderr = h.stderr_lines().join("\n");
    for want in &want {
        assert!(
            stderr.contains(want.as_str()),
            "expected {want:?} in:\n{stderr}"
        );
    }
    assert_eq!(h.count_events(|t| t.contains(" started (pid ")), 0);
    // The holders are untouched.
    assert!(sock.exists());
    TcpStream::connect(("127.0.0.1", port)).expect("the test's listener still listens");
}

#[test]
fn a_listen_address_in_use_on_reload_changes_nothing() {
    let mut h = Harness::new();
    let port = free_port();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let text = |listen: &str, v: &str| {
        format!(
            "[apps.web]\ncommand = {}\nlisten = [{listen}]\nenv = {{ V = \"{v}\" }}\n",
            app_cmd(&["--pid-dir", h.pids(), "--serve"])
        )
    };
    let v1 = text(&format!("\"tcp://127.0.0.1:{port}\""), "1");
    let v2 = text(
        &format!("\"tcp://127.0.0.1:{port}\", \"tcp://127.0.0.1:{busy_port}\""),
        "2",
    );
    let config = h.write_config("eco.toml", &v1);
    h.start(&config);
    let old = h.wait_pid("web", 0);
    until_all_answer(port, &[old], 1, LONG);

    fs::write(&config, &v2).unwrap();
    let error = h.wait_for_event(|t| t.starts_with("config error: "), LONG);
    let col = "listen = [".len() + format!("\"tcp://127.0.0.1:{port}\", ").len() + 1;
    let located = format!(
        "{}:3:{col}: apps.web.listen[1]: cannot listen on tcp://127.0.0.1:{busy_port}: ",
        config.display()
    );
    assert!(
        error.contains(&located) && error.ends_with("address already in use"),
        "expected {located:?}... in {error:?}"
    );
    h.wait_for_event(
        |t| t == "the new version is refused; the running apps are left as they are",
        LONG,
    );
    // Nothing changed: same pid, still serving on the old address, nothing started.
    until_all_answer(port, &[old], 10, LONG);
    assert!(alive(old));
    assert_eq!(h.starts("web", 0), vec![old]);
    assert_eq!(started_pids(&h, "web.0"), vec![old]);
    TcpStream::connect(("127.0.0.1", busy_port)).expect("the test's listener still listens");
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

#[test]
fn connections_are_never_refused_while_instances_restart() {
    let mut h = Harness::new();
    let port = free_port();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.web]\ncommand = {}\ninstances = 2\nlisten = [\"tcp://127.0.0.1:{port}\"]\n\
             restart_delay = \"50ms\"\nbackoff_max = \"100ms\"\nmax_restarts = 0\n",
            app_cmd(&["--pid-dir", h.pids(), "--serve"])
        ),
    );
    h.start(&config);
    let mut pids = vec![h.wait_pid("web", 0), h.wait_pid("web", 1)];
    until_all_answer(port, &pids, 2, LONG);

    // One client making short-lived requests, one at a time, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        thread::spawn(move || {
            let (mut ok, mut refused, mut broken) = (0usize, Vec::new(), Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match get_tcp(port) {
                    Ok((200, _)) => ok += 1,
                    Ok(other) => broken.push(format!("{other:?}")),
                    Err(Failure::Connect(e)) => refused.push(e),
                    Err(Failure::Exchange(e)) => broken.push(e),
                }
            }
            (ok, refused, broken)
        })
    };
    // For ~2 s: kill -9 one instance (every third round both), wait for its successor.
    let began = Instant::now();
    let mut killed = 0;
    let mut round = 0;
    while began.elapsed() < Duration::from_secs(2) {
        let victims: Vec<u32> = match round % 3 {
            0 => vec![0],
            1 => vec![1],
            _ => vec![0, 1],
        };
        for &i in &victims {
            kill(Pid::from_raw(pids[i as usize]), Signal::SIGKILL).unwrap();
            killed += 1;
        }
        for &i in &victims {
            pids[i as usize] = h.wait_pid_change("web", i, pids[i as usize], LONG);
        }
        round += 1;
    }
    // Let the client go on a little with the last successors.
    until_all_answer(port, &pids, 1, LONG);
    stop.store(true, Ordering::SeqCst);
    let (ok, refused, broken) = client.join().unwrap();
    eprintln!(
        "kill -9 loop: {killed} instances killed in {round} rounds, {ok} requests served, \
         {} refused, {} broken {:?}",
        refused.len(),
        broken.len(),
        broken.iter().collect::<BTreeSet<_>>()
    );
    assert!(refused.is_empty(), "refused connections: {refused:?}");
    // A request the killed instance had already accepted dies with it (at most one per
    // kill: the client has one request in flight); none may be lost otherwise.
    assert!(
        broken.len() <= killed,
        "{} broken requests for {killed} kills: {broken:?}",
        broken.len()
    );
    assert!(ok >= 20, "only {ok} requests served");
    assert!(round >= 3, "only {round} rounds");
}

#[test]
fn gunicorn_accepts_the_socket_by_socket_activation() {
    let probe = Command::new("python3")
        .args(["-c", "import sys, gunicorn; print(sys.executable)"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let python = match probe {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => {
            eprintln!("note: skipping the gunicorn test, `python3 -c \"import gunicorn\"` failed");
            return;
        }
    };
    let mut h = Harness::new();
    let port = free_port();
    h.write_file(
        "hello.py",
        "import os\n\n\ndef app(environ, start_response):\n    \
         body = ('pid=%d\\n' % os.getpid()).encode()\n    \
         start_response('200 OK', [('Content-Type', 'text/plain'), \
         ('Content-Length', str(len(body)))])\n    return [body]\n",
    );
    // No --bind: gunicorn takes the sockets only when LISTEN_PID is its own pid.
    let config = h.write_config(
        "eco.toml",
        &format!(
            // HOME in the test folder: gunicorn >= 25 puts its control socket there.
            "[apps.py]\ncommand = {}\nlisten = [\"tcp://127.0.0.1:{port}\"]\nstop_timeout = \"5s\"\n\
             env = {{ HOME = \"{home}\" }}\n",
            serde_json::to_string(&[
                python.as_str(),
                "-m",
                "gunicorn",
                "--workers",
                "2",
                "hello:app"
            ])
            .unwrap(),
            home = h.path("").display()
        ),
    );
    h.start(&config);
    let leader = started_pid(&h.wait_for_event(|t| t.starts_with("py.0 started (pid "), LONG));
    // gunicorn starts slowly on a busy machine; connections wait in the backlog.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut workers = BTreeSet::new();
    let (mut answered, mut last_failure) = (0, None);
    while answered < 10 && Instant::now() < deadline {
        match get_tcp(port) {
            Ok((200, body)) => {
                answered += 1;
                workers.insert(body_pid(&body).unwrap_or_else(|| panic!("body {body:?}")));
            }
            other => last_failure = Some(format!("{other:?}")),
        }
    }
    assert_eq!(
        answered, 10,
        "gunicorn did not answer; last failure: {last_failure:?}"
    );
    for &pid in &workers {
        assert!(
            descendants(leader).contains(&pid),
            "pid {pid} is not a gunicorn worker under {leader}"
        );
    }
    let lines = h.lines().join("\n");
    assert!(
        lines.contains(&format!("Listening at: http://127.0.0.1:{port}")),
        "gunicorn did not say it listens on the passed socket:\n{lines}"
    );
}
