//! TCP and HTTP checks (`ready = { tcp }`, `{ http }`, and `health`) run off the event loop.
//!
//! A small pool of worker threads runs the probes; each result goes back over a channel and
//! wakes the loop through its `mio::Waker`. The pool grows on demand (a probe never waits
//! for a busy worker while fewer than [`MAX_WORKERS`] exist), and idle workers sleep on a
//! condition variable: no timers, no polling. `exec` checks are not here: the loop spawns
//! them as children.
//!
//! Error texts start with the target: `127.0.0.1:3000: connection refused`,
//! `http://127.0.0.1:3000/health: status 503`, `http://...: timed out after 2s`.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

pub type ProbeId = u64;

/// Most worker threads; probes beyond that wait in the queue.
pub const MAX_WORKERS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeKind {
    /// `host:port` (`[::1]:3000` for IPv6): success when a connection is established.
    Tcp(String),
    /// `http://host[:port]/path`: success on a 2xx status.
    Http(String),
}

pub type ProbeResult = (ProbeId, Result<(), String>);

struct Job {
    id: ProbeId,
    kind: ProbeKind,
    timeout: Duration,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Workers waiting on the condvar (including ones notified but not yet running).
    idle: usize,
    workers: usize,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Prober {
    shared: Arc<Shared>,
    tx: Sender<ProbeResult>,
    rx: Receiver<ProbeResult>,
    waker: Arc<mio::Waker>,
}

impl Prober {
    /// No thread is started until the first probe.
    pub fn start(waker: Arc<mio::Waker>) -> Prober {
        let (tx, rx) = mpsc::channel();
        Prober {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
            }),
            tx,
            rx,
            waker,
        }
    }

    /// Queue a probe; its result comes back from [`Prober::results`] within about `timeout`
    /// (name resolution aside: `getaddrinfo` cannot be interrupted). Never blocks.
    pub fn submit(&self, id: ProbeId, kind: ProbeKind, timeout: Duration) {
        let spawn = {
            let mut st = self.shared.lock();
            st.queue.push_back(Job { id, kind, timeout });
            // Every idle worker takes one queued job; start one more if they can't cover all.
            let spawn = st.queue.len() > st.idle && st.workers < MAX_WORKERS;
            if spawn {
                st.workers += 1;
            }
            self.shared.wake.notify_one();
            spawn
        };
        if spawn {
            self.spawn_worker();
        }
    }

    /// Every result ready now; never blocks.
    pub fn results(&self) -> Vec<ProbeResult> {
        self.rx.try_iter().collect()
    }

    fn spawn_worker(&self) {
        let (shared, tx, waker) = (self.shared.clone(), self.tx.clone(), self.waker.clone());
        let spawned = thread::Builder::new()
            .name("supervise-probe".into())
            .spawn(move || worker(&shared, &tx, &waker));
        if let Err(e) = spawned {
            log::error!("cannot start a probe thread: {e}");
            let mut st = self.shared.lock();
            st.workers -= 1;
            if st.workers == 0 {
                // Nobody will run the queue: fail it rather than leave it hanging.
                for job in st.queue.drain(..) {
                    let _ = self
                        .tx
                        .send((job.id, Err(format!("cannot start a probe thread: {e}"))));
                }
                let _ = self.waker.wake();
            }
        }
    }
}

impl Drop for Prober {
    /// Workers finish the probe they are running (bounded by its timeout) and exit; queued
    /// probes are dropped.
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.shutdown = true;
        st.queue.clear();
        self.shared.wake.notify_all();
    }
}

fn worker(shared: &Shared, tx: &Sender<ProbeResult>, waker: &mio::Waker) {
    loop {
        let job = {
            let mut st = shared.lock();
            loop {
                if st.shutdown {
                    return;
                }
                if let Some(job) = st.queue.pop_front() {
                    break job;
                }
                st.idle += 1;
                st = shared.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                st.idle -= 1;
            }
        };
        let deadline = Instant::now() + job.timeout;
        let (result, leftover) = run(&job.kind, job.timeout, deadline);
        if tx.send((job.id, result)).is_err() {
            return; // the Prober is gone
        }
        if let Err(e) = waker.wake() {
            log::warn!("probe: cannot wake the event loop: {e}");
        }
        if let Some(stream) = leftover {
            drain(stream, deadline);
        }
    }
}

/// Run one probe. An HTTP probe also returns its connection, to be drained after the
/// result is sent (closing with unread data would reset the connection on the app).
fn run(
    kind: &ProbeKind,
    timeout: Duration,
    deadline: Instant,
) -> (Result<(), String>, Option<TcpStream>) {
    match kind {
        ProbeKind::Tcp(target) => {
            let r = connect(target, timeout, deadline).map(drop);
            (r.map_err(|e| format!("{target}: {e}")), None)
        }
        ProbeKind::Http(url) => match http_get(url, timeout, deadline) {
            Ok((status, stream)) if (200..300).contains(&status) => (Ok(()), Some(stream)),
            Ok((status, stream)) => (Err(format!("{url}: status {status}")), Some(stream)),
            Err(e) => (Err(format!("{url}: {e}")), None),
        },
    }
}

fn timed_out(timeout: Duration) -> String {
    format!("timed out after {}", humantime::format_duration(timeout))
}

fn io_text(e: &io::Error, timeout: Duration) -> String {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => timed_out(timeout),
        _ => match e.raw_os_error() {
            Some(code) => {
                let desc = nix::errno::Errno::from_raw(code).desc();
                let mut chars = desc.chars();
                match chars.next() {
                    Some(c) => c.to_lowercase().chain(chars).collect(),
                    None => e.to_string(),
                }
            }
            None => e.to_string(),
        },
    }
}

fn remaining(deadline: Instant, timeout: Duration) -> Result<Duration, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(timed_out(timeout))
    } else {
        Ok(left)
    }
}

/// Resolve `target` (`host:port`) and connect to the first address that answers.
fn connect(target: &str, timeout: Duration, deadline: Instant) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = target
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .collect();
    let mut last = "cannot resolve: no address".to_string();
    for addr in addrs {
        let left = remaining(deadline, timeout)?;
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => return Ok(s),
            Err(e) => last = io_text(&e, timeout),
        }
    }
    Err(last)
}

/// The parts of an `http://` URL a GET needs.
#[derive(Debug, PartialEq)]
struct HttpTarget {
    /// `host:port` to connect to.
    connect: String,
    /// The `Host` header: the authority as written.
    host: String,
    /// Path and query, at least `/`.
    path: String,
}

fn parse_url(url: &str) -> Result<HttpTarget, String> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &url[7..]
    } else if lower.starts_with("https://") {
        return Err("https is not supported".into());
    } else {
        return Err("expected an http:// URL".into());
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if authority.is_empty() {
        return Err("no host in the URL".into());
    }
    let path = tail.split('#').next().unwrap_or("");
    let path = match path {
        "" => "/".to_string(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_string(),
    };
    let has_port = match authority.rfind(']') {
        Some(close) => authority[close..].starts_with("]:"),
        None => authority.contains(':'),
    };
    let connect = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok(HttpTarget {
        connect,
        host: authority.to_string(),
        path,
    })
}

/// GET `url`, read the status line; return the status code and the open connection.
fn http_get(url: &str, timeout: Duration, deadline: Instant) -> Result<(u16, TcpStream), String> {
    let target = parse_url(url)?;
    let mut stream = connect(&target.connect, timeout, deadline)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: supervise\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        target.path, target.host
    );
    let io = |e: io::Error| io_text(&e, timeout);
    stream
        .set_write_timeout(Some(remaining(deadline, timeout)?))
        .map_err(io)?;
    stream.write_all(request.as_bytes()).map_err(io)?;

    let mut head = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    while !head.contains(&b'\n') {
        if head.len() > 8192 {
            return Err("status line too long".into());
        }
        stream
            .set_read_timeout(Some(remaining(deadline, timeout)?))
            .map_err(io)?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_text(&e, timeout)),
        }
    }
    if head.is_empty() {
        return Err("connection closed without a response".into());
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/") && code.len() == 3 => {
            let status = code
                .parse()
                .map_err(|_| "not an HTTP response".to_string())?;
            Ok((status, stream))
        }
        _ => Err("not an HTTP response".into()),
    }
}

/// Read what the server still sends (bounded by the deadline and 64 KiB), then close.
fn drain(mut stream: TcpStream, deadline: Instant) {
    let _ = stream.shutdown(Shutdown::Write);
    let mut buf = [0u8; 4096];
    let mut total = 0;
    while total < 64 * 1024 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => total += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Token};
    use std::io::BufRead;
    use std::net::TcpListener;

    fn setup() -> (Poll, Prober) {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), Token(7)).unwrap());
        (poll, Prober::start(waker))
    }

    /// Wait (through the waker, as the loop would) until `n` results arrived.
    fn wait(poll: &mut Poll, prober: &Prober, n: usize) -> Vec<ProbeResult> {
        let mut events = Events::with_capacity(8);
        let mut out = prober.results();
        let start = Instant::now();
        while out.len() < n {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no result: {out:?}"
            );
            poll.poll(&mut events, Some(Duration::from_secs(1)))
                .unwrap();
            out.extend(prober.results());
        }
        out
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// Serve one request per entry of `statuses` with that status; returns the port and
    /// a handle yielding the Host headers seen.
    fn http_server(statuses: Vec<u16>) -> (u16, thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = thread::spawn(move || {
            let mut hosts = Vec::new();
            for status in statuses {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                loop {
                    line.clear();
                    reader.read_line(&mut line).unwrap();
                    if let Some(h) = line.strip_prefix("Host: ") {
                        hosts.push(h.trim().to_string());
                    }
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                }
                let mut stream = stream;
                write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                )
                .unwrap();
            }
            hosts
        });
        (port, handle)
    }

    #[test]
    fn tcp_success_and_refused() {
        let (mut poll, prober) = setup();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let closed = free_port();
        let t = Duration::from_secs(2);
        prober.submit(1, ProbeKind::Tcp(format!("127.0.0.1:{port}")), t);
        prober.submit(2, ProbeKind::Tcp(format!("127.0.0.1:{closed}")), t);
        let mut got = wait(&mut poll, &prober, 2);
        got.sort_by_key(|r| r.0);
        assert_eq!(got[0], (1, Ok(())));
        assert_eq!(
            got[1],
            (2, Err(format!("127.0.0.1:{closed}: connection refused")))
        );
        prober.submit(3, ProbeKind::Tcp("no-port-here".into()), t);
        let got = wait(&mut poll, &prober, 1);
        assert!(got[0].1.as_ref().unwrap_err().contains("cannot resolve"));
    }

    #[test]
    fn http_200_and_503() {
        let (mut poll, prober) = setup();
        let (port, server) = http_server(vec![200, 503]);
        let t = Duration::from_secs(2);
        let url = format!("http://127.0.0.1:{port}/health");
        prober.submit(1, ProbeKind::Http(url.clone()), t);
        assert_eq!(wait(&mut poll, &prober, 1), vec![(1, Ok(()))]);
        prober.submit(2, ProbeKind::Http(url.clone()), t);
        assert_eq!(
            wait(&mut poll, &prober, 1),
            vec![(2, Err(format!("{url}: status 503")))]
        );
        let hosts = server.join().unwrap();
        assert_eq!(hosts, vec![format!("127.0.0.1:{port}"); 2]);
    }

    #[test]
    fn http_refused_and_https() {
        let (mut poll, prober) = setup();
        let port = free_port();
        let t = Duration::from_secs(2);
        let url = format!("http://127.0.0.1:{port}/");
        prober.submit(1, ProbeKind::Http(url.clone()), t);
        prober.submit(2, ProbeKind::Http("https://127.0.0.1/".into()), t);
        let mut got = wait(&mut poll, &prober, 2);
        got.sort_by_key(|r| r.0);
        assert_eq!(got[0].1, Err(format!("{url}: connection refused")));
        assert_eq!(
            got[1].1,
            Err("https://127.0.0.1/: https is not supported".into())
        );
    }

    #[test]
    fn timeout_and_concurrency() {
        let (mut poll, prober) = setup();
        // Accepts, then never answers.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let _server = thread::spawn(move || {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept() {
                held.push(s);
                if held.len() == 2 {
                    thread::sleep(Duration::from_secs(3));
                    return;
                }
            }
        });
        let fast = TcpListener::bind("127.0.0.1:0").unwrap();
        let fast_port = fast.local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/slow");
        let start = Instant::now();
        prober.submit(1, ProbeKind::Http(url.clone()), Duration::from_millis(200));
        prober.submit(2, ProbeKind::Http(url.clone()), Duration::from_secs(1));
        prober.submit(
            3,
            ProbeKind::Tcp(format!("127.0.0.1:{fast_port}")),
            Duration::from_secs(1),
        );
        let first = wait(&mut poll, &prober, 1);
        assert_eq!(first[0], (3, Ok(())), "a slow probe does not delay others");
        let mut got = wait(&mut poll, &prober, 1);
        assert_eq!(
            got.remove(0),
            (1, Err(format!("{url}: timed out after 200ms")))
        );
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(190) && elapsed < Duration::from_millis(1000),
            "{elapsed:?}"
        );
        let got = wait(&mut poll, &prober, 1);
        assert_eq!(got[0], (2, Err(format!("{url}: timed out after 1s"))));
    }

    #[test]
    fn url_parsing() {
        let t = parse_url("http://localhost:3000/health?x=1#frag").unwrap();
        assert_eq!(
            t,
            HttpTarget {
                connect: "localhost:3000".into(),
                host: "localhost:3000".into(),
                path: "/health?x=1".into(),
            }
        );
        let t = parse_url("http://example.com").unwrap();
        assert_eq!(
            (t.connect.as_str(), t.path.as_str()),
            ("example.com:80", "/")
        );
        let t = parse_url("HTTP://[::1]?q").unwrap();
        assert_eq!((t.connect.as_str(), t.path.as_str()), ("[::1]:80", "/?q"));
        assert_eq!(
            parse_url("http://[::1]:8080/").unwrap().connect,
            "[::1]:8080"
        );
        assert_eq!(
            parse_url("https://x/").unwrap_err(),
            "https is not supported"
        );
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("http:///x").is_err());
    }

    #[test]
    fn idle_prober_starts_no_thread() {
        let (_poll, prober) = setup();
        assert_eq!(prober.shared.lock().workers, 0);
        assert!(prober.results().is_empty());
    }
}
