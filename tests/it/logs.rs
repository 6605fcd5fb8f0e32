//! Logs on stdout: prefixes, whole lines, partial lines, long lines, JSON, timestamps,
//! and a blocked stdout that must not stop supervision (issue 3, point 8).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::*;

const CUT_MARKER: &str = " [cut: line continues]";

#[test]
fn lines_of_three_instances_are_never_merged() {
    let mut h = Harness::new();
    let lines = 2000;
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.web]
command = {}
instances = 3
restart = "never"
"#,
            app_cmd(&["--print", &lines.to_string(), "--exit-after", "0"])
        ),
    );
    h.start(&config);
    assert_eq!(h.wait_exit(Duration::from_secs(30)).code(), Some(0));
    for n in 0..3 {
        let name = format!("web.{n}");
        let out = h.instance_output(&name);
        let expected: Vec<String> = (1..=lines).map(|k| format!("line {k} of {name}")).collect();
        assert_eq!(out.len(), expected.len(), "{name}: wrong number of lines");
        for (got, want) in out.iter().zip(&expected) {
            assert_eq!(got, want, "{name}: a line was merged, split or reordered");
        }
    }
    // Nothing else carries instance text: no line holds two instances' output.
    for line in h.lines() {
        assert!(
            line.matches(" of web.").count() <= 1,
            "merged line: {line:?}"
        );
    }
}

#[test]
fn stderr_lines_reach_stdout_too() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.web]
command = {}
restart = "never"
"#,
            app_cmd(&[
                "--stderr",
                "this went to stderr",
                "--print",
                "1",
                "--exit-after",
                "0"
            ])
        ),
    );
    h.start(&config);
    h.wait_for_output("web.0", |t| t == "this went to stderr", LONG);
    h.wait_for_output("web.0", |t| t == "line 1 of web.0", LONG);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
}

#[test]
fn a_partial_last_line_is_printed_at_exit() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.web]
command = {}
restart = "never"
"#,
            app_cmd(&[
                "--print",
                "1",
                "--partial",
                "no newline",
                "--exit-after",
                "0"
            ])
        ),
    );
    h.start(&config);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
    assert_eq!(
        h.instance_output("web.0"),
        ["line 1 of web.0", "no newline"]
    );
}

#[test]
fn a_200_kib_line_is_cut_into_marked_pieces() {
    let mut h = Harness::new();
    let bytes = 200 * 1024;
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.web]
command = {}
restart = "never"
"#,
            app_cmd(&[
                "--line-bytes",
                &bytes.to_string(),
                "--print",
                "1",
                "--exit-after",
                "0"
            ])
        ),
    );
    h.start(&config);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
    let out = h.instance_output("web.0");
    let (last, pieces) = out.split_last().expect("output");
    // (Compared as a bool: a failure must not print 64 KiB of x.)
    assert!(
        last == "line 1 of web.0",
        "the line after the long one must stay whole, got {} bytes",
        last.len()
    );
    assert!(
        pieces.len() >= 4,
        "200 KiB needs at least 4 pieces of 64 KiB"
    );
    let mut total = 0;
    for (i, piece) in pieces.iter().enumerate() {
        let content = if i + 1 < pieces.len() {
            piece
                .strip_suffix(CUT_MARKER)
                .unwrap_or_else(|| panic!("piece {i} is not marked as cut"))
        } else {
            assert!(
                !piece.ends_with(CUT_MARKER),
                "the last piece is marked as cut"
            );
            piece.as_str()
        };
        assert!(
            content.len() <= 64 * 1024,
            "piece {i}: {} bytes",
            content.len()
        );
        assert!(content.bytes().all(|b| b == b'x'), "piece {i} is not all x");
        total += content.len();
    }
    assert_eq!(total, bytes, "bytes lost or added while cutting");
}

#[test]
fn log_format_json_gives_one_object_per_line() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[settings]
log_format = "json"

[apps.web]
command = {}
instances = 2
restart = "never"
"#,
            app_cmd(&["--print", "2", "--stderr", "oops", "--exit-after", "0"])
        ),
    );
    h.start(&config);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
    let objects: Vec<serde_json::Value> = h
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect();
    let find = |instance: u64, stream: &str, line: &str| {
        objects.iter().find(|o| {
            o["app"] == "web"
                && (o["instance"] == instance || o["instance"] == instance.to_string().as_str())
                && o["stream"] == stream
                && o["line"] == line
        })
    };
    for n in 0..2u64 {
        for k in 1..=2 {
            let object = find(n, "stdout", &format!("line {k} of web.{n}"))
                .unwrap_or_else(|| panic!("no stdout object for web.{n} line {k}: {objects:?}"));
            let time = object["time"].as_str().expect("a time field");
            assert_eq!(
                strip_rfc3339(time),
                Some(""),
                "time {time:?} is not RFC 3339"
            );
        }
        find(n, "stderr", "oops")
            .unwrap_or_else(|| panic!("no stderr object for web.{n}: {objects:?}"));
    }
}

#[test]
fn log_timestamps_prefix_lines_with_an_rfc3339_time() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[settings]
log_timestamps = true

[apps.web]
command = {}
restart = "never"
"#,
            app_cmd(&["--print", "1", "--exit-after", "0"])
        ),
    );
    h.start(&config);
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
    let line = h
        .lines()
        .into_iter()
        .find(|l| l.ends_with("| line 1 of web.0"))
        .expect("the instance line");
    let rest = strip_rfc3339(&line).unwrap_or_else(|| panic!("no RFC 3339 time first: {line:?}"));
    assert!(rest.starts_with(' '), "{line:?}");
    assert_eq!(instance_line(&line), Some(("web.0", "line 1 of web.0")));
}

#[test]
fn a_blocked_stdout_never_stops_supervision() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.chatty]
command = {chatty}
stop_timeout = "2s"

[apps.crashy]
command = {crashy}
restart_delay = "10ms"
backoff_max = "20ms"
max_restarts = 0
stop_timeout = "2s"
"#,
            chatty = app_cmd(&["--print", "100000000"]),
            crashy = app_cmd(&[
                "--pid-dir",
                h.pids(),
                "--exit-after",
                "100ms",
                "--exit-code",
                "1",
                "--print",
                "50",
            ]),
        ),
    );
    h.start_blocked_stdout(&config);
    // Wait until supervise's stdout pipe is full, i.e. its writer thread sleeps in the
    // kernel's pipe write. (The byte count alone cannot tell: a write whose tail does
    // not fit the last page starts a new one, so a full pipe may hold well under its
    // capacity.)
    let supervise = h.supervise_pid();
    let full = || {
        let (_, capacity) = h.blocked_stdout_fill();
        capacity > 0 && writer_blocked_in_pipe(supervise)
    };
    h.wait_for(full, LONG);
    let (queued, _) = h.blocked_stdout_fill();
    let before = h.starts("crashy", 0).len();
    h.wait_for(|| h.starts("crashy", 0).len() >= before + 5, LONG);
    // Nobody read in the meantime: the pipe stayed full all along.
    assert!(full() && h.blocked_stdout_fill().0 >= queued);
    let signalled = Instant::now();
    h.send_signal(Signal::SIGTERM);
    let status = h.wait_exit(LONG);
    assert!(
        signalled.elapsed() < Duration::from_secs(8),
        "shutdown took {:?} with a blocked stdout",
        signalled.elapsed()
    );
    assert_eq!(status.code(), Some(0));
}

/// Some thread of `pid` sleeps in a pipe write (its wchan says so).
fn writer_blocked_in_pipe(pid: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        std::fs::read_to_string(t.path().join("wchan")).is_ok_and(|w| w.contains("pipe_write"))
    })
}
