//! The HTTP endpoint under a low open-file limit (issue 10, SPEC section 7): silent
//! connections (a port scanner, a stuck scraper) fill what HTTP clients may have, and no
//! more. Newcomers get a 503 at once, the control socket's few still get in, a kill -9 is
//! respawned while they sit there, supervise sleeps, and everything recovers when they
//! leave. (Out of descriptors altogether: `control_pressure_fds`.)

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::control_pressure_fds::{
    ask, error_of, fds_below, respawn, start_web, FOLLOW, RESPAWN_BOUND,
};
use super::http::wait_http;
use crate::support::*;

/// supervise's open-file limit here (about 48 taken at start, 32 of them the floor
/// below which children's sockets go): a reserve of 12 (an eighth), and 4 more kept for
/// the control socket's first few clients.
const LIMIT: u64 = 96;
const KEPT: u64 = 12 + 4;

pub fn http_settings(port: u16) -> Ecosystem {
    Ecosystem::new()
        .line("[settings]")
        .line(&format!("http = \"127.0.0.1:{port}\""))
}

/// `n` connections that never send a byte.
pub fn silent(port: u16, n: u64) -> Vec<TcpStream> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    (0..n)
        .map(|_| TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT).expect("connect to http"))
        .collect()
}

/// The answer to a newcomer's GET /livez: (status, head, body). supervise accepts
/// connections in order, so it comes after every connection made before it was taken
/// or turned away. Read as HTTP clients do, up to Content-Length: a client turned away
/// may find the connection reset once it has its answer (supervise closed it before
/// the request came), which is no failure.
#[track_caller]
pub fn newcomer(port: u16) -> (u16, String, String) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut conn = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT).expect("connect");
    conn.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    let _ = conn.write_all(b"GET /livez HTTP/1.1\r\nHost: test\r\n\r\n");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut why = String::from("connection closed");
    let answer = loop {
        if let Some(answer) = complete(&got) {
            break Some(answer);
        }
        match read_once(&mut conn, &mut buf) {
            Ok(0) => break None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => {
                why = e.to_string();
                break None;
            }
        }
    };
    answer.unwrap_or_else(|| {
        panic!(
            "no whole answer ({why}), got {:?}",
            String::from_utf8_lossy(&got)
        )
    })
}

/// A whole response in `got`: its head and Content-Length bytes of body.
fn complete(got: &[u8]) -> Option<(u16, String, String)> {
    let text = std::str::from_utf8(got).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))?
        .parse()
        .ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    (body.len() >= length).then(|| (status, head.to_string(), body.to_string()))
}

#[track_caller]
fn assert_refused(port: u16, why: &str) {
    let (status, head, body) = newcomer(port);
    assert_eq!(status, 503, "{head}\n\n{body}");
    assert!(
        head.starts_with("HTTP/1.1 503 Service Unavailable"),
        "{head}"
    );
    assert!(head.contains("Connection: close"), "{head}");
    assert!(body.starts_with(why), "{body}");
}

#[test]
fn silent_http_clients_leave_supervision_its_descriptors() {
    let mut h = Harness::new();
    let port = free_port();
    let sock = start_web(&mut h, http_settings(port), LIMIT);
    wait_http(port, "/livez", 200, |_| true);
    let sup = h.supervise_pid();
    let before = fds_below(sup, LIMIT);

    // As many silent connections as supervise has descriptors: HTTP takes what it may,
    // the rest and every newcomer are answered 503 and closed.
    let filled = Instant::now();
    let held = silent(port, LIMIT);
    assert_refused(port, "supervise keeps its last file descriptors");
    // (The newcomer's own descriptor is closed just after its answer.)
    let mut full = 0;
    let kept = poll_until(
        || {
            full = fds_below(sup, LIMIT);
            full as u64 <= LIMIT - KEPT
        },
        LONG,
    );
    eprintln!("limit {LIMIT}: {before} fds before, {full} with silent HTTP clients");
    assert!(kept, "supervise holds {full} of {LIMIT} descriptors");
    for _ in 0..20 {
        assert_refused(port, "supervise keeps its last file descriptors");
    }
    // The control socket's first few clients still get in (followers, never evicted),
    // and the next is turned away: HTTP left them their room, and no more.
    let followers: Vec<_> = (0..4)
        .map(|n| {
            let (conn, line) = ask(&sock, FOLLOW);
            assert_eq!(error_of(&line), None, "follower {n}: {line}");
            conn
        })
        .collect();
    let (_, line) = ask(&sock, FOLLOW);
    assert!(
        error_of(&line).is_some_and(|e| e.starts_with("too many clients")),
        "{line}"
    );
    // Supervision has its descriptors: a kill -9 is respawned, three times.
    for n in 1..=3 {
        let took = respawn(&h);
        eprintln!("respawn {n} beside silent HTTP clients and 4 followers: {took:?}");
        assert!(took < RESPAWN_BOUND, "respawn {n} took {took:?}");
    }
    assert_eq!(h.count_events(|t| t.contains("failed to start")), 0);

    // Until the silent clients are dropped (after 10 s of silence), supervise sleeps.
    let cpu0 = cpu_ticks(sup);
    let t0 = Instant::now();
    let mut first = &held[0];
    first.set_read_timeout(Some(LONG * 2)).unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(
        read_once(&mut first, &mut byte).expect("dropped within 20 s"),
        0
    );
    let (cpu, wall) = (cpu_ticks(sup) - cpu0, t0.elapsed());
    eprintln!("{cpu} ticks of CPU in {wall:?} until the silent clients were dropped ({:?} after they came)", filled.elapsed());
    assert!(
        Duration::from_millis(cpu * 10) < wall / 10,
        "{cpu} ticks of CPU in {wall:?}"
    );
    // They are gone: probes are answered, the descriptors are back.
    wait_http(port, "/livez", 200, |b| b == "ok\n");
    h.wait_for(|| fds_below(sup, LIMIT) <= before + followers.len(), LONG);
    drop((held, followers));

    // Again, and this time they leave by themselves: all is well at once.
    let held = silent(port, LIMIT);
    assert_refused(port, "supervise keeps its last file descriptors");
    drop(held);
    wait_http(port, "/livez", 200, |b| b == "ok\n");
    let out = h.cli(&["status"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let took = respawn(&h);
    assert!(took < RESPAWN_BOUND, "respawn took {took:?}");
    assert!(!h.has_exited());
}
