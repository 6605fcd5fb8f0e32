//! The command line a PM2 user types (issue 11 item 4, SPEC section 6), through the real
//! binary against a running supervise: `--socket` anywhere, `status TARGET` and `ls`,
//! `logs` with supervise's events and stream filters, `scale` editing the file in place,
//! `shutdown`, `reload` without a target, the table's width, completions.

use std::fs;
use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::support::*;

#[track_caller]
fn fails_with(out: &Output, text: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(out));
    assert!(stderr_of(out).contains(text), "{}", stderr_of(out));
}

fn rows<'a>(report: &'a Value, app: &str) -> Vec<&'a Value> {
    report["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["app"] == app)
        .collect()
}

/// Every instance of `app` running, `n` of them.
fn wait_running(h: &Harness, app: &str, n: usize) {
    socket(h);
    let mut last = Value::Null;
    let ok = poll_until(
        || {
            last = status_json(h);
            let r = rows(&last, app);
            r.len() == n && r.iter().all(|i| i["state"] == "running")
        },
        LONG * 2,
    );
    assert!(ok, "{app} never had {n} running instances: {last:#}");
}

#[test]
fn socket_is_accepted_before_or_after_the_subcommand() {
    let mut h = Harness::new();
    let config = Ecosystem::new().app("web", &[]).write(&mut h);
    h.start(&config);
    let sock = socket(&h);
    let sock = sock.to_str().unwrap();
    for args in [
        vec!["--socket", sock, "status"],
        vec!["status", "--socket", sock],
        vec!["status", "--json", &format!("--socket={sock}")],
    ] {
        let mut cmd = h.cli_command(&args);
        cmd.env_remove("SUPERVISE_SOCKET");
        let out = output_within(cmd, LONG);
        assert!(out.status.success(), "{args:?}: {}", stderr_of(&out));
        assert!(
            stdout_of(&out).contains("web"),
            "{args:?}: {}",
            stdout_of(&out)
        );
    }
}

#[test]
fn status_takes_a_target_and_ls_is_an_alias() {
    let mut h = Harness::new();
    let config = Ecosystem::new()
        .app("web", &[])
        .set("instances", 2)
        .app("worker", &[])
        .write(&mut h);
    h.start(&config);
    wait_running(&h, "web", 2);
    let ls = cli_ok(&h, &["ls"]);
    assert!(ls.contains("web.1") && ls.contains("worker.0"), "{ls}");
    let web = cli_ok(&h, &["status", "web"]);
    assert!(web.contains("web.0") && web.contains("web.1"), "{web}");
    assert!(!web.contains("worker"), "{web}");
    let one: Value = serde_json::from_str(&cli_ok(&h, &["ls", "web.1", "--json"])).unwrap();
    assert_eq!(one["instances"].as_array().unwrap().len(), 1, "{one:#}");
    assert_eq!(one["instances"][0]["index"], 1);
    fails_with(&h.cli(&["status", "nope"]), "no app named `nope`");
    fails_with(&h.cli(&["status", "web.7"]), "no instance web.7");
}

#[test]
fn logs_show_supervise_events_streams_and_times() {
    let mut h = Harness::new();
    let config = Ecosystem::new()
        .app("web", &["--print", "2", "--stderr", "to stderr"])
        .app("other", &["--print", "1"])
        .write(&mut h);
    h.start(&config);
    h.wait_for_line(|l| l.contains("line 2 of web.0"), LONG);
    h.wait_for_line(|l| l.contains("to stderr"), LONG);
    let all = cli_ok(&h, &["logs", "web"]);
    assert!(all.contains("web.0 | line 1 of web.0"), "{all}");
    assert!(all.contains("web.0 | to stderr"), "{all}");
    // supervise's own events about the target, and none about others.
    assert!(all.contains("web.0 | web.0 started (pid "), "{all}");
    assert!(!all.contains("other"), "{all}");
    let out = cli_ok(&h, &["logs", "web", "--out"]);
    assert!(
        out.contains("line 1 of web.0") && !out.contains("to stderr"),
        "{out}"
    );
    assert!(!out.contains("started (pid"), "{out}");
    let err = cli_ok(&h, &["logs", "web", "--err"]);
    assert!(
        err.contains("to stderr") && !err.contains("line 1"),
        "{err}"
    );
    let timed = cli_ok(&h, &["logs", "web.0", "-n", "1", "--timestamps"]);
    assert_eq!(timed.lines().count(), 1, "{timed}");
    assert!(
        strip_rfc3339(timed.trim_end()).is_some_and(|rest| rest.starts_with(" web.0 | ")),
        "{timed}"
    );
    fails_with(&h.cli(&["logs", "nope"]), "no app named `nope`");
    fails_with(&h.cli(&["logs", "web.3"]), "no instance web.3");
}

/// `scale` on a commented file: exactly the one value changes, and supervise applies it.
fn scale_edits_in_place(name: &str, text: &str, old: &str, new: &str) {
    let mut h = Harness::new();
    let config = h.write_config(name, text);
    h.start(&config);
    wait_running(&h, "web", 1);
    let said = cli_ok(&h, &["scale", "web", "3"]);
    assert!(said.contains("web: instances 1 -> 3"), "{said}");
    let after = fs::read_to_string(&config).unwrap();
    let changed: Vec<(&str, &str)> = text
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed, [(old, new)], "{after}");
    assert_eq!(text.lines().count(), after.lines().count(), "{after}");
    wait_running(&h, "web", 3);
    cli_ok(&h, &["scale", "web", "1"]);
    assert_eq!(fs::read_to_string(&config).unwrap(), text);
    wait_running(&h, "web", 1);
    fails_with(&h.cli(&["scale", "nope", "2"]), "no app named `nope`");
    assert_eq!(fs::read_to_string(&config).unwrap(), text);
}

#[test]
fn scale_edits_a_commented_toml_file_in_place() {
    let text = format!(
        "# The shop.\n[apps.web]   # the front\ncommand = {}\ninstances = 1   # one for now\n# end of web\n\n[apps.worker]\ncommand = {}\n",
        app_cmd(&[]),
        app_cmd(&[])
    );
    scale_edits_in_place(
        "eco.toml",
        &text,
        "instances = 1   # one for now",
        "instances = 3   # one for now",
    );
}

#[test]
fn scale_edits_a_commented_yaml_file_in_place() {
    let text = format!(
        "# The shop.\napps:\n  web:   # the front\n    command: {}\n    instances: 1 # one for now\n    # end of web\n  worker:\n    command: {}\n",
        app_cmd(&[]),
        app_cmd(&[])
    );
    scale_edits_in_place(
        "eco.yaml",
        &text,
        "    instances: 1 # one for now",
        "    instances: 3 # one for now",
    );
}

#[test]
fn shutdown_stops_everything_and_exits() {
    let mut h = Harness::new();
    let config = Ecosystem::new()
        .app("web", &["--pid-dir", h.pids()])
        .write(&mut h);
    h.start(&config);
    let pid = h.wait_pid("web", 0);
    let said = cli_ok(&h, &["shutdown"]);
    assert!(said.contains("stopping"), "{said}");
    assert!(h.wait_exit(LONG).success());
    assert!(gone(pid));
}

#[test]
fn reload_without_a_target_rereads_the_file() {
    let mut h = Harness::new();
    let ecosystem = Ecosystem::new().app("web", &[]);
    let config = ecosystem.write(&mut h);
    h.start(&config);
    wait_running(&h, "web", 1);
    let said = cli_ok(&h, &["reload"]);
    assert!(said.contains("re-read"), "{said}");
    h.wait_for_event(
        |t| t.starts_with("reload asked by `supervise reload`"),
        LONG,
    );
    // A broken file: the answer says why, exit 1, the running config goes on.
    fs::write(&config, "[apps.web]\ncommand = 5\n").unwrap();
    fails_with(&h.cli(&["reload"]), "apps.web.command");
    wait_running(&h, "web", 1);
}

#[test]
fn a_replaced_instance_shows_once_with_its_successor() {
    let mut h = Harness::new();
    let config = Ecosystem::new()
        .app("web", &[])
        .set("ready", Raw("{ delay = \"1500ms\" }"))
        .write(&mut h);
    h.start(&config);
    wait_running(&h, "web", 1);
    let reload = h.cli_command(&["reload", "web"]).spawn().unwrap();
    let mut seen = Value::Null;
    let replacing = poll_until(
        || {
            seen = status_json(&h);
            let r = rows(&seen, "web");
            assert_eq!(r.len(), 1, "one row per instance: {seen:#}");
            !r[0]["outgoing"].is_null()
        },
        LONG,
    );
    assert!(replacing, "never saw the replacement: {seen:#}");
    let row = rows(&seen, "web")[0].clone();
    assert_eq!(row["outgoing"]["state"], "running", "{row:#}");
    assert_ne!(row["outgoing"]["pid"], row["pid"], "{row:#}");
    let table = cli_ok(&h, &["status"]);
    assert!(table.contains('←'), "{table}");
    let out = reload.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    // The old one stops after its successor is ready; then the row is plain again.
    let plain = poll_until(
        || rows(&status_json(&h), "web")[0]["outgoing"].is_null(),
        LONG,
    );
    assert!(plain, "the old instance never went away");
}

#[test]
fn the_table_fits_80_columns_with_long_names() {
    let mut h = Harness::new();
    let long = "a-web-app-with-a-rather-long-and-descriptive-name";
    let config = Ecosystem::new()
        .app(long, &[])
        .set("instances", 2)
        .write(&mut h);
    h.start(&config);
    wait_running(&h, long, 2);
    let table = cli_ok(&h, &["status"]);
    for line in table.lines() {
        assert!(
            line.chars().count() <= 80,
            "{} chars: {line}",
            line.chars().count()
        );
    }
    for column in [
        "pid",
        "state",
        "uptime",
        "cpu",
        "memory",
        "last exit",
        "ready",
    ] {
        assert!(table.lines().next().unwrap().contains(column), "{table}");
    }
    assert!(table.contains("….0") && table.contains("….1"), "{table}");
}

/// What `supervise` answers a shell asking for completions of `words`.
fn complete(h: &Harness, words: &[&str]) -> Vec<String> {
    let mut args = vec!["--", "supervise"];
    args.extend(words);
    let mut cmd = h.cli_command(&args);
    cmd.env("COMPLETE", "bash")
        .env("_CLAP_IFS", "\n")
        .env("_CLAP_COMPLETE_INDEX", words.len().to_string());
    let out = output_within(cmd, LONG);
    assert!(out.status.success(), "{}", stderr_of(&out));
    stdout_of(&out).lines().map(str::to_string).collect()
}

#[test]
fn completions_offer_app_and_signal_names() {
    let mut h = Harness::new();
    let config = Ecosystem::new()
        .app("web", &[])
        .app("worker", &[])
        .write(&mut h);
    h.start(&config);
    wait_running(&h, "web", 1);
    let targets = complete(&h, &["restart", ""]);
    for want in ["all", "web", "worker", "web.0"] {
        assert!(
            targets.iter().any(|t| t == want),
            "{want} not in {targets:?}"
        );
    }
    let apps = complete(&h, &["scale", "w"]);
    assert!(apps.iter().any(|t| t == "worker"), "{apps:?}");
    let signals = complete(&h, &["signal", "SIGU"]);
    assert!(signals.iter().any(|t| t == "SIGUSR1"), "{signals:?}");
    for shell in ["bash", "zsh", "fish"] {
        let script = cli_ok(&h, &["completions", shell]);
        assert!(
            script.contains("COMPLETE") && script.contains("supervise"),
            "{script}"
        );
    }
    // The scripts shipped in man/completions are what the command prints.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/completions/supervise.bash");
    assert_eq!(
        fs::read_to_string(shipped).unwrap(),
        cli_ok(&h, &["completions", "bash"])
    );
}

#[test]
fn restart_answers_once_ready_and_fails_with_the_exit_of_a_crash() {
    let mut h = Harness::new();
    let config = Ecosystem::new()
        .app("slow", &[])
        .set("ready", Raw("{ delay = \"800ms\" }"))
        .app("crash", &["--exit-after", "300ms", "--exit-code", "3"])
        .set("ready", Raw("{ delay = \"5s\" }"))
        .set("restart_delay", "10s")
        .write(&mut h);
    h.start(&config);
    wait_running(&h, "slow", 1);
    // Success only once the new run is ready: right after, status says so.
    let t0 = std::time::Instant::now();
    let said = cli_ok(&h, &["restart", "slow"]);
    assert!(said.contains("slow.0 restarted"), "{said}");
    assert!(
        t0.elapsed() >= std::time::Duration::from_millis(700),
        "{:?}",
        t0.elapsed()
    );
    let slow = instance(&status_json(&h), "slow", 0).clone();
    assert_eq!(slow["state"], "running", "{slow:#}");
    assert_eq!(slow["ready"], true, "{slow:#}");
    // A run that crashes before it is ready fails the command with its exit.
    for verb in ["restart", "start"] {
        let out = h.cli(&[verb, "crash"]);
        fails_with(&out, "crash.0 exited with code 3");
    }
}
