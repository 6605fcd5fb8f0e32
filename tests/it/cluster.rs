//! Cluster mode (issue 5, SPEC section 3): `listen` sockets passed to every instance by
//! socket activation, the systemd way, a busy address as a located error, no refused
//! connection while instances restart, and gunicorn on the passed socket. The test app
//! serves HTTP/1.0 on the passed sockets and answers `pid=<pid>`, so each response says
//! which instance took the connection. Readiness, rolling updates, health checks and the
//! watchdog are in `rollout.rs`. Every wait is on a line, a pid file or a response.

use std::collections::BTreeSet;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::*;

/// Wait for the `listen ...` line of `instance` from its run with `pid`.
#[track_caller]
fn listen_line(h: &Harness, instance: &str, pid: i32) -> String {
    let mine = format!(" pid={pid} ");
    h.wait_for_output(
        instance,
        |t| t.starts_with("listen ") && t.contains(&mine),
        LONG,
    )
}

#[test]
fn two_instances_on_one_listen_address_both_answer() {
    let mut h = Harness::new();
    let port = free_port();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.web]\ncommand = {}\ninstances = 2\nlisten = [\"tcp://127.0.0.1:{port}\"]\n",
            app_cmd(&["--pid-dir", h.pids(), "--serve"])
        ),
    );
    h.start(&config);
    let pids = [h.wait_pid("web", 0), h.wait_pid("web", 1)];
    assert_ne!(pids[0], pids[1]);
    // Requests may come before an instance accepts: they wait in the backlog.
    let seen = until_all_answer(port, &pids, 50, LONG);
    let counts: Vec<usize> = pids
        .iter()
        .map(|p| seen.iter().filter(|s| *s == p).count())
        .collect();
    eprintln!(
        "cluster: {} requests, web.0 (pid {}) answered {}, web.1 (pid {}) {}",
        seen.len(),
        pids[0],
        counts[0],
        pids[1],
        counts[1]
    );
    // Every answer came from one of the two (supervise never accepts), and each
    // instance saw the socket at fd 3.
    for (i, &pid) in pids.iter().enumerate() {
        listen_line(&h, &format!("web.{i}"), pid);
    }
}

#[test]
fn instances_get_the_sockets_the_systemd_way() {
    let mut h = Harness::new();
    let (p1, p2) = (free_port(), free_port());
    let sock = h.path("web.sock");
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.one]\ncommand = {cmd}\nlisten = [\"tcp://127.0.0.1:{p1}\"]\n\n\
             [apps.two]\ncommand = {cmd}\nlisten = [\"tcp://127.0.0.1:{p2}\", {unix}]\n",
            cmd = app_cmd(&["--pid-dir", h.pids(), "--serve"]),
            unix = quote(&format!("unix:{}", sock.display())),
        ),
    );
    h.start(&config);

    let one = h.wait_pid("one", 0);
    let line = listen_line(&h, "one.0", one);
    assert_eq!(
        line,
        format!(
            "listen LISTEN_PID={one} pid={one} LISTEN_FDS=1 \
             LISTEN_FDNAMES=tcp-127.0.0.1-{p1} fd3=tcp types=tcp"
        )
    );
    let two = h.wait_pid("two", 0);
    let line = listen_line(&h, "two.0", two);
    assert_eq!(
        line,
        format!(
            "listen LISTEN_PID={two} pid={two} LISTEN_FDS=2 \
             LISTEN_FDNAMES=tcp-127.0.0.1-{p2}:unix-web.sock fd3=tcp types=tcp,unix"
        )
    );
    until_all_answer(p1, &[one], 1, LONG);
    until_all_answer(p2, &[two], 1, LONG);
    match get_unix(&sock) {
        Ok((200, body)) => assert_eq!(body_pid(&body), Some(two), "{body:?}"),
        other => panic!(
            "the unix socket {} did not answer: {other:?}",
            sock.display()
        ),
    }

    // A restarted instance gets the same sockets, and LISTEN_PID is its own new pid.
    kill(Pid::from_raw(two), Signal::SIGKILL).unwrap();
    let new = h.wait_pid_change("two", 0, two, LONG);
    let line = listen_line(&h, "two.0", new);
    assert!(
        line.starts_with(&format!("listen LISTEN_PID={new} pid={new} LISTEN_FDS=2 ")),
        "{line}"
    );
    until_all_answer(p2, &[new], 1, LONG);
    match get_unix(&sock) {
        Ok((200, body)) => assert_eq!(body_pid(&body), Some(new), "{body:?}"),
        other => panic!("the unix socket did not answer after a restart: {other:?}"),
    }
    assert!(
        !h.lines()
            .iter()
            .any(|l| l.contains("LISTEN_PID is not our pid")),
        "an instance refused the sockets"
    );
}

#[test]
fn a_listen_address_in_use_is_a_located_config_error() {
    let mut h = Harness::new();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let sock = h.path("busy.sock");
    let _live = UnixListener::bind(&sock).unwrap();
    let unix = quote(&format!("unix:{}", sock.display()));
    let tcp = format!("\"tcp://127.0.0.1:{port}\"");
    let text = format!(
        "[apps.web]\ncommand = {}\nlisten = [{tcp}, {unix}]\n",
        app_cmd(&["--serve"])
    );
    let config = h.write_config("eco.toml", &text);
    // Located at the element: line 3, the column of its opening quote.
    let col_tcp = "listen = [".len() + 1;
    let col_unix = col_tcp + tcp.len() + ", ".len();
    let want = [
        format!(
            "eco.toml:3:{col_tcp}: apps.web.listen[0]: cannot listen on \
             tcp://127.0.0.1:{port}: address already in use"
        ),
        format!(
            "eco.toml:3:{col_unix}: apps.web.listen[1]: cannot listen on \
             unix:{}: address already in use",
            sock.display()
        ),
    ];

    let out = Command::new(supervise_bin())
        .args(["check", "eco.toml"])
        .current_dir(h.dir())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for want in &want {
        assert!(
            stderr.contains(want.as_str()),
            "expected {want:?} in:\n{stderr}"
        );
    }

    // Starting refuses the file the same way, and starts nothing.
    h.start(&config);
    let status = h.wait_exit(LONG);
    assert_eq!(status.code(), Some(1));
    let stderr = h.stderr_lines().join("\n");
    for want in &want {
        assert!(
            stderr.contains(want.as_str()),
            "expected {want:?} in:\n{stderr}"
        );
    }
    assert_eq!(h.count_events(|t| t.contains(" started (pid ")), 0);
    // The holders are untouched.
    assert!(sock.exists());
    TcpStream::connect(("127.0.0.1", port)).expect("the test's listener still listens");
}

#[test]
fn a_listen_address_in_use_on_reload_changes_nothing() {
    let mut h = Harness::new();
    let port = free_port();
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let text = |listen: &str, v: &str| {
        format!(
            "[apps.web]\ncommand = {}\nlisten = [{listen}]\nenv = {{ V = \"{v}\" }}\n",
            app_cmd(&["--pid-dir", h.pids(), "--serve"])
        )
    };
    let v1 = text(&format!("\"tcp://127.0.0.1:{port}\""), "1");
    let v2 = text(
        &format!("\"tcp://127.0.0.1:{port}\", \"tcp://127.0.0.1:{busy_port}\""),
        "2",
    );
    let config = h.write_config("eco.toml", &v1);
    h.start(&config);
    let old = h.wait_pid("web", 0);
    until_all_answer(port, &[old], 1, LONG);

    fs::write(&config, &v2).unwrap();
    let error = h.wait_for_event(|t| t.starts_with("config error: "), LONG);
    let col = "listen = [".len() + format!("\"tcp://127.0.0.1:{port}\", ").len() + 1;
    let located = format!(
        "{}:3:{col}: apps.web.listen[1]: cannot listen on tcp://127.0.0.1:{busy_port}: ",
        config.display()
    );
    assert!(
        error.contains(&located) && error.ends_with("address already in use"),
        "expected {located:?}... in {error:?}"
    );
    h.wait_for_event(
        |t| t == "the new version is refused; the running apps are left as they are",
        LONG,
    );
    // Nothing changed: same pid, still serving on the old address, nothing started.
    until_all_answer(port, &[old], 10, LONG);
    assert!(alive(old));
    assert_eq!(h.starts("web", 0), vec![old]);
    assert_eq!(started_pids(&h, "web.0"), vec![old]);
    TcpStream::connect(("127.0.0.1", busy_port)).expect("the test's listener still listens");
}

#[test]
fn connections_are_never_refused_while_instances_restart() {
    let mut h = Harness::new();
    let port = free_port();
    let config = h.write_config(
        "eco.toml",
        &format!(
            "[apps.web]\ncommand = {}\ninstances = 2\nlisten = [\"tcp://127.0.0.1:{port}\"]\n\
             restart_delay = \"50ms\"\nbackoff_max = \"100ms\"\nmax_restarts = 0\n",
            app_cmd(&["--pid-dir", h.pids(), "--serve"])
        ),
    );
    h.start(&config);
    let mut pids = vec![h.wait_pid("web", 0), h.wait_pid("web", 1)];
    until_all_answer(port, &pids, 2, LONG);

    // One client making short-lived requests, one at a time, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        thread::spawn(move || {
            let (mut ok, mut refused, mut broken) = (0usize, Vec::new(), Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match get_tcp(port) {
                    Ok((200, _)) => ok += 1,
                    Ok(other) => broken.push(format!("{other:?}")),
                    Err(Failure::Connect(e)) => refused.push(e),
                    Err(Failure::Exchange(e)) => broken.push(e),
                }
            }
            (ok, refused, broken)
        })
    };
    // For ~2 s: kill -9 one instance (every third round both), wait for its successor.
    let began = Instant::now();
    let mut killed = 0;
    let mut round = 0;
    while began.elapsed() < Duration::from_secs(2) {
        let victims: Vec<u32> = match round % 3 {
            0 => vec![0],
            1 => vec![1],
            _ => vec![0, 1],
        };
        for &i in &victims {
            kill(Pid::from_raw(pids[i as usize]), Signal::SIGKILL).unwrap();
            killed += 1;
        }
        for &i in &victims {
            pids[i as usize] = h.wait_pid_change("web", i, pids[i as usize], LONG);
        }
        round += 1;
    }
    // Let the client go on a little with the last successors.
    until_all_answer(port, &pids, 1, LONG);
    stop.store(true, Ordering::SeqCst);
    let (ok, refused, broken) = client.join().unwrap();
    eprintln!(
        "kill -9 loop: {killed} instances killed in {round} rounds, {ok} requests served, \
         {} refused, {} broken {:?}",
        refused.len(),
        broken.len(),
        broken.iter().collect::<BTreeSet<_>>()
    );
    assert!(refused.is_empty(), "refused connections: {refused:?}");
    // A request the killed instance had already accepted dies with it (at most one per
    // kill: the client has one request in flight); none may be lost otherwise.
    assert!(
        broken.len() <= killed,
        "{} broken requests for {killed} kills: {broken:?}",
        broken.len()
    );
    assert!(ok >= 20, "only {ok} requests served");
    assert!(round >= 3, "only {round} rounds");
}

#[test]
fn gunicorn_accepts_the_socket_by_socket_activation() {
    let probe = Command::new("python3")
        .args(["-c", "import sys, gunicorn; print(sys.executable)"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let python = match probe {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        _ => {
            eprintln!("note: skipping the gunicorn test, `python3 -c \"import gunicorn\"` failed");
            return;
        }
    };
    let mut h = Harness::new();
    let port = free_port();
    h.write_file(
        "hello.py",
        "import os\n\n\ndef app(environ, start_response):\n    \
         body = ('pid=%d\\n' % os.getpid()).encode()\n    \
         start_response('200 OK', [('Content-Type', 'text/plain'), \
         ('Content-Length', str(len(body)))])\n    return [body]\n",
    );
    // No --bind: gunicorn takes the sockets only when LISTEN_PID is its own pid.
    let config = h.write_config(
        "eco.toml",
        &format!(
            // HOME in the test folder: gunicorn >= 25 puts its control socket there.
            "[apps.py]\ncommand = {}\nlisten = [\"tcp://127.0.0.1:{port}\"]\nstop_timeout = \"5s\"\n\
             env = {{ HOME = \"{home}\" }}\n",
            serde_json::to_string(&[
                python.as_str(),
                "-m",
                "gunicorn",
                "--workers",
                "2",
                "hello:app"
            ])
            .unwrap(),
            home = h.path("").display()
        ),
    );
    h.start(&config);
    let leader = started_pid(&h.wait_for_event(|t| t.starts_with("py.0 started (pid "), LONG));
    // gunicorn starts slowly on a busy machine; connections wait in the backlog.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut workers = BTreeSet::new();
    let (mut answered, mut last_failure) = (0, None);
    while answered < 10 && Instant::now() < deadline {
        match get_tcp(port) {
            Ok((200, body)) => {
                answered += 1;
                workers.insert(body_pid(&body).unwrap_or_else(|| panic!("body {body:?}")));
            }
            other => last_failure = Some(format!("{other:?}")),
        }
    }
    assert_eq!(
        answered, 10,
        "gunicorn did not answer; last failure: {last_failure:?}"
    );
    for &pid in &workers {
        assert!(
            descendants(leader).contains(&pid),
            "pid {pid} is not a gunicorn worker under {leader}"
        );
    }
    let lines = h.lines().join("\n");
    assert!(
        lines.contains(&format!("Listening at: http://127.0.0.1:{port}")),
        "gunicorn did not say it listens on the passed socket:\n{lines}"
    );
}
