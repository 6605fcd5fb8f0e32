//! Shutdown for Kubernetes and critical apps (SPEC section 7, issue 12 items 2 and 4):
//! `shutdown_delay` turns /readyz 503 at once while the apps keep serving, a second
//! SIGTERM still kills at once, and a critical app that fails for good takes everything
//! down with its exit code.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::http::{get, wait_http};
use crate::support::*;

fn serving_app(port: u16) -> String {
    app_cmd(&["--serve-own", "--port", &port.to_string(), "--trap-term"])
}

#[test]
fn shutdown_delay_turns_readyz_503_at_once_and_keeps_serving() {
    let mut h = Harness::new();
    let (port, app_port) = (free_port(), free_port());
    let text = format!(
        r#"
[settings]
http = "127.0.0.1:{port}"
shutdown_delay = "2s"

[apps.web]
command = {}
ready = {{ http = "http://127.0.0.1:{app_port}/" }}
"#,
        serving_app(app_port)
    );
    let config = h.write_config("eco.toml", &text);
    h.start(&config);
    wait_http(port, "/readyz", 200, |_| true);

    let t0 = Instant::now();
    h.send_signal(Signal::SIGTERM);
    let body = wait_http(port, "/readyz", 503, |_| true);
    assert!(body.contains("[-] supervise stopping"), "{body}");
    // Still serving: the app answers and nothing was stopped yet.
    assert_eq!(get(app_port, "/").0, 200);
    assert_eq!(get(port, "/livez").0, 200);
    h.wait_for_event(|e| e.starts_with("web.0 stopping"), LONG);
    let stopped_after = t0.elapsed();
    assert!(
        stopped_after >= Duration::from_secs(2),
        "the stop began {stopped_after:?} after SIGTERM, before shutdown_delay"
    );
    h.wait_for_output("web.0", |l| l.contains("got SIGTERM"), LONG);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
}

#[test]
fn a_second_sigterm_during_the_delay_kills_at_once() {
    let mut h = Harness::new();
    let port = free_port();
    let text = format!(
        "[settings]\nhttp = \"127.0.0.1:{port}\"\nshutdown_delay = \"1h\"\n\n[apps.web]\ncommand = {}\n",
        app_cmd(&["--ready-line"])
    );
    let config = h.write_config("eco.toml", &text);
    h.start(&config);
    h.wait_for_output("web.0", |l| l.starts_with("ready pid="), LONG);
    h.send_signal(Signal::SIGTERM);
    wait_http(port, "/readyz", 503, |_| true);
    h.send_signal(Signal::SIGTERM);
    h.wait_for_event(|e| e.contains("killing everything now"), LONG);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
}

fn critical_config(h: &mut Harness, critical: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[apps.core]
command = {critical}
critical = true
restart = "never"

[apps.web]
command = {}
"#,
        app_cmd(&["--trap-term", "--ready-line"])
    );
    h.write_config("eco.toml", &text)
}

#[test]
fn a_critical_app_that_fails_stops_everything_with_its_exit_code() {
    let mut h = Harness::new();
    let core = app_cmd(&["--ready-line", "--exit-after", "300ms", "--exit-code", "3"]);
    let config = critical_config(&mut h, &core);
    h.start(&config);
    h.wait_for_event(
        |e| e.contains("core.0 is critical and failed for good"),
        LONG,
    );
    assert_eq!(h.wait_exit(LONG).code(), Some(3));
    // Exited: every line it printed has been read.
    assert!(
        h.instance_output("web.0")
            .iter()
            .any(|l| l.contains("got SIGTERM")),
        "web was stopped gracefully"
    );
}

#[test]
fn a_critical_app_killed_by_a_signal_exits_128_plus_n() {
    let mut h = Harness::new();
    let core = app_cmd(&["--ready-line", "--pid-dir", h.pids()]);
    let config = critical_config(&mut h, &core);
    h.start(&config);
    let pid = h.wait_pid("core", 0);
    h.wait_for_output("web.0", |l| l.starts_with("ready pid="), LONG);
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    assert_eq!(h.wait_exit(LONG).code(), Some(128 + 9));
}

#[test]
fn success_exit_codes_count_as_clean() {
    let mut h = Harness::new();
    let text = format!(
        "[apps.job]\ncommand = {}\nrestart = \"on-failure\"\ncritical = true\nsuccess_exit_codes = [0, 3]\n",
        app_cmd(&["--exit-after", "100ms", "--exit-code", "3"])
    );
    let config = h.write_config("eco.toml", &text);
    h.start(&config);
    assert_eq!(
        h.wait_exit(LONG).code(),
        Some(0),
        "3 is clean: finished, exit 0"
    );
}
