//! The edges to the operating system under hostile input (issue 10, items 5 and 6): a
//! FIFO or device where a file is expected is refused at once and never blocks the loop.

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use crate::support::*;

/// What `supervise check FILE` answers, and how long it took.
fn check(file: &str) -> (std::process::Output, Duration) {
    let t0 = Instant::now();
    let mut command = Command::new(supervise_bin());
    command
        .args(["check", file])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = output_within(command, LONG);
    (out, t0.elapsed())
}

#[test]
fn check_refuses_a_device_or_a_fifo_at_once() {
    let (out, _) = check("/dev/zero");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr_of(&out).trim_end(),
        "/dev/zero:1:1: cannot read the file: not a regular file (a character device)"
    );
    let h = Harness::new();
    let fifo = h.path("eco.toml");
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
    let (out, _) = check(fifo.to_str().unwrap());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("eco.toml:1:1: cannot read the file: not a regular file (a FIFO)"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn a_fifo_env_file_is_refused_and_supervise_stays_responsive() {
    let mut h = Harness::new();
    h.write_file("app.env", "V=one\n");
    let config = h.start_ecosystem(
        &Ecosystem::new()
            .app("web", &["--pid-dir", h.pids()])
            .set("env_file", "app.env")
            .set("min_uptime", "0s"),
    );
    let old = h.wait_pid("web", 0);

    // The env file becomes a FIFO nobody writes to: reading it would block forever.
    let env = h.path("app.env");
    fs::remove_file(&env).unwrap();
    nix::unistd::mkfifo(&env, Mode::from_bits_truncate(0o600)).unwrap();
    let refused = h.wait_for_event(|t| t.starts_with("config error: "), LONG);
    assert!(
        refused.contains(&format!("{}:", config.display()))
            && refused.contains("apps.web.env_file: env file `")
            && refused.ends_with("not a regular file (a FIFO)"),
        "{refused}"
    );

    // Still supervising: status answers, a killed instance comes back, SIGTERM stops it.
    let report = status_json(&h);
    assert_eq!(pid_of(instance(&report, "web", 0)), Some(old), "{report:#}");
    kill(Pid::from_raw(old), Signal::SIGKILL).unwrap();
    let new = h.wait_pid_change("web", 0, old, LONG);
    assert_ne!(new, old);
    h.send_signal(Signal::SIGTERM);
    let status = h.wait_exit(LONG);
    assert!(status.success(), "{status:?}");
    assert!(!alive(new));
}
