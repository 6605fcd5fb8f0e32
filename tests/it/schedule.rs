//! Schedules (SPEC §8): a `schedule` app is a job that runs at its cron times, a
//! `cron_restart` app is rolled at its times; `status` shows the next time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::*;

#[test]
fn status_shows_a_job_waiting_for_its_next_time() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.backup]\ncommand = {}\nschedule = \"0 4 * * *\"\n\
             [apps.web]\ncommand = {}\ncron_restart = \"@daily\"\n",
            app_cmd(&["--exit-after", "0s"]),
            app_cmd(&["--pid-dir", h.pids()]),
        ),
    );
    h.start(&config);
    h.wait_pid("web", 0);
    let report = status_json(&h);
    let backup = instance(&report, "backup", 0);
    assert_eq!(backup["state"], "stopped", "{backup:#}");
    assert!(backup["pid"].is_null());
    let next = backup["next_run"].as_str().unwrap();
    assert!(next.contains("T04:00:00"), "{next}");
    let web = instance(&report, "web", 0);
    assert!(
        web["next_run"].as_str().unwrap().contains("T00:00:00"),
        "{web:#}"
    );
    let table = cli_ok(&h, &["status"]);
    assert!(table.contains("next run"), "{table}");
    assert_eq!(
        h.count_events(|t| t.starts_with("backup")),
        0,
        "{:?}",
        h.events()
    );
}

/// Waits for the next minute boundary (up to a minute): run by `.ci/run` on its own.
#[test]
#[ignore]
fn a_job_runs_at_the_minute_boundary() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.tick]\ncommand = {}\nschedule = \"* * * * *\"\n",
            app_cmd(&["--print", "1", "--exit-after", "0s"]),
        ),
    );
    h.start(&config);
    h.wait_for_event(|t| t == "tick: scheduled run", Duration::from_secs(75));
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    assert!(second < 10, "ran {second} s past the minute");
    h.wait_for_line(|l| l.contains("line 1 of tick.0"), LONG);
    h.wait_for_event(
        |t| t == "tick.0 finished (scheduled run done, waiting for the next time)",
        LONG,
    );
    let report = status_json(&h);
    assert_eq!(instance(&report, "tick", 0)["state"], "exited");
    assert!(!h.has_exited(), "a job keeps supervise running");
}
