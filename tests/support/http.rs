//! Plain HTTP/1.0 requests to what the test app serves (`--serve` answers `pid=<pid>`), so
//! each response says which instance took the connection.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long one client request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One `read`, again while it fails with EINTR. A socket read with a timeout
/// (SO_RCVTIMEO) is never restarted (signal(7)), and this process gets SIGCHLD at any
/// time: ignored, it still interrupts the read when it arrives while the thread that
/// spawned the child has every signal blocked (inside `Command::spawn`), since it is then
/// queued and handed to another thread (perf's signal_generate shows about 20 such
/// SIGCHLDs per run of the whole suite; the EINTR failed a test 3 times in 10 runs).
pub fn read_once(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// A port that was free a moment ago (bound to 127.0.0.1:0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Why a request failed: the connection itself (refused, unreachable), or the exchange
/// after it was established (reset, closed early, timed out).
#[derive(Debug)]
pub enum Failure {
    Connect(String),
    Exchange(String),
}

/// One HTTP/1.0 GET on an open connection: `(status, body)`.
pub fn exchange(mut conn: impl Read + Write) -> Result<(u16, String), Failure> {
    let fail = |e: std::io::Error| Failure::Exchange(e.to_string());
    conn.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        .map_err(fail)?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response).map_err(fail)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| Failure::Exchange(format!("no complete response: {text:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Failure::Exchange(format!("bad status line: {head:?}")))?;
    Ok((status, body.to_string()))
}

pub fn get_tcp(port: u16) -> Result<(u16, String), Failure> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let conn = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)
        .map_err(|e| Failure::Connect(e.to_string()))?;
    conn.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    conn.set_write_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    exchange(conn)
}

pub fn get_unix(path: &Path) -> Result<(u16, String), Failure> {
    let conn = UnixStream::connect(path).map_err(|e| Failure::Connect(e.to_string()))?;
    conn.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    conn.set_write_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    exchange(conn)
}

/// The pid in a `pid=<pid>` body.
pub fn body_pid(body: &str) -> Option<i32> {
    let digits: String = body
        .strip_prefix("pid=")?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The pid of the instance that answered 200 on `port`, if one did.
pub fn served_by(port: u16) -> Option<i32> {
    match get_tcp(port) {
        Ok((200, body)) => body_pid(&body),
        _ => None,
    }
}

/// Make requests until every pid of `want` has answered (at least `min` requests);
/// returns every pid that answered. Panics on an answer from another pid or after
/// `timeout`.
#[track_caller]
pub fn until_all_answer(port: u16, want: &[i32], min: usize, timeout: Duration) -> Vec<i32> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut requests = 0;
    loop {
        requests += 1;
        match get_tcp(port) {
            Ok((200, body)) => {
                let pid = body_pid(&body).unwrap_or_else(|| panic!("bad body {body:?}"));
                assert!(
                    want.contains(&pid),
                    "pid {pid} answered, not one of {want:?}"
                );
                seen.push(pid);
            }
            other => panic!("request {requests} on port {port} failed: {other:?}"),
        }
        if requests >= min && want.iter().all(|p| seen.contains(p)) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "after {requests} requests in {timeout:?}, only {:?} of {want:?} answered",
            seen.iter().collect::<BTreeSet<_>>()
        );
    }
}
