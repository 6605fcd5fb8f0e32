//! `supervise logs` and log files (issue 6, SPEC sections 4 and 5): the last lines of a
//! target, following, rotation keeping `log_keep` files, the merged file and SIGUSR1.
//! Every wait is on a line or a file's content, against a generous deadline.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use nix::sys::signal::Signal;

use crate::support::*;

/// `K` of a `line K of NAME` line.
fn line_number(text: &str, name: &str) -> Option<u64> {
    text.strip_prefix("line ")?
        .strip_suffix(&format!(" of {name}"))?
        .parse()
        .ok()
}

// ------------------------------------------------------------------------ logs

#[test]
fn logs_n_prints_the_last_lines_of_a_target() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.count]
command = {count}

[apps.web]
command = {web}
instances = 2
"#,
            count = app_cmd(&["--print", "50"]),
            web = app_cmd(&["--print", "3"]),
        ),
    );
    h.start(&config);
    h.wait_for_output("count.0", |t| t == "line 50 of count.0", LONG);
    h.wait_for_output("web.0", |t| t == "line 3 of web.0", LONG);
    h.wait_for_output("web.1", |t| t == "line 3 of web.1", LONG);

    let want: Vec<String> = (46..=50)
        .map(|k| format!("count.0 | line {k} of count.0"))
        .collect();
    // `--out`: the app's own lines only (plain `logs` adds supervise's events about it,
    // see cli.rs).
    for target in ["count", "count.0"] {
        let text = cli_ok(&h, &["logs", target, "-n", "5", "--out"]);
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(got, want, "logs {target} -n 5");
    }

    let text = cli_ok(&h, &["logs", "web.1", "--out"]);
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(
        got,
        (1..=3)
            .map(|k| format!("web.1 | line {k} of web.1"))
            .collect::<Vec<_>>(),
        "logs web.1"
    );

    let text = cli_ok(&h, &["logs", "-n", "5", "--out"]);
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got.len(), 5, "logs -n 5: {text}");
    for line in got {
        let (name, rest) = line.split_once(" | ").expect(line);
        assert!(line_number(rest, name).is_some(), "{line}");
    }
}

#[test]
fn logs_follow_streams_new_lines() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.tick]\ncommand = {}\n",
            app_cmd(&["--print", "100000", "--interval", "100ms"])
        ),
    );
    h.start(&config);
    h.wait_for_output("tick.0", |t| t == "line 3 of tick.0", LONG);

    let mut command = h.cli_command(&["logs", "tick", "-f", "-n", "2"]);
    command.stderr(Stdio::inherit());
    let mut child = command.spawn().expect("spawn logs -f");
    let seen_before = h.instance_output("tick.0").len() as u64;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + LONG;
    let mut got = Vec::new();
    while got.len() < 8 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => got.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(got.len(), 8, "logs -f gave only {got:?}");
    let numbers: Vec<u64> = got
        .iter()
        .map(|l| {
            let rest = l.strip_prefix("tick.0 | ").unwrap_or_else(|| panic!("{l}"));
            line_number(rest, "tick.0").unwrap_or_else(|| panic!("{l}"))
        })
        .collect();
    for pair in numbers.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "not consecutive: {got:?}");
    }
    assert!(
        *numbers.last().unwrap() > seen_before + 2,
        "no line came after the follow started: {got:?} (the app had printed {seen_before})"
    );
}

// ------------------------------------------------------------------------ log files

/// Every file in `dir`, by name.
fn file_names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn log_files_rotate_keeping_log_keep_files_without_a_gap() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[settings]
log_dir = "logs"
log_max_size = "2KiB"
log_keep = 2

[apps.web]
command = {}
"#,
            app_cmd(&["--print", "500"])
        ),
    );
    h.start(&config);
    h.wait_for_output("web.0", |t| t == "line 500 of web.0", LONG);
    let dir = h.path("logs");
    let current = dir.join("web.0.out.log");
    h.wait_for(
        || fs::read_to_string(&current).is_ok_and(|t| t.lines().any(|l| l == "line 500 of web.0")),
        LONG,
    );

    let names = file_names(&dir);
    let allowed: BTreeSet<String> = ["web.0.out.log", "web.0.out.log.1", "web.0.out.log.2"]
        .into_iter()
        .map(String::from)
        .collect();
    let out_files: BTreeSet<String> = names
        .iter()
        .filter(|n| n.starts_with("web.0.out.log"))
        .cloned()
        .collect();
    assert_eq!(out_files, allowed, "files in {}: {names:?}", dir.display());
    for name in &names {
        assert!(
            name.starts_with("web.0.out.log") || name.starts_with("web.0.err.log"),
            "unexpected file {name} in {names:?}"
        );
        assert!(!name.contains(".err.log."), "stderr never wrote: {names:?}");
    }

    // Oldest first: every line kept is there once, consecutive, the newest last.
    let mut numbers = Vec::new();
    for name in ["web.0.out.log.2", "web.0.out.log.1", "web.0.out.log"] {
        let path = dir.join(name);
        let text = fs::read_to_string(&path).unwrap();
        let size = fs::metadata(&path).unwrap().len();
        assert!(size <= 2048, "{name} has {size} bytes, more than 2 KiB");
        assert!(!text.is_empty(), "{name} is empty");
        for line in text.lines() {
            numbers.push(
                line_number(line, "web.0")
                    .unwrap_or_else(|| panic!("{name}: unexpected line {line:?}")),
            );
        }
    }
    for pair in numbers.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "a gap or a duplicate across rotation: {numbers:?}"
        );
    }
    assert_eq!(numbers.last(), Some(&500));
    // Three files of at most 2 KiB hold at most ~340 of these ~18-byte lines: the first
    // ones were rotated away, as they should be.
    assert!(numbers[0] > 1, "{numbers:?}");
    eprintln!(
        "log files kept lines {}..=500 in 3 files",
        numbers.first().unwrap()
    );
}

#[test]
fn merged_log_file_and_sigusr1_reopens() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[settings]
log_dir = "logs"
merge_logs = true

[apps.web]
command = {}
"#,
            app_cmd(&["--print", "3", "--stderr", "to stderr", "--echo-signals"])
        ),
    );
    h.start(&config);
    let dir = h.path("logs");
    let file = dir.join("web.0.log");
    h.wait_for(
        || {
            fs::read_to_string(&file).is_ok_and(|t| {
                t.lines().any(|l| l == "line 3 of web.0") && t.lines().any(|l| l == "to stderr")
            })
        },
        LONG,
    );
    let names = file_names(&dir);
    assert_eq!(
        names,
        BTreeSet::from(["web.0.log".to_string()]),
        "merge_logs writes one file"
    );

    // logrotate's way: move the file away, SIGUSR1, and the next line makes a new file.
    let moved = dir.join("web.0.log.moved");
    fs::rename(&file, &moved).unwrap();
    h.send_signal(Signal::SIGUSR1);
    h.wait_for_event(|t| t == "received SIGUSR1, reopening the log files", LONG);
    cli_ok(&h, &["signal", "SIGUSR1", "web"]);
    h.wait_for_output("web.0", |t| t == "signal SIGUSR1", LONG);
    h.wait_for(
        || fs::read_to_string(&file).is_ok_and(|t| t.lines().any(|l| l == "signal SIGUSR1")),
        LONG,
    );
    let old = fs::read_to_string(&moved).unwrap();
    assert!(!old.contains("signal SIGUSR1"), "{old}");
    assert!(old.contains("line 1 of web.0"), "{old}");
}
