//! `depends_on` conditions (SPEC section 6): `started`, `ready` (the default) and
//! `completed`, and a dependency that fails for good blocking its dependents, with the
//! reason in the event log and in `status`.

use crate::support::*;

/// The position of the first event that starts with `prefix`.
#[track_caller]
fn position(h: &Harness, prefix: &str) -> usize {
    let events = h.events();
    events
        .iter()
        .position(|e| e.starts_with(prefix))
        .unwrap_or_else(|| panic!("no event {prefix:?}: {events:?}"))
}

#[test]
fn started_does_not_wait_for_readiness() {
    let mut h = Harness::new();
    // `slow` never says READY=1: only `started` lets `web` start.
    let eco = Ecosystem::new()
        .app("slow", &["--pid-dir", h.pids()])
        .set("ready", "notify")
        .set("ready_timeout", "1h")
        .app("web", &["--pid-dir", h.pids()])
        .line("depends_on = { slow = \"started\" }");
    h.start_ecosystem(&eco);
    h.wait_for_event(|t| t.starts_with("web.0 started"), LONG);
    assert!(position(&h, "slow.0 started") < position(&h, "web.0 started"));
    let slow = instance(&status_json(&h), "slow", 0).clone();
    assert_eq!(slow["state"], "starting", "{slow}");
}

#[test]
fn ready_in_the_table_form_waits_for_readiness() {
    let mut h = Harness::new();
    let eco = Ecosystem::new()
        .app("db", &["--pid-dir", h.pids(), "--notify-ready", "300ms"])
        .set("ready", "notify")
        .app("web", &["--pid-dir", h.pids()])
        .line("depends_on = { db = \"ready\" }");
    h.start_ecosystem(&eco);
    h.wait_for_event(|t| t.starts_with("web.0 started"), LONG);
    assert!(position(&h, "db.0 is ready (sd_notify)") < position(&h, "web.0 started"));
}

#[test]
fn completed_waits_for_a_clean_exit_of_every_instance() {
    let mut h = Harness::new();
    let eco = Ecosystem::new()
        .app("migrate", &["--exit-after", "300ms"])
        .set("instances", 2)
        .set("restart", "on-failure")
        .app("web", &["--pid-dir", h.pids()])
        .line("depends_on = { migrate = \"completed\" }");
    h.start_ecosystem(&eco);
    h.wait_for_event(|t| t.starts_with("web.0 started"), LONG);
    let web = position(&h, "web.0 started");
    assert!(position(&h, "migrate.0 exited with code 0") < web);
    assert!(position(&h, "migrate.1 exited with code 0") < web);
}

#[test]
fn a_failing_job_blocks_its_dependents_with_the_reason_in_log_and_status() {
    let mut h = Harness::new();
    let eco = Ecosystem::new()
        .app("migrate", &["--exit-after", "100ms", "--exit-code", "3"])
        .set("restart", "never")
        .app("web", &["--pid-dir", h.pids()])
        .line("depends_on = { migrate = \"completed\" }")
        .app("other", &["--pid-dir", h.pids()]);
    h.start_ecosystem(&eco);
    let reason = "dependency migrate (completed) failed: migrate.0 exited with code 3";
    h.wait_for_event(|t| t == format!("web is not started: {reason}"), LONG);
    let web = wait_instance(&h, "web", 0, LONG, |i| i["status_text"].is_string());
    assert_eq!(web["status_text"], format!("blocked: {reason}"), "{web}");
    assert_eq!(web["pid"], serde_json::Value::Null);
    assert_eq!(h.count_events(|t| t.starts_with("web.0 started")), 0);
    // The others run, and supervise waits: the job can be fixed and started again.
    h.wait_pid("other", 0);
    assert!(!h.has_exited(), "{:?}", h.events());
}
