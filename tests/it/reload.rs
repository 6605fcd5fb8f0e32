//! Declarative reload (issue 4, SPEC section 3): edit the ecosystem file (in place, by
//! write-then-rename, by a ConfigMap `..data` swap), send SIGHUP, edit an `env_file` or a
//! watched source file, and check that the running processes follow while every
//! untouched instance keeps its pid. Every wait is on a line or a pid file.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::*;

/// Each save must be converged within this (issue 4: "convergence within 2 s").
const CONVERGE: Duration = Duration::from_secs(2);

/// An in-place save, as `echo ... > file` or an editor writing over the file.
fn write_in_place(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
}

/// `[apps.NAME]` running the test app with `--pid-dir`, `instances` and `env`, plus any
/// extra lines.
fn app(h: &Harness, name: &str, instances: u32, env: &str, extra: &str) -> String {
    format!(
        "[apps.{name}]\ncommand = {}\ninstances = {instances}\nenv = {{ {env} }}\n{extra}\n",
        app_cmd(&["--pid-dir", h.pids()])
    )
}

/// The line supervise logs after applying a version of `path`.
fn reloaded(path: &Path, summary: &str) -> String {
    format!("reloaded {}: {summary}", path.display())
}

/// Pid files `APP.0.pid` .. `APP.{n-1}.pid`, each waited for.
fn wait_pids(h: &Harness, app: &str, n: u32) -> Vec<i32> {
    (0..n).map(|i| h.wait_pid(app, i)).collect()
}

/// Every pid any instance of `app` ever had (from the `.starts` files).
fn all_starts(h: &Harness, app: &str) -> Vec<i32> {
    let prefix = format!("{app}.");
    let mut pids = Vec::new();
    for entry in fs::read_dir(&h.pid_dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(&prefix) && name.ends_with(".starts") {
            pids.extend(
                fs::read_to_string(entry.path())
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse::<i32>().ok()),
            );
        }
    }
    pids
}

/// How many `NAME started` events were logged so far.
fn started_count(h: &Harness) -> usize {
    h.count_events(|t| t.contains(" started (pid "))
}

#[test]
fn scale_2_to_5_to_1_keeps_the_survivors_pids() {
    let mut h = Harness::new();
    let text = |n| app(&h, "web", n, "", "");
    let (v2, v5, v1) = (text(2), text(5), text(1));
    let config = h.write_config("ecosystem.toml", &v2);
    h.start(&config);
    let before = wait_pids(&h, "web", 2);
    h.wait_for_event(|t| t.starts_with("web.1 started"), LONG);

    // 2 -> 5: web.2..4 start, web.0 and web.1 are not touched.
    let saved = Instant::now();
    write_in_place(&config, &v5);
    h.wait_for_event(|t| t == reloaded(&config, "web scaled 2 -> 5"), LONG);
    for i in 2..5 {
        h.wait_for_event(|t| t.starts_with(&format!("web.{i} started (pid ")), LONG);
    }
    let up = saved.elapsed();
    let after = wait_pids(&h, "web", 5);
    assert_eq!(&after[..2], &before[..], "web.0 and web.1 kept their pids");
    for i in 0..2 {
        assert_eq!(h.starts("web", i), vec![before[i as usize]]);
    }
    for &pid in &after {
        assert!(alive(pid), "pid {pid} of {after:?} is not running");
    }
    assert!(up < CONVERGE, "2 -> 5 took {up:?}");

    // 5 -> 1: the highest numbers stop, web.0 is not touched.
    let saved = Instant::now();
    write_in_place(&config, &v1);
    h.wait_for_event(|t| t == reloaded(&config, "web scaled 5 -> 1"), LONG);
    for i in 1..5 {
        h.wait_for_event(|t| t == format!("web.{i} stopped"), LONG);
    }
    h.wait_for(|| after[1..].iter().all(|&p| !alive(p)), LONG);
    let down = saved.elapsed();
    assert!(alive(after[0]));
    assert_eq!(h.read_pid("web", 0), Some(before[0]));
    assert_eq!(h.starts("web", 0), vec![before[0]]);
    assert_eq!(live_descendants(&h), BTreeSet::from([before[0]]));
    assert!(down < CONVERGE, "5 -> 1 took {down:?}");
    // Exactly the numbers above the new count were stopped, each once.
    let events = h.events();
    let mut stopped: Vec<usize> = events
        .iter()
        .filter_map(|t| {
            t.strip_prefix("web.")?
                .strip_suffix(" stopping (SIGTERM)")?
                .parse()
                .ok()
        })
        .collect();
    stopped.sort();
    assert_eq!(stopped, vec![1, 2, 3, 4], "{events:?}");
    eprintln!("reload scale: 2 -> 5 converged in {up:?}, 5 -> 1 in {down:?}");
}

#[test]
fn only_the_changed_app_is_replaced() {
    let mut h = Harness::new();
    let text = |v: &str| {
        format!(
            "{}\n{}",
            app(&h, "web", 2, &format!("V = \"{v}\""), ""),
            app(&h, "api", 2, "V = \"same\"", "")
        )
    };
    let (first, second) = (text("1"), text("2"));
    let config = h.write_config("ecosystem.toml", &first);
    h.start(&config);
    let web = wait_pids(&h, "web", 2);
    let api = wait_pids(&h, "api", 2);
    for pid in &web {
        assert_eq!(environ_var(*pid, "V").as_deref(), Some("1"));
    }

    write_in_place(&config, &second);
    h.wait_for_event(
        |t| t == reloaded(&config, "web replaced (env changed, rolling update)"),
        LONG,
    );
    let new: Vec<i32> = (0..2)
        .map(|i| h.wait_pid_change("web", i, web[i as usize], LONG))
        .collect();
    h.wait_for(|| web.iter().all(|&p| !alive(p)), LONG);
    for pid in &new {
        assert!(alive(*pid));
        assert_eq!(environ_var(*pid, "V").as_deref(), Some("2"));
    }
    for i in 0..2 {
        h.wait_for_event(
            |t| t.starts_with(&format!("web.{i} (old instance, pid {}) stopping", web[i])),
            LONG,
        );
        assert_eq!(h.starts("web", i as u32), vec![web[i], new[i]]);
    }
    // The other app was not touched.
    for (i, &pid) in api.iter().enumerate() {
        assert!(alive(pid));
        assert_eq!(h.read_pid("api", i as u32), Some(pid));
        assert_eq!(h.starts("api", i as u32), vec![pid]);
    }
    assert_eq!(
        h.count_events(|t| t.starts_with("api.")),
        2,
        "{:?}",
        h.events()
    );
}

#[test]
fn invalid_versions_change_nothing_and_are_located() {
    let mut h = Harness::new();
    let cmd = app_cmd(&["--pid-dir", h.pids()]);
    // Line 3 holds the syntax error, line 4 the unknown key.
    let valid = format!("[apps.web]\ncommand = {cmd}\ninstances = 2\n");
    let syntax = format!("[apps.web]\ncommand = {cmd}\ninstances = 3 3\n");
    let unknown = format!("[apps.web]\ncommand = {cmd}\ninstances = 3\ninstancez = 3\n");
    let fixed = format!("[apps.web]\ncommand = {cmd}\ninstances = 3\n");
    let config = h.write_config("ecosystem.toml", &valid);
    h.start(&config);
    let pids = wait_pids(&h, "web", 2);
    h.wait_for_event(|t| t.starts_with("web.1 started"), LONG);
    let started = started_count(&h);
    let located = |line: u32| {
        let prefix = format!("config error: {}:{line}:", config.display());
        move |t: &str| {
            t.strip_prefix(&prefix).is_some_and(|rest| {
                let (col, _) = rest.split_once(':').unwrap_or(("", ""));
                !col.is_empty() && col.bytes().all(|b| b.is_ascii_digit())
            })
        }
    };
    let refused =
        |t: &str| t == "the new version is refused; the running apps are left as they are";

    write_in_place(&config, &syntax);
    let error = h.wait_for_event(located(3), LONG);
    assert!(error.contains("TOML syntax error"), "{error}");
    h.wait_for_events(refused, 1, LONG);

    write_in_place(&config, &unknown);
    let error = h.wait_for_event(located(4), LONG);
    assert!(
        error.contains("apps.web.instancez") && error.contains("unknown key"),
        "{error}"
    );
    h.wait_for_events(refused, 2, LONG);

    // Nothing moved: no start, no stop, the same pids, all running.
    let events = h.events();
    assert_eq!(started_count(&h), started, "{events:?}");
    assert_eq!(h.count_events(|t| t.contains("stopping")), 0, "{events:?}");
    assert_eq!(
        h.count_events(|t| t.starts_with("reloaded ")),
        0,
        "{events:?}"
    );
    for (i, &pid) in pids.iter().enumerate() {
        assert!(alive(pid));
        assert_eq!(h.starts("web", i as u32), vec![pid]);
    }
    assert!(h.read_pid("web", 2).is_none());

    // A valid version is applied again.
    write_in_place(&config, &fixed);
    h.wait_for_event(|t| t == reloaded(&config, "web scaled 2 -> 3"), LONG);
    h.wait_pid("web", 2);
    for (i, &pid) in pids.iter().enumerate() {
        assert!(alive(pid));
        assert_eq!(h.starts("web", i as u32), vec![pid]);
    }
}

#[test]
fn write_then_rename_saves_are_applied_five_times_in_a_row() {
    let mut h = Harness::new();
    let config = h.write_config("ecosystem.toml", &app(&h, "web", 1, "", ""));
    h.start(&config);
    let first = h.wait_pid("web", 0);
    for n in 2..=6 {
        let saved = Instant::now();
        write_rename(&config, &app(&h, "web", n, "", ""));
        h.wait_for_event(
            |t| t == reloaded(&config, &format!("web scaled {} -> {n}", n - 1)),
            LONG,
        );
        h.wait_for_event(
            |t| t.starts_with(&format!("web.{} started (pid ", n - 1)),
            LONG,
        );
        h.wait_pid("web", n - 1);
        let took = saved.elapsed();
        assert!(took < CONVERGE, "save {n} took {took:?}");
    }
    assert_eq!(h.count_events(|t| t.starts_with("reloaded ")), 5);
    assert_eq!(h.starts("web", 0), vec![first]);
    assert_eq!(live_descendants(&h).len(), 6);
}

#[test]
fn configmap_symlink_swap_is_applied() {
    let mut h = Harness::new();
    // As kubelet lays out a ConfigMap volume.
    h.write_config("cm/..2026_01/ecosystem.toml", &app(&h, "web", 1, "", ""));
    let cm = h.path("cm");
    symlink("..2026_01", cm.join("..data")).unwrap();
    symlink("..data/ecosystem.toml", cm.join("ecosystem.toml")).unwrap();
    let config = cm.join("ecosystem.toml");
    h.start(&config);
    let first = h.wait_pid("web", 0);

    // Two updates, each exactly as kubelet does it: a new timestamped folder, a new
    // symlink, renamed over `..data` (atomic), then the old folder removed.
    for (n, old, new) in [(2, "..2026_01", "..2026_02"), (3, "..2026_02", "..2026_03")] {
        h.write_config(
            &format!("cm/{new}/ecosystem.toml"),
            &app(&h, "web", n, "", ""),
        );
        symlink(new, cm.join("..data_tmp")).unwrap();
        fs::rename(cm.join("..data_tmp"), cm.join("..data")).unwrap();
        fs::remove_dir_all(cm.join(old)).unwrap();
        h.wait_for_event(
            |t| t == reloaded(&config, &format!("web scaled {} -> {n}", n - 1)),
            LONG,
        );
        h.wait_pid("web", n - 1);
    }
    assert_eq!(h.starts("web", 0), vec![first]);
    assert!(alive(first));
}

#[test]
fn sighup_reloads_at_once_and_says_when_nothing_changed() {
    let mut h = Harness::new();
    let config = h.write_config("ecosystem.toml", &app(&h, "web", 1, "", ""));
    h.start(&config);
    let first = h.wait_pid("web", 0);
    h.wait_for_event(|t| t.starts_with("web.0 started"), LONG);

    h.send_signal(Signal::SIGHUP);
    h.wait_for_event(|t| t == "received SIGHUP, reloading", LONG);
    h.wait_for_event(
        |t| t == format!("{} has not changed", config.display()),
        LONG,
    );

    // A save followed at once by SIGHUP: applied once (whichever of the signal and the
    // watcher comes first, the other sees identical bytes).
    write_in_place(&config, &app(&h, "web", 2, "", ""));
    h.send_signal(Signal::SIGHUP);
    h.wait_for_events(|t| t == "received SIGHUP, reloading", 2, LONG);
    h.wait_for_event(|t| t == reloaded(&config, "web scaled 1 -> 2"), LONG);
    h.wait_pid("web", 1);
    // The watcher's debounced event (100 ms) must not apply it a second time.
    assert!(!poll_until(
        || h.count_events(|t| t.starts_with("reloaded ")) > 1,
        Duration::from_millis(600)
    ));
    assert_eq!(h.starts("web", 0), vec![first]);
    assert_eq!(h.starts("web", 1).len(), 1);
}

#[test]
fn an_edit_storm_converges_to_the_last_version() {
    edit_storm(false);
}

/// The same storm, each save followed by SIGHUP: every version is applied at once, so
/// new versions keep arriving while rolling updates are in progress.
#[test]
fn an_edit_storm_with_sighup_after_each_save_converges_to_the_last_version() {
    edit_storm(true);
}

/// A new version every 10 ms for 2 s (in place, instances cycling 1..4, `V` the version
/// number), then a last one with 3 instances; supervise must end on exactly that.
fn edit_storm(sighup: bool) {
    let mut h = Harness::new();
    let version = |h: &Harness, i: u32, n: u32| app(h, "web", n, &format!("V = \"{i}\""), "");
    let config = h.write_config("ecosystem.toml", &version(&h, 0, 2));
    h.start(&config);
    wait_pids(&h, "web", 2);

    let storm = Instant::now();
    let mut i = 0;
    while storm.elapsed() < Duration::from_secs(2) {
        i += 1;
        write_in_place(&config, &version(&h, i, i % 4 + 1));
        if sighup {
            h.send_signal(Signal::SIGHUP);
        }
        std::thread::sleep(Duration::from_millis(10)); // the storm's pace, not a wait
    }
    let last = i + 1;
    write_in_place(&config, &version(&h, last, 3));
    let saved = Instant::now();
    if sighup {
        h.send_signal(Signal::SIGHUP);
    }
    let want = last.to_string();

    // Converged: exactly three live processes under supervise, web.0..2, all with the
    // last environment; every other process this app ever had is gone.
    let mut state = String::new();
    let converged = poll_until(
        || {
            let live = live_descendants(&h);
            let slots: Vec<Option<i32>> = (0..3).map(|k| h.read_pid("web", k)).collect();
            let envs: Vec<Option<String>> = live.iter().map(|&p| environ_var(p, "V")).collect();
            let stale: Vec<i32> = all_starts(&h, "web")
                .into_iter()
                .filter(|p| !live.contains(p) && alive(*p))
                .collect();
            state = format!("live {live:?}, slots {slots:?}, V {envs:?}, stale alive {stale:?}");
            live.len() == 3
                && slots.iter().all(|s| s.is_some_and(|p| live.contains(&p)))
                && envs.iter().all(|v| v.as_deref() == Some(want.as_str()))
                && stale.is_empty()
        },
        Duration::from_secs(30),
    );
    let took = saved.elapsed();
    assert!(
        converged,
        "no convergence to V={want}, 3 instances: {state}"
    );
    // And it stays so (a bounded look for late flapping).
    let settled = live_descendants(&h);
    assert!(!poll_until(
        || live_descendants(&h) != settled,
        Duration::from_millis(500)
    ));
    let starts = all_starts(&h, "web");
    for pid in &starts {
        assert!(settled.contains(pid) || !alive(*pid), "leftover {pid}");
    }
    eprintln!(
        "edit storm (sighup: {sighup}): {i} versions in 2 s, {} reloads applied, {} refused, \
         {} processes started, converged {took:?} after the last save",
        h.count_events(|t| t.starts_with("reloaded ")),
        h.count_events(|t| t.starts_with("the new version is refused")),
        starts.len(),
    );
}

#[test]
fn an_env_file_edit_replaces_the_app() {
    let mut h = Harness::new();
    h.write_file("app.env", "V=one\n");
    let config = h.write_config(
        "ecosystem.toml",
        &app(&h, "web", 1, "", "env_file = \"app.env\""),
    );
    h.start(&config);
    let old = h.wait_pid("web", 0);
    assert_eq!(environ_var(old, "V").as_deref(), Some("one"));

    h.write_file("app.env", "V=two\n");
    h.wait_for_event(
        |t| t.starts_with(&reloaded(&config, "web replaced (")),
        LONG,
    );
    let new = h.wait_pid_change("web", 0, old, LONG);
    assert_eq!(environ_var(new, "V").as_deref(), Some("two"));
    h.wait_for(|| !alive(old), LONG);
    assert_eq!(h.starts("web", 0), vec![old, new]);
}

#[test]
fn watch_restarts_on_a_watched_change_but_not_an_ignored_one() {
    let mut h = Harness::new();
    h.write_file("src/main.js", "1\n");
    h.write_file("src/node_modules/dep/index.js", "1\n");
    let config = h.write_config(
        "ecosystem.toml",
        &app(&h, "web", 1, "", "watch = [\"src\"]\nignore = [\"*.tmp\"]"),
    );
    h.start(&config);
    let old = h.wait_pid("web", 0);
    h.wait_for_event(|t| t.starts_with("web.0 started"), LONG);
    let restarting = |t: &str| t == "web: watched files changed, restarting";

    // Ignored changes first: an ignored pattern and node_modules (always ignored).
    h.write_file("src/swap.tmp", "x\n");
    h.write_file("src/node_modules/dep/index.js", "2\n");
    h.write_file("src/node_modules/new.js", "x\n");
    assert!(
        !poll_until(|| h.count_events(restarting) > 0, Duration::from_secs(1)),
        "an ignored file restarted the app: {:?}",
        h.events()
    );
    assert_eq!(h.starts("web", 0), vec![old]);

    // A watched change rolls the app.
    h.write_file("src/main.js", "2\n");
    h.wait_for_event(restarting, LONG);
    let new = h.wait_pid_change("web", 0, old, LONG);
    h.wait_for(|| !alive(old), LONG);
    assert!(alive(new));
    assert_eq!(h.count_events(restarting), 1, "{:?}", h.events());
}

#[test]
fn recreate_stops_the_old_instance_before_starting_the_new() {
    let mut h = Harness::new();
    let extra = "update = \"recreate\"";
    let config = h.write_config("ecosystem.toml", &app(&h, "web", 1, "V = \"1\"", extra));
    h.start(&config);
    let old = h.wait_pid("web", 0);
    h.wait_for_event(|t| t.starts_with("web.0 started"), LONG);

    write_in_place(&config, &app(&h, "web", 1, "V = \"2\"", extra));
    h.wait_for_event(
        |t| t == reloaded(&config, "web replaced (env changed, recreate update)"),
        LONG,
    );
    let new = h.wait_pid_change("web", 0, old, LONG);
    let started = format!("web.0 started (pid {new})");
    h.wait_for_event(|t| t == started, LONG);
    assert_eq!(environ_var(new, "V").as_deref(), Some("2"));
    let events = h.events();
    let at = |pred: &dyn Fn(&str) -> bool| {
        events
            .iter()
            .position(|t| pred(t))
            .unwrap_or_else(|| panic!("missing line in {events:?}"))
    };
    let stopping = at(&|t| t.starts_with("web.0") && t.contains("stopping (SIGTERM)"));
    let exited = at(&|t| t.starts_with("web.0") && t.contains("killed by signal SIGTERM"));
    let start = at(&|t| t == started);
    assert!(
        stopping < exited && exited < start,
        "recreate must stop, then start: {events:?}"
    );
    assert!(!alive(old));
}

#[test]
fn a_removed_app_stops_gracefully_and_an_added_one_starts() {
    let mut h = Harness::new();
    let keep = app(&h, "keep", 1, "", "");
    let gone = format!(
        "[apps.gone]\ncommand = {}\n",
        app_cmd(&["--pid-dir", h.pids(), "--trap-term"])
    );
    let config = h.write_config("ecosystem.toml", &format!("{keep}\n{gone}"));
    h.start(&config);
    let kept = h.wait_pid("keep", 0);
    let removed = h.wait_pid("gone", 0);
    h.wait_for_event(|t| t.starts_with("gone.0 started"), LONG);

    write_in_place(&config, &format!("{keep}\n{}", app(&h, "added", 1, "", "")));
    h.wait_for_event(
        |t| t == reloaded(&config, "added added; gone removed"),
        LONG,
    );
    let added = h.wait_pid("added", 0);
    // Gracefully: SIGTERM, which the app traps and exits 0 on.
    h.wait_for_event(|t| t == "gone.0 stopping (SIGTERM)", LONG);
    h.wait_for_event(|t| t.starts_with("gone.0 exited with code 0 after"), LONG);
    h.wait_for(|| !alive(removed), LONG);
    assert!(
        h.lines()
            .iter()
            .any(|l| l.ends_with("| got SIGTERM, exiting")),
        "{:?}",
        h.lines()
    );
    assert!(alive(added));
    assert!(alive(kept));
    assert_eq!(h.starts("keep", 0), vec![kept]);
    assert_eq!(live_descendants(&h), BTreeSet::from([kept, added]));
}

/// The figure for the README: a 1 -> 200 scale-up and back down to 1, each measured
/// from the save to the last instance started (or stopped). Run with
/// `cargo test --test tests reload::scale_to_200 -- --ignored --nocapture`.
#[test]
#[ignore]
fn scale_to_200_and_back_figure() {
    let mut h = Harness::new();
    let config = h.write_config("ecosystem.toml", &app(&h, "web", 1, "", ""));
    h.start(&config);
    let first = h.wait_pid("web", 0);
    h.wait_for_event(|t| t.starts_with("web.0 started"), LONG);
    let is_started = |t: &str| t.starts_with("web.") && t.contains(" started (pid ");

    let saved = Instant::now();
    write_in_place(&config, &app(&h, "web", 200, "", ""));
    h.wait_for_events(is_started, 200, Duration::from_secs(60));
    let up = saved.elapsed();
    h.wait_for(|| live_descendants(&h).len() == 200, LONG);

    let saved = Instant::now();
    write_in_place(&config, &app(&h, "web", 1, "", ""));
    h.wait_for_events(
        |t| t.starts_with("web.") && t.ends_with(" stopped"),
        199,
        Duration::from_secs(60),
    );
    let down = saved.elapsed();
    h.wait_for(|| live_descendants(&h) == BTreeSet::from([first]), LONG);
    eprintln!("scale 1 -> 200: {up:?} from the save to the 200th instance started");
    eprintln!("scale 200 -> 1: {down:?} from the save to the last instance stopped");
}

/// A save that lands while supervise is reading the previous version must not be lost:
/// the final state is the file's last version, and a later SIGHUP must not call it
/// unchanged. A large `env` table makes each read take a few tens of milliseconds, so
/// the second save of each round falls inside the reload the first one started.
#[test]
fn a_save_during_a_reload_is_not_lost() {
    let mut h = Harness::new();
    let filler: String = (0..3000).map(|k| format!(", K{k} = \"{k}\"")).collect();
    let version = |h: &Harness, v: u32| app(h, "web", 1, &format!("V = \"{v}\"{filler}"), "");
    let config = h.write_config("ecosystem.toml", &version(&h, 0));
    h.start(&config);
    h.wait_pid("web", 0);
    for round in 0..12u32 {
        let (first, second) = (2 * round + 1, 2 * round + 2);
        write_rename(&config, &version(&h, first));
        h.send_signal(Signal::SIGHUP);
        // The gap between the two saves (the edit's timing, not a wait).
        std::thread::sleep(Duration::from_millis(u64::from(round) * 3));
        write_rename(&config, &version(&h, second));
        let want = second.to_string();
        let converged = poll_until(
            || {
                let live = live_descendants(&h);
                live.len() == 1
                    && live
                        .iter()
                        .all(|&p| environ_var(p, "V").as_deref() == Some(want.as_str()))
            },
            LONG,
        );
        if !converged {
            let hups = h.count_events(|t| t == "received SIGHUP, reloading");
            h.send_signal(Signal::SIGHUP);
            h.wait_for_events(|t| t == "received SIGHUP, reloading", hups + 1, LONG);
            let live: Vec<_> = live_descendants(&h)
                .into_iter()
                .map(|p| (p, environ_var(p, "V")))
                .collect();
            panic!(
                "round {round} (saves {} ms apart): the file says V={want}, the running \
                 instance {live:?}; the last events: {:?}",
                round * 3,
                h.events().iter().rev().take(4).collect::<Vec<_>>()
            );
        }
    }
}
