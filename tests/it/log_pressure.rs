//! Logs under pressure (issue 10, items 1 and 2): a slow stdout reader never sees a line
//! split or lost, even when supervise exits by itself right after the app; a stuck stdout
//! behind a crash loop keeps supervise's descriptors bounded.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::*;

const LINES: usize = 200_000;

fn numbers() -> Vec<String> {
    (1..=LINES).map(|i| i.to_string()).collect()
}

/// Lines differing from `want`, described briefly.
fn compare(what: &str, got: &[String], want: &[String]) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(g, w)| g != w);
    panic!(
        "{what}: {} lines, {} expected; first difference at {first:?}: {:?}",
        got.len(),
        want.len(),
        first.map(|i| (&got[i], &want[i]))
    );
}

#[test]
fn a_slow_reader_gets_every_line_whole_at_exit_text_and_files() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[settings]
log_dir = "logs"
log_max_size = "100MiB"

[apps.web]
command = ["seq", "1", "{LINES}"]
restart = "never"
"#
        ),
    );
    h.start_slow_stdout(&config);
    assert_eq!(h.wait_exit(Duration::from_secs(120)).code(), Some(0));
    compare("stdout", &h.instance_output("web.0"), &numbers());
    let file = std::fs::read_to_string(h.path("logs/web.0.out.log")).unwrap();
    let lines: Vec<String> = file.lines().map(str::to_string).collect();
    compare("web.0.out.log", &lines, &numbers());
    // The last event comes after the last line.
    let last = h.lines().pop().unwrap();
    assert!(last.contains("all apps finished"), "{last:?}");
}

#[test]
fn a_slow_reader_gets_every_json_line_whole_at_exit() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[settings]
log_format = "json"

[apps.web]
command = ["seq", "1", "{LINES}"]
restart = "never"
"#
        ),
    );
    h.start_slow_stdout(&config);
    assert_eq!(h.wait_exit(Duration::from_secs(120)).code(), Some(0));
    let mut got = Vec::new();
    for line in h.lines() {
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        if v["app"] == "web" {
            got.push(v["line"].as_str().unwrap().to_string());
        }
    }
    compare("json stdout", &got, &numbers());
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_crash_loop_behind_a_stuck_stdout_keeps_descriptors_bounded() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        r#"
[apps.yes]
command = ["yes"]
stop_timeout = "1s"

[apps.crash]
command = ["sh", "-c", "echo boom; echo oops >&2; exit 1"]
restart_delay = "1ms"
backoff_max = "1ms"
max_restarts = 0
stop_timeout = "1s"
"#,
    );
    h.start_blocked_stdout(&config);
    let supervise = h.supervise_pid();
    h.wait_for(|| socket(&h).exists(), LONG);
    let restarts = || {
        instance(&status_json(&h), "crash", 0)["restarts"]
            .as_u64()
            .unwrap()
    };
    // What supervise holds with its two instances running (reserves included).
    let base = open_fds(supervise);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut most = 0;
    while restarts() < 400 {
        assert!(Instant::now() < deadline, "only {} restarts", restarts());
        most = most.max(open_fds(supervise));
    }
    most = most.max(open_fds(supervise));
    let links: Vec<String> = std::fs::read_dir(format!("/proc/{supervise}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    // 64 pipes of ended runs at most, whatever the number of restarts; plus, sampled at
    // any moment: a spawn's two new pipes (four ends) and /dev/null, the next run's pipes
    // while the last exit is reaped, and a control connection or two.
    assert!(
        most <= base + 64 + 11,
        "{most} descriptors open, {base} at first: {links:?}"
    );
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(Duration::from_secs(30)).code(), Some(0));
}

#[test]
fn a_chatty_pipe_rests_between_reads_and_sleeps_once_quiet() {
    // One write(2) per line: the pipe rests between reads (see runtime/pipes.rs).
    const N: usize = 20_000;
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.web]
command = ["sh", "-c", "i=1; while [ $i -le {N} ]; do echo $i; i=$((i+1)); done; exec sleep 1000"]
stop_timeout = "1s"
"#
        ),
    );
    h.start(&config);
    h.wait_for(|| h.instance_output("web.0").len() >= N, LONG);
    let want: Vec<String> = (1..=N).map(|i| i.to_string()).collect();
    compare("stdout", &h.instance_output("web.0"), &want);
    // Quiet again: no timer is left behind. Observed over a window (not a wait).
    let supervise = h.supervise_pid();
    let before = context_switches(supervise);
    std::thread::sleep(Duration::from_millis(300));
    let after = context_switches(supervise);
    assert!(
        after - before <= 1,
        "{} context switches in 300 ms with nothing to do",
        after - before
    );
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(Duration::from_secs(30)).code(), Some(0));
}

#[test]
fn a_burst_gives_its_memory_back_once_it_is_over() {
    // 20 MB of 100-byte lines in 64 KiB writes: the reads fill the 1 MiB read buffer,
    // and the chunk buffers go round the pool (see runtime/pipes.rs, TRIM_AFTER).
    const N: usize = 200_000;
    let mut h = Harness::new();
    let text: String = (0..N)
        .map(|i| format!("{i:010} {}\n", "x".repeat(88)))
        .collect();
    let data = h.write_file("lines.txt", &text);
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.web]
command = ["sh", "-c", "while [ ! -e go ]; do sleep 0.02; done; dd if={} bs=65500 status=none; exec sleep 1000"]
stop_timeout = "1s"
"#,
            data.display()
        ),
    );
    h.start(&config);
    h.wait_for_event(|t| t.starts_with("web.0 started"), LONG);
    let supervise = h.supervise_pid();
    let before = vm_rss_kib(supervise);
    h.write_file("go", "");
    h.wait_for(
        || h.instance_output("web.0").len() >= N,
        Duration::from_secs(60),
    );
    // Kept, the read buffer and two pooled ones alone would be 3 MiB more.
    h.wait_for(
        || vm_rss_kib(supervise) <= before + 2560,
        Duration::from_secs(10),
    );
    h.send_signal(Signal::SIGTERM);
    assert_eq!(h.wait_exit(Duration::from_secs(30)).code(), Some(0));
}
