//! Control under a low open-file limit (issue 10: a reply to every client that is turned
//! away). supervise runs under a lowered hard `RLIMIT_NOFILE` (so it cannot raise its soft
//! one past it); clients that never leave fill what it lets them have, or the limit is
//! lowered under it to what it holds. A newcomer always gets the one-line "too many
//! clients" refusal (and an HTTP one its 503), supervise never spins, and a kill -9 is
//! still respawned.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::http::wait_http;
use super::http_pressure::{http_settings, newcomer, silent};
use crate::support::*;

/// Generous for a loaded CI machine; unloaded, a respawn takes a few milliseconds.
pub const RESPAWN_BOUND: Duration = Duration::from_secs(1);

pub const FOLLOW: &[u8] =
    b"{\"v\":1,\"cmd\":\"logs\",\"target\":\"all\",\"lines\":0,\"follow\":true}\n";
pub const STATUS: &[u8] = b"{\"v\":1,\"cmd\":\"status\"}\n";

/// A new connection that sent `request`, and the first line it got back (empty if the
/// connection closed without one). A newcomer turned away may find the connection
/// closed before it writes; its line is still there to read, as the CLI does.
pub fn ask(socket: &Path, request: &[u8]) -> (BufReader<UnixStream>, String) {
    let mut stream = UnixStream::connect(socket).expect("connect to the control socket");
    stream.set_read_timeout(Some(LONG)).unwrap();
    let _ = stream.write_all(request);
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .expect("a reply line within LONG");
    (reader, line)
}

pub fn error_of(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    value["error"].as_str().map(str::to_string)
}

/// How many of `pid`'s descriptors are below `limit` (it may hold inherited ones above).
pub fn fds_below(pid: i32, limit: u64) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
                .filter(|&fd| fd < limit)
                .count()
        })
        .unwrap_or(0)
}

/// supervise on `eco` plus an app `web` restarting at once, under the open-file limit
/// `limit` (soft and hard: it cannot raise it); once `web.0` runs, the socket.
pub fn start_web(h: &mut Harness, eco: Ecosystem, limit: u64) -> PathBuf {
    let config = eco
        .app("web", &["--pid-dir", h.pids()])
        .set("restart_delay", "0ms")
        .write(h);
    h.start_with_nofile(&config, limit, limit);
    h.wait_pid("web", 0);
    socket(h)
}

/// kill -9 `web.0`; how long until its new pid file.
pub fn respawn(h: &Harness) -> Duration {
    let pid = h.wait_pid("web", 0);
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    h.wait_pid_change("web", 0, pid, LONG);
    killed.elapsed()
}

#[test]
fn followers_never_take_the_descriptors_a_respawn_needs() {
    const LIMIT: u64 = 96;
    let mut h = Harness::new();
    let sock = start_web(&mut h, Ecosystem::new(), LIMIT);
    let sup = h.supervise_pid();
    let before = fd_count(sup);

    // `logs -f` clients (never idle, never closed for someone else) until one is
    // turned away.
    let mut followers = Vec::new();
    let refusal = loop {
        assert!(
            followers.len() < LIMIT as usize,
            "no client was turned away"
        );
        let (conn, line) = ask(&sock, FOLLOW);
        match error_of(&line) {
            None => followers.push(conn),
            Some(why) => break why,
        }
    };
    let full = fd_count(sup);
    eprintln!(
        "limit {LIMIT}: {} followers admitted ({before} fds before, {full} with them), \
         then: {refusal}",
        followers.len()
    );
    assert!(
        refusal.starts_with("too many clients: supervise keeps its last"),
        "{refusal}"
    );
    // Every later newcomer too, each with its line.
    for _ in 0..20 {
        let (_, line) = ask(&sock, STATUS);
        assert!(
            error_of(&line).is_some_and(|e| e.starts_with("too many clients")),
            "{line:?}"
        );
    }
    // Supervision still has its descriptors: a kill -9 is respawned, three times.
    for n in 1..=3 {
        let took = respawn(&h);
        eprintln!("respawn {n} beside {} followers: {took:?}", followers.len());
        assert!(took < RESPAWN_BOUND, "respawn {n} took {took:?}");
    }
    assert_eq!(h.count_events(|t| t.contains("failed to start")), 0);
    // One follower leaves: the next newcomer gets in.
    followers.pop();
    let mut last = String::new();
    let admitted = poll_until(
        || {
            last = ask(&sock, STATUS).1;
            error_of(&last).is_none()
        },
        LONG,
    );
    assert!(admitted, "still turned away after a follower left: {last}");
    assert!(!h.has_exited());
}

/// The lowest descriptor `pid` has free.
fn lowest_free(pid: i32) -> u64 {
    let used: std::collections::BTreeSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    (0..).find(|fd| !used.contains(fd)).unwrap()
}

/// Lower `pid`'s open-file limit, soft and hard, to `limit` (util-linux's prlimit).
fn lower_nofile(pid: i32, limit: u64) {
    let out = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .output()
        .expect("prlimit runs");
    assert!(out.status.success(), "prlimit: {}", stderr_of(&out));
}

#[test]
fn out_of_descriptors_a_newcomer_still_gets_its_line_and_nothing_spins() {
    const LIMIT: u64 = 96;
    let mut h = Harness::new();
    let port = free_port();
    let sock = start_web(&mut h, http_settings(port), LIMIT);
    let sup = h.supervise_pid();

    // Silent HTTP clients take what they may (each dropped after 10 s of silence), then
    // the limit is lowered under supervise to what it holds: accept(2) finds no
    // descriptor, as when supervision or another thread has taken them all.
    let silent = silent(port, LIMIT);
    assert_eq!(newcomer(port).0, 503);
    h.wait_for(|| fds_below(sup, LIMIT) <= LIMIT as usize - 16, LONG);
    let lowered = lowest_free(sup);
    lower_nofile(sup, lowered);
    let cpu0 = cpu_ticks(sup);
    let t0 = Instant::now();

    // accept(2) fails with EMFILE: each newcomer is taken on the spare descriptor,
    // told, and closed; the spare is taken back for the next. On either listener.
    for _ in 0..20 {
        let (_, line) = ask(&sock, STATUS);
        let why = error_of(&line).unwrap_or_default();
        assert!(
            why.starts_with("too many clients: supervise is out of file descriptors"),
            "{line:?}"
        );
        let (status, head, body) = newcomer(port);
        assert_eq!(status, 503, "{head}\n\n{body}");
        assert!(
            body.starts_with("supervise is out of file descriptors"),
            "{body}"
        );
    }
    // The spares are taken back once the last newcomers are closed (just after their
    // answers).
    h.wait_for(|| fds_below(sup, lowered) == lowered as usize, LONG);
    // Until the HTTP clients are dropped, supervise sleeps: a loop spinning on a
    // listener it cannot accept from would burn the whole wait.
    let mut first = &silent[0];
    first.set_read_timeout(Some(LONG * 2)).unwrap();
    assert_eq!(
        read_once(&mut first, &mut [0u8; 1]).expect("dropped within 20 s"),
        0
    );
    let (cpu, wall) = (cpu_ticks(sup) - cpu0, t0.elapsed());
    eprintln!(
        "out of fds (limit lowered to {lowered}): 20 newcomers told on each listener; \
         {cpu} ticks of CPU in {wall:?} until the silent HTTP clients were dropped"
    );
    assert!(
        Duration::from_millis(cpu * 10) < wall / 10,
        "{cpu} ticks of CPU in {wall:?}"
    );
    // Descriptors free again: the CLI and probes get in, a kill -9 is respawned.
    drop(silent);
    let out = h.cli(&["status"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    wait_http(port, "/livez", 200, |b| b == "ok\n");
    let took = respawn(&h);
    assert!(took < RESPAWN_BOUND, "respawn took {took:?}");
    assert!(!h.has_exited());
}
