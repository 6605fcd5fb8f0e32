//! Resource guards and identity (issue 6, SPEC section 5): `max_memory`, `user`, and the
//! (ignored, not asserted) figures of `status` at 500 instances.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;

// ------------------------------------------------------------------------ guards

#[test]
fn max_memory_restarts_an_app_past_it() {
    if which("python3").is_none() {
        eprintln!("note: no python3, skipping the max_memory test");
        return;
    }
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        r#"
[apps.web]
command = "python3 -c \"x = b'x' * (100 * 1024 * 1024); import time; time.sleep(60)\""
shell = true
max_memory = "50MiB"
"#,
    );
    h.start(&config);
    let first = h.wait_for_event(|t| t.starts_with("web.0 started (pid "), LONG);
    let first = started_pid(&first);
    let over = h.wait_for_event(|t| t.contains("more than max_memory"), LONG * 2);
    assert!(
        over.starts_with("web.0 uses ")
            && over.ends_with("more than max_memory 50.0 MiB; restarting it"),
        "{over}"
    );
    let started = h.wait_for_events(|t| t.starts_with("web.0 started (pid "), 2, LONG * 2);
    let second = started_pid(&started[1]);
    assert_ne!(first, second);
    h.wait_for(|| !alive(first), LONG);
    let inst = status_json(&h);
    let inst = instance(&inst, "web", 0);
    assert!(
        inst["restarts"].as_u64().is_some_and(|r| r >= 1),
        "{inst:#}"
    );
    eprintln!("max_memory: {over}");
}

#[test]
fn user_nobody_runs_as_uid_65534() {
    if !is_root() {
        eprintln!("note: not root, skipping the `user = \"nobody\"` test");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("a user nobody");
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.web]\ncommand = {}\nuser = \"nobody\"\n",
            app_cmd(&["--ready-line"])
        ),
    );
    h.start(&config);
    let ready = h.wait_for_output("web.0", |t| t.starts_with("ready pid="), LONG);
    let pid: i32 = ready.strip_prefix("ready pid=").unwrap().parse().unwrap();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ids = |key: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {status}"))
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect()
    };
    assert_eq!(ids("Uid:"), vec![65534; 4], "{status}");
    assert_eq!(ids("Gid:"), vec![nobody.gid.as_raw(); 4], "{status}");
    assert!(
        !ids("Groups:").contains(&0),
        "root's group stayed: {status}"
    );
    let report = status_json(&h);
    assert_eq!(pid_of(instance(&report, "web", 0)), Some(pid));
}

// ------------------------------------------------------------------------ figures

/// The figure of issue 6: `supervise status` latency with 500 instances, and supervise's
/// CPU while nobody asks. Not asserted; run with
/// `cargo test --release --test tests guards::status_figures -- --ignored --nocapture`.
#[test]
#[ignore]
fn status_figures() {
    const N: usize = 500;
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!("[apps.sleep]\ncommand = [\"sleep\", \"1000\"]\ninstances = {N}\n"),
    );
    h.start(&config);
    let up = Instant::now();
    let all_running = || {
        let report = status_json(&h);
        let instances = report["instances"].as_array().unwrap();
        instances.len() == N && instances.iter().all(|i| i["state"] == "running")
    };
    h.wait_for(
        || {
            thread::sleep(Duration::from_millis(200));
            all_running()
        },
        Duration::from_secs(120),
    );
    eprintln!("{N} instances running after {:?}", up.elapsed());
    let pid = h.supervise_pid();

    let time = |args: &[&str]| {
        let mut times: Vec<Duration> = (0..10)
            .map(|_| {
                let t0 = Instant::now();
                let out = h.cli(args);
                let took = t0.elapsed();
                assert!(out.status.success(), "{out:?}");
                if args.len() == 1 {
                    assert_eq!(stdout_of(&out).lines().count(), N + 1);
                }
                took
            })
            .collect();
        times.sort();
        times
    };
    let table = time(&["status"]);
    let json = time(&["status", "--json"]);
    eprintln!(
        "supervise status with {N} instances (10 runs of the CLI, process start included): \
         median {:?} (min {:?}, max {:?})",
        (table[4] + table[5]) / 2,
        table[0],
        table[9]
    );
    eprintln!(
        "supervise status --json with {N} instances: median {:?} (min {:?}, max {:?})",
        (json[4] + json[5]) / 2,
        json[0],
        json[9]
    );

    // Idle: nobody asks for status; 10 s of supervise's CPU time.
    thread::sleep(Duration::from_secs(1));
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let before = cpu_ticks(pid);
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs(10));
    let after = cpu_ticks(pid);
    let span = t0.elapsed();
    eprintln!(
        "supervise CPU while idle with {N} instances over {span:?}: {} ticks ({} ms; \
         {ticks_per_s} ticks/s); RSS {} KiB",
        after - before,
        (after - before) * 1000 / ticks_per_s,
        vm_rss_kib(pid)
    );
}
