//! Control (issue 6, SPEC sections 4 and 5): the control socket, `status` and the commands,
//! through the real `supervise` binary as a client of the one the harness runs. Every wait
//! is on a line, a pid file or a `status` answer, against a generous deadline. `logs` and
//! log files are in `log_files.rs`, the resource guards in `guards.rs`.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::*;

/// Every key of an instance in `status --json`.
const INSTANCE_KEYS: [&str; 11] = [
    "app",
    "index",
    "pid",
    "state",
    "restarts",
    "uptime_ms",
    "cpu_percent",
    "memory_bytes",
    "last_exit",
    "ready",
    "status_text",
];

// ------------------------------------------------------------------------ status

#[test]
fn status_json_fields_and_states() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.ok]
command = {ok}

[apps.crash]
command = {crash}
restart_delay = "2s"

[apps.bad]
command = {bad}
max_restarts = 1
restart_delay = "10ms"
"#,
            ok = app_cmd(&["--pid-dir", h.pids()]),
            crash = app_cmd(&["--exit-after", "200ms", "--exit-code", "1"]),
            bad = app_cmd(&["--exit-after", "0", "--exit-code", "1"]),
        ),
    );
    h.start(&config);
    let pid = h.wait_pid("ok", 0);

    // The shape: every field of every instance, the config, no config error.
    let report = status_json(&h);
    assert_eq!(report["config"], config.display().to_string(), "{report:#}");
    assert!(report["config_error"].is_null(), "{report:#}");
    let instances = report["instances"].as_array().unwrap();
    let names: BTreeSet<String> = instances
        .iter()
        .map(|i| format!("{}.{}", i["app"].as_str().unwrap(), i["index"]))
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["ok.0".into(), "crash.0".into(), "bad.0".into()]),
        "{report:#}"
    );
    for inst in instances {
        for key in INSTANCE_KEYS {
            assert!(inst.get(key).is_some(), "{key} missing in {inst:#}");
        }
    }

    // A running instance.
    let ok = wait_instance(&h, "ok", 0, LONG, |i| i["state"] == "running");
    assert_eq!(pid_of(&ok), Some(pid), "{ok:#}");
    assert_eq!(ok["ready"], true, "{ok:#}");
    assert_eq!(ok["restarts"], 0, "{ok:#}");
    assert!(ok["last_exit"].is_null(), "{ok:#}");
    assert!(ok["status_text"].is_null(), "{ok:#}");
    assert!(ok["memory_bytes"].as_u64().is_some_and(|m| m > 0), "{ok:#}");
    assert!(ok["uptime_ms"].as_u64().is_some(), "{ok:#}");
    assert!(
        ok["cpu_percent"].as_f64().is_some_and(|c| c >= 0.0),
        "{ok:#}"
    );

    // One in backoff: exited 1, waiting its 2 s.
    let crash = wait_instance(&h, "crash", 0, LONG, |i| i["state"] == "backoff");
    assert!(crash["pid"].is_null(), "{crash:#}");
    assert_eq!(crash["last_exit"], "code 1", "{crash:#}");
    assert_eq!(crash["ready"], false, "{crash:#}");
    assert!(crash["uptime_ms"].is_null(), "{crash:#}");
    assert!(crash["memory_bytes"].is_null(), "{crash:#}");

    // One errored: crashed more than max_restarts = 1 times in a row.
    let bad = wait_instance(&h, "bad", 0, LONG, |i| i["state"] == "errored");
    assert!(bad["pid"].is_null(), "{bad:#}");
    assert_eq!(bad["last_exit"], "code 1", "{bad:#}");
    assert_eq!(bad["ready"], false, "{bad:#}");
    assert!(bad["restarts"].as_u64().is_some_and(|r| r >= 1), "{bad:#}");
    h.wait_for_event(|t| t.starts_with("bad.0 errored"), LONG);

    // A crash: SIGKILL, restarted, counted.
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let new_pid = h.wait_pid_change("ok", 0, pid, LONG);
    let ok = wait_instance(&h, "ok", 0, LONG, |i| {
        i["state"] == "running" && pid_of(i) == Some(new_pid)
    });
    assert_eq!(ok["restarts"], 1, "{ok:#}");
    assert_eq!(ok["last_exit"], "SIGKILL", "{ok:#}");
    assert_eq!(ok["ready"], true, "{ok:#}");

    // The table: a header and one row per instance.
    let table = cli_ok(&h, &["status"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    for word in [
        "name",
        "pid",
        "state",
        "uptime",
        "cpu",
        "memory",
        "last exit",
        "ready",
    ] {
        assert!(lines[0].contains(word), "header without {word:?}: {table}");
    }
    let rows: BTreeSet<&str> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        rows,
        BTreeSet::from(["ok.0", "crash.0", "bad.0"]),
        "{table}"
    );
    let row = |name: &str| {
        lines[1..]
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap()
            .to_string()
    };
    let ok_row = row("ok.0");
    assert!(
        ok_row.contains(&new_pid.to_string()) && ok_row.contains("running"),
        "{table}"
    );
    let bad_row = row("bad.0");
    assert!(
        bad_row.contains("errored") && bad_row.contains("code 1"),
        "{table}"
    );
}

// ------------------------------------------------------------------------ socket

#[test]
fn the_socket_is_0600_and_other_users_are_refused() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.web]\ncommand = {}\n",
            app_cmd(&["--pid-dir", h.pids()])
        ),
    );
    h.start(&config);
    h.wait_pid("web", 0);
    let sock = socket(&h);
    let meta = fs::symlink_metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o7777, 0o600, "mode {:o}", meta.mode());
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    if !is_root() {
        eprintln!("note: not root, skipping the part that connects as user nobody");
        return;
    }
    // Let nobody reach the socket's folder (the test directory is 0700).
    fs::set_permissions(h.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    let as_nobody = |h: &Harness| {
        let mut command = h.cli_command(&["status"]);
        command.uid(65534).gid(65534);
        output_within(command, LONG * 3)
    };

    // The file mode stops nobody at connect(2).
    let out = as_nobody(&h);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout_of(&out).is_empty(), "{out:?}");
    let err = stderr_of(&out);
    assert!(
        err.starts_with("supervise: ") && err.contains("permission denied"),
        "{err}"
    );

    // Past the file mode, the peer credentials refuse it.
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o666)).unwrap();
    let out = as_nobody(&h);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout_of(&out).is_empty(), "{out:?}");
    let err = stderr_of(&out);
    assert!(
        err.contains("permission denied: uid 65534 is not allowed"),
        "{err}"
    );

    // And supervise goes on serving its own user.
    let report = status_json(&h);
    assert_eq!(instance(&report, "web", 0)["state"], "running");
    assert!(!h.has_exited());
}

// ------------------------------------------------------------------------ commands

#[test]
fn stop_holds_start_restores_restart_renews_signal_reaches() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.web]\ncommand = {}\ninstances = 2\n",
            app_cmd(&["--pid-dir", h.pids(), "--echo-signals"])
        ),
    );
    h.start(&config);
    let before = [h.wait_pid("web", 0), h.wait_pid("web", 1)];
    for i in 0..2 {
        wait_instance(&h, "web", i, LONG, |x| x["state"] == "running");
    }

    // restart: answered when done, with new pids.
    let out = cli_ok(&h, &["restart", "web"]);
    assert_eq!(out.trim(), "web.0, web.1 restarted");
    let after = [
        h.wait_pid_change("web", 0, before[0], LONG),
        h.wait_pid_change("web", 1, before[1], LONG),
    ];
    for (old, new) in before.iter().zip(&after) {
        assert!(!alive(*old), "old pid {old} still runs");
        assert!(alive(*new), "new pid {new} is not running");
    }
    let report = status_json(&h);
    for i in 0..2 {
        let inst = instance(&report, "web", i);
        assert_eq!(pid_of(inst), Some(after[i as usize]), "{report:#}");
        assert_eq!(inst["state"], "running", "{report:#}");
    }

    // signal: to each instance's process group.
    let out = cli_ok(&h, &["signal", "SIGUSR1", "web"]);
    assert!(out.starts_with("sent SIGUSR1 to "), "{out}");
    h.wait_for_output("web.0", |t| t == "signal SIGUSR1", LONG);
    h.wait_for_output("web.1", |t| t == "signal SIGUSR1", LONG);

    // stop: answered once the process is gone, then held.
    let out = cli_ok(&h, &["stop", "web.1"]);
    assert_eq!(out.trim(), "web.1 stopped");
    assert!(!alive(after[1]), "web.1 (pid {}) still runs", after[1]);
    let starts = h.starts("web", 1).len();
    let started_events = h.count_events(|t| t.starts_with("web.1 started"));
    let held_since = Instant::now();
    // Held: nothing comes back for a while (a negative check needs a window).
    while held_since.elapsed() < Duration::from_secs(3) {
        let report = status_json(&h);
        let inst = instance(&report, "web", 1);
        assert_eq!(inst["state"], "stopped", "{report:#}");
        assert!(inst["pid"].is_null(), "{report:#}");
        assert_eq!(pid_of(instance(&report, "web", 0)), Some(after[0]));
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(h.starts("web", 1).len(), starts, "web.1 was started again");
    assert_eq!(
        h.count_events(|t| t.starts_with("web.1 started")),
        started_events
    );
    assert!(alive(after[0]));

    // start: back, with a new pid.
    let out = cli_ok(&h, &["start", "web.1"]);
    assert_eq!(out.trim(), "web.1 started");
    let restored = h.wait_pid_change("web", 1, after[1], LONG);
    assert!(alive(restored));
    let inst = wait_instance(&h, "web", 1, LONG, |i| i["state"] == "running");
    assert_eq!(pid_of(&inst), Some(restored), "{inst:#}");

    // Unknown targets: exit 1 with the reason.
    for args in [
        &["restart", "nope"][..],
        &["stop", "nope"],
        &["start", "nope.0"],
        &["reload", "nope"],
        &["signal", "SIGUSR1", "nope"],
    ] {
        let out = h.cli(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(stdout_of(&out).is_empty(), "{args:?}: {out:?}");
        let err = stderr_of(&out);
        assert!(
            err.starts_with("supervise: ") && err.contains("no app named `nope`"),
            "{args:?}: {err}"
        );
    }
    let out = h.cli(&["restart", "web.7"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr_of(&out).contains("no instance web.7"), "{out:?}");
    // Nothing of that touched the running instances.
    assert!(alive(after[0]) && alive(restored));
}

// ------------------------------------------------------------------------ slow clients

#[test]
fn silent_and_garbage_clients_never_delay_a_restart() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.web]\ncommand = {}\n",
            app_cmd(&["--pid-dir", h.pids()])
        ),
    );
    h.start(&config);
    let pid = h.wait_pid("web", 0);
    let sock = socket(&h);

    // Connects and says nothing.
    let silent = UnixStream::connect(&sock).unwrap();
    // Half a request, no newline, ever.
    let mut partial = UnixStream::connect(&sock).unwrap();
    partial.write_all(b"{\"v\":1,\"cmd\":").unwrap();
    // Binary garbage without a newline.
    let mut garbage = UnixStream::connect(&sock).unwrap();
    garbage.write_all(b"\xff\xfe garbage {{{ \x00\x01").unwrap();
    // Garbage with a newline: an error answer, the connection stays usable.
    let mut bad_line = UnixStream::connect(&sock).unwrap();
    bad_line.write_all(b"hello there\n").unwrap();
    // A 100 KiB line: an error answer, then closed. Written from a thread: the server
    // may close before reading all of it.
    let mut big = UnixStream::connect(&sock).unwrap();
    let mut big_reader = big.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let mut line = vec![b'a'; 100 * 1024];
        line.push(b'\n');
        let _ = big.write_all(&line);
        big
    });

    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    let new_pid = h.wait_pid_change("web", 0, pid, LONG);
    let took = killed.elapsed();
    assert!(alive(new_pid));
    assert!(
        took < Duration::from_secs(1),
        "the restart took {took:?} with idle and garbage clients connected"
    );

    // status still answers, quickly.
    let asked = Instant::now();
    let inst = wait_instance(&h, "web", 0, LONG, |i| pid_of(i) == Some(new_pid));
    assert_eq!(inst["restarts"], 1, "{inst:#}");
    eprintln!(
        "restart with 5 idle/garbage clients: {took:?}; status answered in {:?}",
        asked.elapsed()
    );

    // The garbage got error answers.
    let read_reply = |stream: &mut UnixStream| {
        stream
            .set_read_timeout(Some(LONG))
            .expect("set_read_timeout");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("an answer");
        let reply: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        reply
    };
    let reply = read_reply(&mut bad_line);
    assert_eq!(reply["ok"], false, "{reply}");
    assert!(
        reply["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("bad request")),
        "{reply}"
    );
    // ...and that connection still works.
    bad_line
        .write_all(b"{\"v\":1,\"cmd\":\"status\"}\n")
        .unwrap();
    let reply = read_reply(&mut bad_line);
    assert_eq!(reply["ok"], true, "{reply}");
    let reply = read_reply(&mut big_reader);
    assert_eq!(
        reply["error"], "bad request: line longer than 64 KiB; closing the connection",
        "{reply}"
    );
    let _big = writer.join().unwrap();
    assert!(!h.has_exited());
    drop((silent, partial, garbage));
}
