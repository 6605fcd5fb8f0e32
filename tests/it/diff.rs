//! `supervise diff [CONFIG]` (issue 13 item 1, SPEC §8): the running supervisor says
//! what applying a file would do, app by app, and applies nothing.

use std::fs;

use crate::support::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn diff_prints_the_plan_and_changes_nothing() {
    let mut h = Harness::new();
    let cmd = app_cmd(&["--pid-dir", h.pids()]);
    let app = |name: &str, extra: &str| format!("[apps.{name}]\ncommand = {cmd}\n{extra}\n");
    let running = [
        app("web", "instances = 2\nenv = { NODE_ENV = \"development\" }"),
        app("worker", "instances = 2"),
        app("db", ""),
        app("old", ""),
    ]
    .concat();
    let next = [
        app("web", "instances = 2\nenv = { NODE_ENV = \"production\" }"),
        app("worker", "instances = 5"),
        app("cron", ""),
        app("db", ""),
    ]
    .concat();
    // Written before supervise starts: only the running file is watched.
    h.write_config("next.toml", &next);
    let bad = h.write_config("bad.toml", &format!("{}instancez = 3\n", app("db", "")));
    let config = h.write_config("eco.toml", &running);
    h.start(&config);
    let names = [
        ("web", 0),
        ("web", 1),
        ("worker", 0),
        ("worker", 1),
        ("db", 0),
        ("old", 0),
    ];
    let pids: Vec<i32> = names.iter().map(|(a, i)| h.wait_pid(a, *i)).collect();
    h.wait_for_event(|t| t.starts_with("old.0 started"), LONG);
    let events = h.events().len();

    // A relative CONFIG is the client's: resolved in its folder.
    let out = h.cli(&["diff", "next.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "web: rolling update of 2 instances (env.NODE_ENV changed)\n\
         worker: scale 2 -> 5\n\
         cron: added\n\
         db: unchanged\n\
         old: removed (1 instance stop)\n"
    );

    // The running file itself: nothing to do.
    let out = h.cli(&["diff"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "web: unchanged\nworker: unchanged\ndb: unchanged\nold: unchanged\n"
    );

    // An invalid file: its located errors, exit 1.
    let out = h.cli(&["diff", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!("{}:4:", bad.display())) && err.contains("apps.db.instancez"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let out = h.cli(&["diff", "missing.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("missing.toml"),
        "{}",
        text(&out.stderr)
    );

    // Nothing was applied: the same pids, no start, stop or reload, the file untouched.
    let now: Vec<i32> = names.iter().map(|(a, i)| h.wait_pid(a, *i)).collect();
    assert_eq!(now, pids);
    assert!(pids.iter().all(|&p| alive(p)));
    assert!(!h.pid_dir.join("cron.0.pid").exists());
    assert!(!h.pid_dir.join("worker.2.pid").exists());
    assert_eq!(
        h.events()[events..],
        [] as [String; 0],
        "diff printed or did something"
    );
    assert_eq!(fs::read_to_string(&config).unwrap(), running);
}

#[test]
fn diff_of_the_running_file_shows_why_it_was_refused() {
    let mut h = Harness::new();
    let cmd = app_cmd(&["--pid-dir", h.pids()]);
    let config = h.write_config("eco.toml", &format!("[apps.web]\ncommand = {cmd}\n"));
    h.start(&config);
    let pid = h.wait_pid("web", 0);
    // A save with an error is refused; `diff` (the file as it is on disk) says why.
    fs::write(
        &config,
        format!("[apps.web]\ncommand = {cmd}\ninstances = -1\n"),
    )
    .unwrap();
    h.wait_for_event(|t| t.starts_with("the new version is refused"), LONG);
    let out = h.cli(&["diff"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!("{}:3:", config.display())),
        "{err}"
    );
    assert_eq!(h.wait_pid("web", 0), pid);
}
