//! sd_notify to supervise's own parent (SPEC section 7, issue 12 item 5): a test socket
//! stands in for systemd and receives READY=1 once every app is first ready, STATUS=
//! summaries, RELOADING=1 with MONOTONIC_USEC then READY=1 around a reload, STOPPING=1
//! at shutdown, WATCHDOG=1 only when WATCHDOG_USEC asks; the apps never see supervise's
//! own NOTIFY_SOCKET. Path and abstract sockets.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::*;

/// Receives the datagrams on a thread-free socket with a read timeout.
struct Parent {
    socket: UnixDatagram,
    got: Vec<String>,
}

impl Parent {
    fn new(socket: UnixDatagram) -> Parent {
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Parent {
            socket,
            got: Vec::new(),
        }
    }

    /// Read datagrams until one satisfies `pred` (returned), within LONG.
    #[track_caller]
    fn until(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LONG;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.got.push(text.clone());
                if pred(&text) {
                    return text;
                }
            }
        }
        panic!("no such datagram; got so far: {:#?}", self.got);
    }

    /// Everything but the watchdog keep-alives, in order.
    fn messages(&self) -> Vec<&str> {
        self.got
            .iter()
            .map(String::as_str)
            .filter(|m| *m != "WATCHDOG=1")
            .collect()
    }
}

fn monotonic_usec() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    Duration::from(t).as_micros() as u64
}

/// web gets ready when the test removes its `not-ready` file; worker prints the
/// NOTIFY_SOCKET it sees.
fn ecosystem(h: &mut Harness, app_port: u16, greeting: &str) -> std::path::PathBuf {
    let gate = h.path("not-ready");
    let web = app_cmd(&[
        "--serve-own",
        "--port",
        &app_port.to_string(),
        "--unhealthy-file",
        gate.to_str().unwrap(),
    ]);
    let worker = app_cmd(&["--print-env", "--var", "NOTIFY_SOCKET", "--var", "GREETING"]);
    let text = format!(
        r#"
[apps.web]
command = {web}
ready = {{ http = "http://127.0.0.1:{app_port}/" }}

[apps.worker]
command = {worker}
env = {{ GREETING = "{greeting}" }}
"#
    );
    h.write_config("eco.toml", &text)
}

#[test]
fn the_parent_hears_ready_reloading_and_stopping_in_order() {
    let mut h = Harness::new();
    let path = h.path("parent.sock");
    let mut parent = Parent::new(UnixDatagram::bind(&path).unwrap());
    std::fs::write(h.path("not-ready"), "").unwrap();
    let app_port = free_port();
    let config = ecosystem(&mut h, app_port, "hello");
    h.set_env("NOTIFY_SOCKET", path.to_str().unwrap());
    h.set_env("WATCHDOG_USEC", "200000");
    h.start(&config);

    let status = parent.until(|m| m.starts_with("STATUS=") && m.contains("web.0 starting"));
    assert!(status.contains("1/2 ready"), "{status}");
    h.wait_for_output("worker.0", |l| l == "NOTIFY_SOCKET=<unset>", LONG);
    std::fs::remove_file(h.path("not-ready")).unwrap();
    assert_eq!(
        parent.until(|m| m.starts_with("READY=1")),
        "READY=1\nSTATUS=2/2 ready"
    );

    // A reload that replaces the worker: RELOADING first, READY when converged.
    let before = monotonic_usec();
    ecosystem(&mut h, app_port, "bonjour");
    let reloading = parent.until(|m| m.starts_with("RELOADING=1"));
    let usec: u64 = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("{reloading:?}"))
        .parse()
        .unwrap();
    assert!(
        usec >= before && usec <= monotonic_usec(),
        "CLOCK_MONOTONIC"
    );
    h.wait_for_output("worker.0", |l| l == "GREETING=bonjour", LONG);
    parent.until(|m| m.starts_with("READY=1"));

    h.send_signal(Signal::SIGTERM);
    parent.until(|m| m.starts_with("STOPPING=1"));
    assert_eq!(h.wait_exit(LONG).code(), Some(0));

    let messages = parent.messages();
    let position = |prefix: &str| {
        messages
            .iter()
            .position(|m| m.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix} missing: {messages:#?}"))
    };
    let first_ready = position("READY=1");
    let reloading = position("RELOADING=1");
    let stopping = position("STOPPING=1");
    assert!(
        first_ready < reloading && reloading < stopping,
        "{messages:#?}"
    );
    let readies = messages.iter().filter(|m| m.starts_with("READY=1")).count();
    assert_eq!(
        readies, 2,
        "once at start, once after the reload: {messages:#?}"
    );
    assert!(
        messages[..first_ready]
            .iter()
            .all(|m| m.starts_with("STATUS=") && !m.contains("2/2")),
        "only progress before READY: {messages:#?}"
    );
    let watchdogs = parent.got.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(watchdogs >= 2, "WATCHDOG=1 every 100 ms: {watchdogs}");
}

#[test]
fn an_abstract_socket_and_no_watchdog_unless_asked() {
    let mut h = Harness::new();
    let name = format!("supervise-test-parent-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let mut parent = Parent::new(UnixDatagram::bind_addr(&addr).unwrap());
    let config = Ecosystem::new()
        .app("only", &["--ready-line"])
        .write(&mut h);
    h.set_env("NOTIFY_SOCKET", &format!("@{name}"));
    h.start(&config);
    assert_eq!(
        parent.until(|m| m.starts_with("READY=1")),
        "READY=1\nSTATUS=1/1 ready"
    );
    h.send_signal(Signal::SIGTERM);
    parent.until(|m| m.starts_with("STOPPING=1"));
    assert_eq!(h.wait_exit(LONG).code(), Some(0));
    assert!(
        !parent.got.iter().any(|m| m.contains("WATCHDOG")),
        "no WATCHDOG_USEC, no keep-alive: {:?}",
        parent.got
    );
}
