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

/// (soft, hard) "Max open files" of a live process.
fn nofile_of(pid: i32) -> (String, String) {
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[3].to_string(), words[4].to_string())
}

/// The hard limit a test may set for supervise: 20000 if this process may (root, or
/// its own hard limit is that high), else None (the test is skipped).
fn hard_limit_for_tests() -> Option<u64> {
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    (is_root() || hard >= 20000).then_some(20000)
}

#[test]
fn a_low_soft_open_file_limit_is_raised_and_children_get_it_back() {
    let Some(hard) = hard_limit_for_tests() else {
        eprintln!("note: cannot set a hard open-file limit of 20000 here, skipping");
        return;
    };
    const MANY: u64 = 600; // two pipes each: past a soft limit of 1024
    let mut h = Harness::new();
    let config = Ecosystem::new()
        .app("many", &[])
        .set("instances", MANY as i64)
        .app("own", &[])
        .line("limits = { nofile = 4096 }")
        .write(&mut h);
    h.start_with_nofile(&config, 1024, hard);
    socket(&h);
    let mut report = serde_json::Value::Null;
    h.wait_for(
        || {
            report = status_json(&h);
            let running = report["instances"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i["state"] == "running")
                .count();
            running as u64 == MANY + 1
        },
        LONG * 6,
    );
    let hard = hard.to_string();
    assert_eq!(nofile_of(h.supervise_pid()), (hard.clone(), hard.clone()));
    // "running" comes with the clone; the limits are set just before the exec.
    let exec_done = |pid: i32| {
        h.wait_for(
            || cmdline(pid).is_some_and(|a| a.first().is_some_and(|p| p.ends_with("testapp"))),
            LONG,
        )
    };
    let many = pid_of(instance(&report, "many", MANY - 1)).unwrap();
    exec_done(many);
    assert_eq!(nofile_of(many), ("1024".to_string(), hard));
    let own = pid_of(instance(&report, "own", 0)).unwrap();
    exec_done(own);
    assert_eq!(nofile_of(own), ("4096".to_string(), "4096".to_string()));
    assert_eq!(h.count_events(|t| t.contains("failed to start")), 0);
}

#[test]
fn check_warns_when_instances_need_more_files_than_the_limit() {
    let mut h = Harness::new();
    let config = Ecosystem::new()
        .app("many", &[])
        .set("instances", 200i64)
        .write(&mut h);
    let run_check = |soft: u64, hard: u64| {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(supervise_bin());
        command
            .arg("check")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
        unsafe {
            command.pre_exec(move || {
                nix::sys::resource::setrlimit(
                    nix::sys::resource::Resource::RLIMIT_NOFILE,
                    soft,
                    hard,
                )
                .map_err(std::io::Error::from)
            });
        }
        output_within(command, LONG)
    };
    let out = run_check(256, 256);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let warning = stderr_of(&out);
    assert!(
        warning.contains("warning: with 200 instance(s), supervise needs about ")
            && warning.contains("more than its hard limit of 256"),
        "{warning}"
    );
    // A low soft limit alone is no problem: supervise raises it to the hard one.
    let out = run_check(256, 4096);
    assert_eq!(stderr_of(&out), "");
}

/// One app that sleeps: supervise has nothing to do.
const IDLE: &str = "[apps.idle]\ncommand = [\"sleep\", \"100000\"]\n";

/// An app writing beside the ecosystem file (its database, its output) and a script
/// reading the file cost supervise no wake-up: the folder is watched for finished
/// writes and renames only, by the loop, and no watcher thread runs while no app has
/// `watch` paths.
#[test]
fn writes_and_reads_beside_the_ecosystem_file_wake_nothing() {
    use std::io::Write;
    let mut h = Harness::new();
    let config = h.write_config("ecosystem.toml", IDLE);
    h.start(&config);
    h.wait_for_event(|t| t.starts_with("idle.0 started"), LONG);
    let pid = h.supervise_pid();
    cli_ok(&h, &["status"]);
    let (before, names) = (context_switches(pid), thread_names(pid));
    assert!(
        !names.iter().any(|n| n.starts_with("notify")),
        "a watcher thread with no app watching: {names:?}"
    );
    let mut db = fs::File::create(h.path("app.db")).unwrap();
    for _ in 0..500 {
        db.write_all(b"row\n").unwrap();
        fs::read(&config).unwrap();
    }
    // The status round trip also lets any woken thread run before the count.
    cli_ok(&h, &["status"]);
    let after = context_switches(pid);
    // The file's creation, and the status request, wake the loop a few times.
    assert!(
        after - before < 20,
        "500 writes and reads beside the file woke supervise {} times",
        after - before
    );
}

/// supervise's threads run as SCHED_BATCH (woken, they never preempt an app), and its
/// apps get SCHED_OTHER back; started under another policy, supervise and its apps
/// keep that one.
#[test]
fn supervise_is_batch_and_its_apps_are_not() {
    for (started, own, apps) in [
        (None, libc::SCHED_BATCH, libc::SCHED_OTHER),
        (Some(libc::SCHED_IDLE), libc::SCHED_IDLE, libc::SCHED_IDLE),
    ] {
        let mut h = Harness::new();
        let config = h.write_config("ecosystem.toml", IDLE);
        match started {
            None => h.start(&config),
            Some(policy) => h.start_with_policy(&config, policy),
        }
        let event = h.wait_for_event(|t| t.starts_with("idle.0 started"), LONG);
        let app = started_pid(&event);
        let policies = thread_policies(h.supervise_pid());
        assert!(
            !policies.is_empty() && policies.iter().all(|p| *p == own),
            "{started:?}: {policies:?}"
        );
        assert_eq!(thread_policies(app), vec![apps], "{started:?}");
    }
}
