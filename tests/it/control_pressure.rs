//! Control under pressure (issue 10, items 3 and 4): clients that flood, pipeline, stay
//! idle or follow logs by the dozen, or arrive by the hundred at once, never delay
//! supervision and never lock the CLI out. Real supervise, real clients, real kill -9.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::*;

/// Generous for a loaded CI machine; unloaded, a respawn takes a few milliseconds.
const RESPAWN_BOUND: Duration = Duration::from_secs(1);

/// A client writing `chunk` over and over on one connection while another thread
/// reads (and drops) the answers, until dropped.
struct Flood {
    stop: Arc<AtomicBool>,
    stream: UnixStream,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Flood {
    fn start(socket: &std::path::Path, chunk: Vec<u8>) -> Flood {
        let stream = UnixStream::connect(socket).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut writer = stream.try_clone().unwrap();
        let mut reader = stream.try_clone().unwrap();
        let stop_w = stop.clone();
        let threads = vec![
            thread::spawn(move || {
                while !stop_w.load(Ordering::Relaxed) && writer.write_all(&chunk).is_ok() {}
            }),
            thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
            }),
        ];
        Flood {
            stop,
            stream,
            threads,
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// When supervise printed the last event about `web.0` that starts with `what`.
fn event_time(h: &Harness, what: &str) -> Option<std::time::SystemTime> {
    let prefix = format!("web.0 {what}");
    h.lines().iter().rev().find_map(|l| {
        let text = event_text(l)?;
        if !text.starts_with(&prefix) {
            return None;
        }
        humantime::parse_rfc3339(l.split_whitespace().next()?).ok()
    })
}

/// kill -9 web.0 three times while `chunk` floods the socket. Two figures per respawn:
/// from supervise's own event times (`killed by signal` to `started`: what the loop adds) and
/// from the kill to the new pid file (what a user sees, the child's start included).
fn respawn_under_flood(chunk: Vec<u8>, what: &str) {
    let mut h = Harness::new();
    let config = Ecosystem::new()
        .line("[settings]")
        .set("log_timestamps", true)
        .app("web", &["--pid-dir", h.pids()])
        .set("restart_delay", "0ms")
        .write(&mut h);
    h.start(&config);
    let mut pid = h.wait_pid("web", 0);
    let sock = socket(&h);
    let flood = Flood::start(&sock, chunk);
    let (mut inside, mut outside) = (Duration::ZERO, Duration::ZERO);
    for n in 1..=3 {
        kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        let killed = Instant::now();
        pid = h.wait_pid_change("web", 0, pid, LONG);
        outside = outside.max(killed.elapsed());
        let started = format!("started (pid {pid})");
        h.wait_for_event(|t| t.starts_with(&format!("web.0 {started}")), LONG);
        let exited = event_time(&h, "killed by signal").expect("a killed event");
        let started = event_time(&h, &started).expect("a started event");
        let took = started.duration_since(exited).unwrap_or_default();
        eprintln!(
            "{what}: respawn {n}: {took:?} in supervise, {:?} kill to pid file",
            killed.elapsed()
        );
        inside = inside.max(took);
    }
    // The CLI is answered meanwhile.
    let asked = Instant::now();
    let inst = instance(&status_json(&h), "web", 0).clone();
    let answered = asked.elapsed();
    eprintln!(
        "{what}: slowest respawn of 3: {inside:?} in supervise (killed -> started), \
         {outside:?} from kill -9 to the new pid file; a status answered in {answered:?}"
    );
    assert_eq!(inst["restarts"], 3, "{inst:#}");
    assert!(
        inside < RESPAWN_BOUND,
        "{what}: a respawn took {inside:?} in supervise (bound {RESPAWN_BOUND:?})"
    );
    drop(flood);
    assert!(!h.has_exited());
}

#[test]
fn a_client_pipelining_status_cannot_delay_a_respawn() {
    respawn_under_flood(
        "{\"v\":1,\"cmd\":\"status\"}\n".repeat(1000).into_bytes(),
        "pipelined status",
    );
}

#[test]
fn a_garbage_flood_cannot_delay_a_respawn() {
    let mut chunk = Vec::new();
    for i in 0..2000u32 {
        chunk.extend_from_slice(format!("garbage {i} {{{{ \x01\x02 not json\n").as_bytes());
    }
    respawn_under_flood(chunk, "garbage flood");
}

/// Kills the `logs -f` clients it holds, whatever happens to the test.
struct Followers(Vec<Child>);

impl Drop for Followers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn idle_clients_and_followers_do_not_lock_the_cli_out() {
    let mut h = Harness::new();
    let config = Ecosystem::new()
        .app("talk", &["--print", "1000000", "--interval", "50ms"])
        .write(&mut h);
    h.start(&config);
    h.wait_for_line(
        |l| instance_line(l).is_some_and(|(name, _)| name == "talk.0"),
        LONG,
    );
    let sock = socket(&h);

    // 64 connections that asked once and went quiet.
    let mut idle = Vec::new();
    for _ in 0..64 {
        let mut c = UnixStream::connect(&sock).unwrap();
        c.write_all(b"{\"v\":1,\"cmd\":\"status\"}\n").unwrap();
        c.set_read_timeout(Some(LONG)).unwrap();
        let mut r = BufReader::new(c);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("{\"ok\":true"), "{line}");
        idle.push(r);
    }
    // 64 `supervise logs -f`, each seen receiving lines.
    let mut followers = Followers(Vec::new());
    let receiving = Arc::new(AtomicUsize::new(0));
    for _ in 0..64 {
        let mut cmd = h.cli_command(&["logs", "-f", "-n", "0", "talk"]);
        cmd.stderr(Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let receiving = receiving.clone();
        thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            if lines.next().is_some_and(|l| l.is_ok()) {
                receiving.fetch_add(1, Ordering::Relaxed);
            }
            for _ in lines {}
        });
        followers.0.push(child);
    }
    assert!(
        poll_until(|| receiving.load(Ordering::Relaxed) == 64, LONG * 3),
        "only {} of 64 followers got lines",
        receiving.load(Ordering::Relaxed)
    );
    // Everyone else still gets in.
    let asked = Instant::now();
    let out = h.cli(&["status"]);
    eprintln!(
        "status beside 64 idle clients and 64 followers: answered in {:?}",
        asked.elapsed()
    );
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stdout_of(&out).contains("talk"), "{}", stdout_of(&out));
    // The followers were not cut off for it.
    assert!(followers
        .0
        .iter_mut()
        .all(|c| c.try_wait().unwrap().is_none()));
    drop(idle);
}

#[test]
fn a_burst_of_300_concurrent_status_is_answered() {
    let mut h = Harness::new();
    let config = Ecosystem::new()
        .app("web", &["--pid-dir", h.pids()])
        .write(&mut h);
    h.start(&config);
    h.wait_pid("web", 0);
    socket(&h);
    const N: usize = 300;
    let start = Arc::new(Barrier::new(N));
    let t0 = Instant::now();
    let failures: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = (0..N)
            .map(|_| {
                let start = start.clone();
                let h = &h;
                s.spawn(move || {
                    let command = h.cli_command(&["status", "--json"]);
                    start.wait();
                    let out = output_within(command, LONG * 6);
                    (!out.status.success()).then(|| stderr_of(&out))
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|t| t.join().unwrap())
            .collect()
    });
    eprintln!(
        "{N} concurrent `supervise status`: {} failed, all done in {:?}",
        failures.len(),
        t0.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(!h.has_exited());
}
