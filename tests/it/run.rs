//! Running apps: instances and their environment, commands, cwd, sessions, depends_on,
//! and TOML/YAML parity (issue 3, point 4).

use std::fs;

use crate::support::*;

#[test]
fn three_instances_see_their_own_instance_number() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.web]
command = {}
instances = 3
instance_var = "MY_INDEX"
"#,
            app_cmd(&["--print-env", "--var", "MY_INDEX"])
        ),
    );
    h.start(&config);
    for n in 0..3 {
        let name = format!("web.{n}");
        h.wait_for_output(&name, |t| t == format!("MY_INDEX={n}"), LONG);
        let out = h.instance_output(&name);
        assert!(out.contains(&"SUPERVISE_APP=web".to_string()), "{out:?}");
        assert!(out.contains(&format!("SUPERVISE_INSTANCE={n}")), "{out:?}");
    }
    h.send_signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
}

#[test]
fn env_and_env_file_reach_the_child_and_env_wins() {
    let mut h = Harness::new();
    h.write_file(
        "app.env",
        "# a comment\nFROM_FILE=file-value\nSHARED=from-file\n",
    );
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.web]
command = {}
env = {{ FROM_ENV = "env-value", SHARED = "from-env" }}
env_file = "app.env"
restart = "never"
"#,
            app_cmd(&[
                "--print-env",
                "--var",
                "FROM_ENV",
                "--var",
                "FROM_FILE",
                "--var",
                "SHARED",
                "--exit-after",
                "0",
            ])
        ),
    );
    h.start(&config);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
    let out = h.instance_output("web.0");
    for expected in [
        "FROM_ENV=env-value",
        "FROM_FILE=file-value",
        "SHARED=from-env",
    ] {
        assert!(
            out.iter().any(|l| l == expected),
            "missing {expected}: {out:?}"
        );
    }
}

#[test]
fn cwd_is_relative_to_the_ecosystem_file() {
    let mut h = Harness::new();
    fs::create_dir_all(h.path("conf/work")).unwrap();
    let config = h.write_config(
        "conf/eco.toml",
        &format!(
            r#"
[apps.web]
command = {}
cwd = "work"
"#,
            app_cmd(&["--pid-dir", h.pids()])
        ),
    );
    // supervise runs in the test directory, not in conf/: the cwd must follow the file.
    h.start(&config);
    let pid = h.wait_pid("web", 0);
    let cwd = fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert_eq!(cwd, h.path("conf/work").canonicalize().unwrap());
}

#[test]
fn string_command_is_split_like_a_shell_without_one() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.web]
command = {}
restart = "never"
"#,
            quote(&format!(
                "{} --stderr 'two words' --print-env --var \"$HOME\" --exit-after 0",
                testapp()
            ))
        ),
    );
    h.start(&config);
    assert_eq!(
        h.wait_exit(LONG).code(),
        Some(0),
        "the split command must run"
    );
    let out = h.instance_output("web.0");
    assert!(out.iter().any(|l| l == "two words"), "{out:?}");
    // No shell ran: "$HOME" is a literal word, not expanded.
    assert!(out.iter().any(|l| l == "$HOME=<unset>"), "{out:?}");
}

#[test]
fn shell_true_runs_the_command_through_sh() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        r#"
[apps.calc]
command = "echo $((1+2)) $SUPERVISE_APP"
shell = true
restart = "never"
"#,
    );
    h.start(&config);
    h.wait_for_output("calc.0", |t| t == "3 calc", LONG);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
}

#[test]
fn each_instance_runs_in_its_own_session() {
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
    let supervise = stat(h.supervise_pid()).unwrap();
    for n in 0..2 {
        let pid = h.wait_pid("web", n);
        let s = stat(pid).expect("instance alive");
        assert_eq!(s.session, pid, "web.{n} must lead its own session");
        assert_eq!(s.pgrp, pid, "web.{n} must lead its own process group");
        assert_ne!(s.session, supervise.session);
    }
}

#[test]
fn limits_and_umask_are_applied_to_the_instance() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.web]
command = {}
umask = "0027"
limits = {{ nofile = 1234, core = 0 }}
"#,
            app_cmd(&["--pid-dir", h.pids()])
        ),
    );
    h.start(&config);
    let pid = h.wait_pid("web", 0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("Umask:\t0027"), "{status}");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(line("Max open files").contains("1234 1234"), "{limits}");
    assert!(line("Max core file size").contains("0 0"), "{limits}");
}

#[test]
fn depends_on_starts_after_the_dependency() {
    let mut h = Harness::new();
    // The dependent is listed first, so file order cannot explain a correct result.
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.web]
command = {cmd}
depends_on = ["db"]

[apps.db]
command = {cmd}
instances = 2
"#,
            cmd = app_cmd(&["--pid-dir", h.pids()])
        ),
    );
    h.start(&config);
    h.wait_for_event(|t| t.starts_with("web.0 started"), LONG);
    let events = h.events();
    let position = |prefix: &str| {
        events
            .iter()
            .position(|e| e.starts_with(prefix))
            .unwrap_or_else(|| panic!("no event {prefix:?}: {events:?}"))
    };
    let web = position("web.0 started");
    assert!(position("db.0 started") < web, "{events:?}");
    assert!(position("db.1 started") < web, "{events:?}");
}

/// The instance output (sorted) of a run of an ecosystem whose apps all finish.
fn run_to_completion(name: &str, text: &str) -> Vec<(String, String)> {
    let mut h = Harness::new();
    let config = h.write_config(name, text);
    h.write_file("shared.env", "FROM_FILE=yes\n");
    h.start(&config);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
    let mut out: Vec<(String, String)> = h
        .lines()
        .iter()
        .filter_map(|l| instance_line(l).map(|(n, t)| (n.to_string(), t.to_string())))
        .collect();
    out.sort();
    out
}

#[test]
fn yaml_and_toml_give_the_same_result() {
    let vars = [
        "--print-env",
        "--var",
        "IDX",
        "--var",
        "GREETING",
        "--var",
        "FROM_FILE",
        "--exit-after",
        "0",
    ];
    let toml = format!(
        r#"
[settings]
stop_timeout = "5s"

[apps.web]
command = {cmd}
instances = 2
instance_var = "IDX"
env = {{ GREETING = "hello world" }}
env_file = "shared.env"
restart = "never"

[apps.worker]
command = {cmd}
restart = "on-failure"
"#,
        cmd = app_cmd(&vars)
    );
    let yaml = format!(
        r#"
settings:
  stop_timeout: 5s
apps:
  web:
    command: {cmd}
    instances: 2
    instance_var: IDX
    env:
      GREETING: hello world
    env_file: shared.env
    restart: never
  worker:
    command: {cmd}
    restart: on-failure
"#,
        cmd = app_cmd(&vars)
    );
    let from_toml = run_to_completion("eco.toml", &toml);
    let from_yaml = run_to_completion("eco.yaml", &yaml);
    assert!(
        from_toml.contains(&("web.1".into(), "IDX=1".into())),
        "{from_toml:?}"
    );
    assert!(
        from_toml.contains(&("worker.0".into(), "GREETING=<unset>".into())),
        "{from_toml:?}"
    );
    assert_eq!(from_toml.len(), 3 * 5, "{from_toml:?}");
    assert_eq!(from_toml, from_yaml);
}
