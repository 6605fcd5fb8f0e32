//! The Node listen adapter (issue 11, SPEC section 6): an unchanged Node app, with a
//! literal port in its source and no LISTEN_FDS code, runs as several instances on one
//! `listen` address, restarts while connections wait in the backlog, and drains on
//! rolling reloads under keep-alive load; with `listen_adapter = false` it fails as it
//! would without supervise's help (so these tests prove the adapter).
//!
//! Real `node` processes; every test is skipped, with a note, when `node` is missing.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::*;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// `node`'s version, or `None` (and a note) when it cannot run here.
fn node_or_skip(test: &str) -> Option<String> {
    let out = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).trim().into()),
        _ => {
            eprintln!("note: skipping {test}: `node --version` failed (node is not installed)");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The app as a PM2 user writes it: a literal port, no signal handler, no LISTEN_FDS.
fn unchanged_app(port: u16) -> String {
    format!(
        "const http = require('http');\n\
         http.createServer((req, res) => {{\n  \
           res.end(`pid=${{process.pid}}\\n`);\n\
         }}).listen({port}, () => console.log(`listening pid=${{process.pid}}`));\n"
    )
}

fn config(port: u16, instances: u32, extra: &str) -> String {
    format!(
        "[apps.web]\ncommand = [\"node\", \"app.js\"]\ninstances = {instances}\n\
         listen = [\"tcp://127.0.0.1:{port}\"]\nstop_timeout = \"20s\"\n{extra}"
    )
}

/// A persistent HTTP/1.1 connection, as a keep-alive client (a browser, a proxy) has.
struct Client {
    port: u16,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    fn new(port: u16) -> Client {
        Client { port, conn: None }
    }

    /// One GET; the pid that answered. Reconnects when the server said
    /// `Connection: close`. Any other end of the exchange is a failure.
    fn get(&mut self) -> Result<i32, String> {
        if self.conn.is_none() {
            let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
            let s = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)
                .map_err(|e| format!("connect: {e}"))?;
            s.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
            self.conn = Some(BufReader::new(s));
        }
        let result = self.exchange();
        if !matches!(result, Ok((_, true))) {
            self.conn = None;
        }
        result.map(|(pid, _)| pid)
    }

    /// `(pid, connection kept)`.
    fn exchange(&mut self) -> Result<(i32, bool), String> {
        let conn = self.conn.as_mut().unwrap();
        conn.get_mut()
            .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            .map_err(|e| format!("write: {e}"))?;
        let mut status = String::new();
        conn.read_line(&mut status)
            .map_err(|e| format!("read: {e}"))?;
        if !status.starts_with("HTTP/1.1 200") {
            return Err(format!("status line {status:?}"));
        }
        let (mut length, mut keep) = (None, true);
        loop {
            let mut line = String::new();
            conn.read_line(&mut line)
                .map_err(|e| format!("read: {e}"))?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse::<usize>().ok(),
                "connection" => keep = !value.trim().eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
        let mut body = vec![0; length.ok_or("no Content-Length")?];
        conn.read_exact(&mut body)
            .map_err(|e| format!("body: {e}"))?;
        let body = String::from_utf8_lossy(&body);
        let pid = body
            .trim()
            .strip_prefix("pid=")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("body {body:?}"))?;
        Ok((pid, keep))
    }
}

/// Every pid `web.N started (pid P)` reported, in order.
fn started(h: &Harness) -> Vec<i32> {
    h.events()
        .iter()
        .filter(|t| t.starts_with("web.") && t.contains(" started (pid "))
        .filter_map(|t| t.rsplit_once("(pid ")?.1.strip_suffix(')')?.parse().ok())
        .collect()
}

/// Wait until `pids` have each printed `listening pid=P` (their listen call returned).
#[track_caller]
fn wait_listening(h: &Harness, pids: &[i32]) {
    for pid in pids {
        let mine = format!("listening pid={pid}");
        h.wait_for_line(|l| l.ends_with(&mine), LONG);
    }
}

#[test]
fn an_unchanged_app_runs_3_instances_on_one_port_and_restarts_behind_the_backlog() {
    if node_or_skip("the unchanged-app test").is_none() {
        return;
    }
    let mut h = Harness::new();
    let port = free_port();
    h.write_file("app.js", &unchanged_app(port));
    // Every run counts as a crash (min_uptime), so a restart waits restart_delay: the
    // successors start well after the requests below were queued.
    let eco = config(
        port,
        3,
        "restart_delay = \"2s\"\nmin_uptime = \"1h\"\nmax_restarts = 0\n",
    );
    let path = h.write_config("ecosystem.toml", &eco);
    h.start(&path);
    h.wait_for(|| started(&h).len() == 3, LONG);
    let first = started(&h);
    wait_listening(&h, &first);

    // Each request served; every instance takes some (the kernel spreads connections).
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + LONG;
    let mut requests = 0;
    while seen.len() < 3 || requests < 30 {
        let pid = Client::new(port)
            .get()
            .expect("a request on the shared port");
        assert!(first.contains(&pid), "{pid} is not one of {first:?}");
        seen.insert(pid);
        requests += 1;
        assert!(Instant::now() < deadline, "only {seen:?} answered");
    }

    // Crash them all; once they are gone, send requests: they wait in the backlog of
    // the socket supervise holds until the restarted instances listen on it again.
    for &pid in &first {
        kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    }
    h.wait_for(|| first.iter().all(|&p| gone(p)), LONG);
    assert_eq!(
        started(&h).len(),
        3,
        "restarted too early: {:?}",
        h.events()
    );
    let clients: Vec<_> = (0..6)
        .map(|_| thread::spawn(move || Client::new(port).get()))
        .collect();
    let answers: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let restarted = started(&h)[3..].to_vec();
    for answer in &answers {
        let pid = answer.as_ref().expect("a request waiting in the backlog");
        assert!(
            restarted.contains(pid),
            "{pid} is not a restarted instance {restarted:?}"
        );
    }
    let failed = h.count_lines(|l| l.contains("EADDRINUSE"));
    assert_eq!(
        failed,
        0,
        "an instance could not listen:\n{}",
        h.lines().join("\n")
    );
}

#[test]
fn with_listen_adapter_false_the_same_app_fails_with_eaddrinuse() {
    if node_or_skip("the listen_adapter = false test").is_none() {
        return;
    }
    let mut h = Harness::new();
    let port = free_port();
    h.write_file("app.js", &unchanged_app(port));
    let eco = config(port, 2, "listen_adapter = false\nmax_restarts = 1\n");
    let path = h.write_config("ecosystem.toml", &eco);

    let check = h.cli(&["check", path.to_str().unwrap()]);
    assert!(check.status.success(), "a warning, not an error: {check:?}");
    let warning = String::from_utf8_lossy(&check.stderr);
    assert!(
        warning.contains("warning: apps.web: listen_adapter = false")
            && warning.contains("2 instances will each try to bind port"),
        "{warning}"
    );

    h.start(&path);
    h.wait_for_line(|l| l.contains("EADDRINUSE"), LONG);
}

#[test]
fn three_rolling_reloads_under_keep_alive_load_lose_no_request() {
    if node_or_skip("the rolling-reload test").is_none() {
        return;
    }
    let mut h = Harness::new();
    let port = free_port();
    h.write_file("app.js", &unchanged_app(port));
    let path = h.write_config("ecosystem.toml", &config(port, 2, ""));
    h.start(&path);
    h.wait_for(|| started(&h).len() == 2, LONG);
    wait_listening(&h, &started(&h));

    // Keep-alive load: 4 connections, each request right after the previous answer.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, served) = (stop.clone(), served.clone());
            thread::spawn(move || {
                let mut client = Client::new(port);
                let mut failures = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match client.get() {
                        Ok(_) => {
                            served.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => failures.push(e),
                    }
                }
                failures
            })
        })
        .collect();
    let wait_served = |more: usize| {
        let goal = served.load(Ordering::SeqCst) + more;
        h.wait_for(|| served.load(Ordering::SeqCst) >= goal, LONG);
    };
    wait_served(50);
    for round in 1..=3 {
        let all = started(&h);
        let old = &all[all.len() - 2..];
        let before = served.load(Ordering::SeqCst);
        let out = h.cli(&["reload", "web"]);
        assert!(out.status.success(), "reload {round}: {out:?}");
        h.wait_for(|| started(&h).len() == all.len() + 2, LONG * 2);
        h.wait_for(|| old.iter().all(|&p| gone(p)), LONG * 2);
        wait_listening(&h, &started(&h)[all.len()..]);
        wait_served(50);
        assert!(served.load(Ordering::SeqCst) > before + 50);
    }
    stop.store(true, Ordering::SeqCst);
    let failures: Vec<String> = load.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let total = served.load(Ordering::SeqCst);
    eprintln!(
        "3 rolling reloads under keep-alive load: {total} served, {} failed",
        failures.len()
    );
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    // The old instances drained and died of their stop signal, not of SIGKILL.
    let events = h.events();
    let sigterm = events
        .iter()
        .filter(|t| t.contains("killed by signal SIGTERM"))
        .count();
    assert_eq!(sigterm, 6, "{events:#?}");
    assert!(!events.iter().any(|t| t.contains("SIGKILL")), "{events:#?}");
}

#[test]
fn the_pm2_cluster_example_runs_its_unchanged_app() {
    if node_or_skip("the pm2-cluster example test").is_none() {
        return;
    }
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config-examples/pm2-cluster");
    let mut h = Harness::new();
    // The example as it is, on a free port instead of 3000 (which may be taken here).
    let port = free_port();
    let read = |name: &str| std::fs::read_to_string(example.join(name)).unwrap();
    h.write_file("app.js", &read("app.js"));
    let eco = read("ecosystem.toml")
        .replace("tcp://0.0.0.0:3000", &format!("tcp://127.0.0.1:{port}"))
        .replace(
            "NODE_ENV = \"production\" }",
            &format!("NODE_ENV = \"production\", PORT = \"{port}\" }}"),
        );
    assert!(eco.contains(&format!("PORT = \"{port}\"")), "{eco}");
    let path = h.write_config("ecosystem.toml", &eco);
    let check = h.cli(&["check", path.to_str().unwrap()]);
    assert!(check.status.success(), "{check:?}");
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    h.start(&path);
    h.wait_for(
        || h.count_lines(|l| l.ends_with(&format!("listening on port {port}"))) == 3,
        LONG,
    );
    let mut instances = BTreeSet::new();
    let deadline = Instant::now() + LONG;
    while instances.len() < 3 {
        let body = raw_get(port, "/");
        let json: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
        assert_eq!(json["hello"], "world", "{body}");
        instances.insert(json["instance"].as_str().unwrap().to_string());
        assert!(
            Instant::now() < deadline,
            "only instances {instances:?} answered"
        );
    }
    assert_eq!(instances, ["0", "1", "2"].map(String::from).into());
    assert_eq!(raw_get(port, "/health"), "ok\n");
}

/// The body of one `GET path` on a fresh connection (HTTP/1.0: the server closes it).
fn raw_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

#[test]
fn instances_running_as_another_user_read_the_adapter() {
    if node_or_skip("the user = \"nobody\" adapter test").is_none() {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("note: not root, skipping the user = \"nobody\" adapter test");
        return;
    }
    let mut h = Harness::new();
    // Let nobody read app.js (the test directory is 0700).
    std::fs::set_permissions(h.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();
    h.write_file("app.js", &unchanged_app(port));
    let path = h.write_config("ecosystem.toml", &config(port, 2, "user = \"nobody\"\n"));
    h.start(&path);
    h.wait_for(|| started(&h).len() == 2, LONG);
    let pids = started(&h);
    wait_listening(&h, &pids);
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + LONG;
    while seen.len() < 2 {
        seen.insert(Client::new(port).get().expect("a request"));
        assert!(
            Instant::now() < deadline,
            "only {seen:?} of {pids:?} answered"
        );
    }
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(status.contains("\nUid:\t65534\t"), "{status}");
    }
}
