//! Safer rollouts (SPEC §8): with `min_ready`, the old instance serves until its
//! successor has stayed up that long, and a successor that crashes meanwhile is rolled
//! back (the old one keeps serving) and `supervise reload` fails with the reason.

use std::time::Instant;

use crate::support::*;

fn config(h: &mut Harness, version: &str, exit_after: Option<&str>) -> std::path::PathBuf {
    let mut args = vec!["--pid-dir", h.pids()];
    if let Some(d) = exit_after {
        args.extend(["--exit-after", d, "--exit-code", "3"]);
    }
    let text = format!(
        "[apps.web]\ncommand = {}\nenv = {{ VERSION = \"{version}\" }}\nmin_ready = \"2s\"\n\
         restart_delay = \"100ms\"\n",
        app_cmd(&args)
    );
    h.write_config("eco.toml", &text)
}

#[test]
fn min_ready_keeps_the_old_instance_until_the_new_one_stayed_up() {
    let mut h = Harness::new();
    let path = config(&mut h, "1", None);
    h.start(&path);
    let old = h.wait_pid("web", 0);
    config(&mut h, "2", None);
    let new = h.wait_pid_change("web", 0, old, LONG);
    let seen = Instant::now();
    h.wait_for_event(
        |t| t.starts_with(&format!("web.0 (old instance, pid {old}) stopping")),
        LONG,
    );
    let held = seen.elapsed();
    assert!(
        held.as_millis() >= 1500,
        "the old one was stopped {held:?} after"
    );
    assert!(alive(new));
}

#[test]
fn a_new_instance_crashing_within_min_ready_is_rolled_back_and_reload_fails() {
    let mut h = Harness::new();
    let path = config(&mut h, "1", None);
    h.start(&path);
    let old = h.wait_pid("web", 0);
    // The new version exits (code 3) after 300 ms, inside min_ready.
    config(&mut h, "2", Some("300ms"));
    h.wait_for_event(
        |t| {
            t == "web.0: the new version exited with code 3 within min_ready (2s); keeping \
                  the old instance and leaving web on its previous version"
        },
        LONG,
    );
    assert!(alive(old), "the old instance keeps serving");
    assert_eq!(
        h.starts("web", 0).len(),
        2,
        "no new attempt after the rollback"
    );
    let report = status_json(&h);
    assert_eq!(pid_of(instance(&report, "web", 0)), Some(old));
    // `supervise reload web` tries this version again, and fails with the reason.
    let out = h.cli(&["reload", "web"]);
    assert!(!out.status.success());
    let err = format!("{}{}", stdout_of(&out), stderr_of(&out));
    assert!(
        err.contains("exited with code 3 within min_ready (2s); rolled back"),
        "{err}"
    );
    assert!(alive(old));
}
