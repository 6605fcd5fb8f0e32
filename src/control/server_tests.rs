//! Tests of the control server through real sockets and a real mio loop.

use super::*;
use crate::control::client;
use crate::control::protocol::Target;
use crate::control::socket::peer_uid;
use mio::{Events, Poll};
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdStream;
use std::thread;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(7);
const FIRST: usize = 1_000_000;

struct Loop {
    poll: Poll,
    events: Events,
    server: ControlServer,
    /// Every event seen, in order.
    seen: Vec<ServerEvent>,
    /// Loop turns run.
    turns: usize,
}

impl Loop {
    fn new(path: &Path) -> Loop {
        let poll = Poll::new().unwrap();
        let mut server = ControlServer::bind(path).unwrap();
        server.register(poll.registry(), LISTENER, FIRST).unwrap();
        Loop {
            poll,
            events: Events::with_capacity(64),
            server,
            seen: Vec::new(),
            turns: 0,
        }
    }

    /// Run the loop until `done` says so (or panic after 10 s). Requests are
    /// answered by `answer` at once; `None` leaves them unanswered.
    fn run(
        &mut self,
        answer: &mut dyn FnMut(&Request) -> Option<Response>,
        done: &mut dyn FnMut(&Loop) -> bool,
    ) {
        // At least one turn: `done = |_| true` polls once.
        let t0 = Instant::now();
        loop {
            assert!(t0.elapsed() < Duration::from_secs(10), "loop timed out");
            let wait = if self.server.backlog() { 0 } else { 10 };
            self.poll
                .poll(&mut self.events, Some(Duration::from_millis(wait)))
                .unwrap();
            let tokens: Vec<Token> = self.events.iter().map(|e| e.token()).collect();
            let mut out = Vec::new();
            for (k, token) in tokens.into_iter().enumerate() {
                assert!(self.server.owns(token));
                let ev = self.events.iter().nth(k).unwrap();
                out.extend(self.server.handle(self.poll.registry(), token, ev));
            }
            out.extend(self.server.serve(self.poll.registry()));
            self.turns += 1;
            for e in out {
                if let ServerEvent::Request(c, r) = &e {
                    if let Some(resp) = answer(r) {
                        self.server.reply(self.poll.registry(), *c, &resp);
                    }
                }
                self.seen.push(e);
            }
            if done(self) {
                break;
            }
        }
    }

    fn requests(&self) -> usize {
        self.seen
            .iter()
            .filter(|e| matches!(e, ServerEvent::Request(..)))
            .count()
    }
}

fn pong(r: &Request) -> Option<Response> {
    Some(Response::message(format!("pong {}", r.name())))
}

fn read_line(s: &mut BufReader<StdStream>) -> String {
    let mut l = String::new();
    s.read_line(&mut l).unwrap();
    l
}

fn connect(path: &Path) -> BufReader<StdStream> {
    let s = StdStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    BufReader::new(s)
}

#[test]
fn bind_is_private_exclusive_and_replaces_stale() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let server = ControlServer::bind(&path).unwrap();
    let meta = fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.mode() & 0o777, 0o600);
    // No private folder left behind.
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("s.sock")]);

    // A live one is not stolen.
    let e = ControlServer::bind(&path).err().unwrap();
    assert_eq!(
        e,
        format!("another supervise is already running on {}", path.display())
    );

    // remove_file removes only our own file.
    server.remove_file();
    assert!(!path.exists());
    drop(server);

    // A stale one (nobody listens) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = ControlServer::bind(&path).unwrap();
    assert_eq!(fs::symlink_metadata(&path).unwrap().mode() & 0o777, 0o600);
    let other = dir.path().join("other.sock");
    fs::rename(&path, &other).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    server.remove_file(); // not ours any more: left alone
    assert!(path.exists());

    // Not a socket: left alone.
    let file = dir.path().join("file");
    fs::write(&file, "x").unwrap();
    let e = ControlServer::bind(&file).err().unwrap();
    assert!(e.contains("exists and is not a socket"), "{e}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "x");

    // A missing folder: said so.
    let e = ControlServer::bind(&dir.path().join("nope/s.sock"))
        .err()
        .unwrap();
    assert!(e.contains("nope does not exist"), "{e}");
}

#[test]
fn request_and_reply_through_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut lp = Loop::new(&path);
    let p = path.clone();
    let t = thread::spawn(move || {
        client::request(
            &p,
            Request::Restart {
                target: Target::parse("web.1").unwrap(),
            },
            Duration::from_secs(10),
        )
    });
    lp.run(&mut pong, &mut |_| t.is_finished());
    let r = t.join().unwrap().unwrap();
    assert_eq!(r, Response::message("pong restart"));
    assert_eq!(
        lp.seen[0],
        ServerEvent::Request(
            Token(FIRST),
            Request::Restart {
                target: Target::parse("web.1").unwrap()
            }
        )
    );
    // The client closed after its answer: the server forgets it.
    lp.run(&mut pong, &mut |l| l.server.client_count() == 0);
}

#[test]
fn garbage_gets_an_error_and_the_connection_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut lp = Loop::new(&path);
    let mut c = connect(&path);
    c.get_mut()
        .write_all(b"this is not json\n{\"v\":9,\"cmd\":\"status\"}\n")
        .unwrap();
    let mut lines = Vec::new();
    let t = thread::spawn(move || {
        lines.push(read_line(&mut c));
        lines.push(read_line(&mut c));
        c.get_mut()
            .write_all(Request::Status.to_line().as_bytes())
            .unwrap();
        lines.push(read_line(&mut c));
        lines
    });
    lp.run(&mut pong, &mut |_| t.is_finished());
    let lines = t.join().unwrap();
    let r0: Response = serde_json::from_str(&lines[0]).unwrap();
    assert!(
        !r0.ok && r0.error.as_deref().unwrap().starts_with("bad request: "),
        "{r0:?}"
    );
    let r1: Response = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(
        r1.error.as_deref(),
        Some("unsupported protocol version 9 (this supervise speaks 1)")
    );
    let r2: Response = serde_json::from_str(&lines[2]).unwrap();
    assert_eq!(r2, Response::message("pong status"));
    assert_eq!(lp.requests(), 1);
}

#[test]
fn silent_and_partial_clients_delay_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut lp = Loop::new(&path);
    let _silent = StdStream::connect(&path).unwrap();
    let mut partial = StdStream::connect(&path).unwrap();
    partial.write_all(b"{\"v\":1,\"cmd\":").unwrap();
    for _ in 0..3 {
        let p = path.clone();
        let t0 = Instant::now();
        let t =
            thread::spawn(move || client::request(&p, Request::Status, Duration::from_secs(10)));
        lp.run(&mut pong, &mut |_| t.is_finished());
        assert_eq!(t.join().unwrap().unwrap(), Response::message("pong status"));
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
    // The partial one finishes its line later and is served too.
    partial.write_all(b"\"status\"}\n").unwrap();
    let mut r = BufReader::new(partial);
    lp.run(&mut pong, &mut |l| l.requests() == 4);
    let resp: Response = serde_json::from_str(&read_line(&mut r)).unwrap();
    assert_eq!(resp, Response::message("pong status"));
    assert_eq!(lp.server.client_count(), 2);
}

#[test]
fn an_overlong_line_gets_an_error_and_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut lp = Loop::new(&path);
    let mut c = connect(&path);
    let t = thread::spawn(move || {
        let mut big = vec![b'a'; 100 * 1024];
        big.push(b'\n');
        // The server may close before it has read everything: ignore EPIPE.
        let _ = c.get_mut().write_all(&big);
        let first = read_line(&mut c);
        let mut rest = String::new();
        let _ = c.read_line(&mut rest);
        (first, rest)
    });
    lp.run(&mut pong, &mut |_| t.is_finished());
    let (first, rest) = t.join().unwrap();
    let r: Response = serde_json::from_str(&first).unwrap();
    assert_eq!(
        r.error.as_deref(),
        Some("bad request: line longer than 64 KiB; closing the connection")
    );
    assert_eq!(rest, "");
    assert_eq!(lp.server.client_count(), 0);
    assert_eq!(lp.seen, vec![ServerEvent::Gone(Token(FIRST))]);
    // And the server goes on.
    let p = path.clone();
    let t = thread::spawn(move || client::request(&p, Request::Status, Duration::from_secs(10)));
    lp.run(&mut pong, &mut |_| t.is_finished());
    assert!(t.join().unwrap().unwrap().ok);
}

#[test]
fn a_line_of_exactly_the_limit_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut lp = Loop::new(&path);
    let mut c = connect(&path);
    let t = thread::spawn(move || {
        let mut line = Request::Status.to_line().into_bytes();
        line.pop();
        // Pad with blanks inside the object up to the limit.
        let pad = MAX_REQUEST_LINE - line.len();
        line.splice(1..1, std::iter::repeat_n(b' ', pad));
        assert_eq!(line.len(), MAX_REQUEST_LINE);
        line.push(b'\n');
        c.get_mut().write_all(&line).unwrap();
        read_line(&mut c)
    });
    lp.run(&mut pong, &mut |_| t.is_finished());
    let r: Response = serde_json::from_str(&t.join().unwrap()).unwrap();
    assert_eq!(r, Response::message("pong status"));
}

#[test]
fn half_closed_clients_still_get_their_answer() {
    // `echo '{"v":1,"cmd":"status"}' | socat - UNIX:...` shuts its write side.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut lp = Loop::new(&path);
    let mut c = connect(&path);
    c.get_mut()
        .write_all(Request::Status.to_line().as_bytes())
        .unwrap();
    c.get_mut().shutdown(std::net::Shutdown::Write).unwrap();
    // Answer late: the EOF is seen first.
    let mut held = None;
    lp.run(&mut |_| None, &mut |l| {
        held = l.seen.first().cloned();
        held.is_some()
    });
    lp.run(&mut |_| None, &mut |_| true);
    let Some(ServerEvent::Request(id, _)) = held else {
        panic!()
    };
    // Its last answer: written, then the client is closed, so `reply` says gone
    // (a `logs --follow` from such a client would not be followed).
    assert!(!lp
        .server
        .reply(lp.poll.registry(), id, &Response::message("late")));
    let r: Response = serde_json::from_str(&read_line(&mut c)).unwrap();
    assert_eq!(r, Response::message("late"));
    assert_eq!(read_line(&mut c), "");
    assert_eq!(lp.server.client_count(), 0);
    // No Gone was needed: the loop answered its last request.
    assert!(!lp.seen.contains(&ServerEvent::Gone(id)));
}

#[test]
fn follow_streams_until_the_client_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut lp = Loop::new(&path);
    let p = path.clone();
    let t = thread::spawn(move || {
        let mut got = Vec::new();
        let req = Request::Logs {
            target: Target::parse("web").unwrap(),
            lines: 2,
            follow: true,
            stream: None,
        };
        client::follow(&p, req, &mut |l| {
            got.push(l.line.clone());
            got.len() < 5
        })
        .map(|()| got)
    });
    let line = |n: u32| LogLine {
        time_ms: 1,
        app: "web".into(),
        index: 0,
        stream: "stdout".into(),
        line: format!("line {n}"),
    };
    let mut answer = |_: &Request| {
        Some(Response {
            ok: true,
            lines: vec![line(0), line(1)],
            ..Response::default()
        })
    };
    lp.run(&mut answer, &mut |l| l.requests() == 1);
    let ServerEvent::Request(id, _) = lp.seen[0].clone() else {
        panic!()
    };
    let mut n = 2;
    while !t.is_finished() {
        lp.server.send_line(lp.poll.registry(), id, &line(n));
        n += 1;
        lp.run(&mut pong, &mut |_| true);
        thread::sleep(Duration::from_millis(5));
    }
    let got = t.join().unwrap().unwrap();
    assert_eq!(got, ["line 0", "line 1", "line 2", "line 3", "line 4"]);
    lp.run(&mut pong, &mut |l| l.seen.contains(&ServerEvent::Gone(id)));
    assert!(!lp.server.send_line(lp.poll.registry(), id, &line(99)));
}

#[test]
fn follow_gets_an_error_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut lp = Loop::new(&path);
    let p = path.clone();
    let t = thread::spawn(move || {
        let req = Request::Logs {
            target: Target::parse("nope").unwrap(),
            lines: 2,
            follow: true,
            stream: None,
        };
        client::follow(&p, req, &mut |_| true)
    });
    lp.run(&mut |_| Some(Response::error("no app `nope`")), &mut |_| {
        t.is_finished()
    });
    let e = t.join().unwrap().unwrap_err();
    assert_eq!(e.to_string(), "no app `nope`");
}

#[test]
fn a_reader_that_never_reads_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut lp = Loop::new(&path);
    let mut c = StdStream::connect(&path).unwrap();
    let req = Request::Logs {
        target: Target::parse("all").unwrap(),
        lines: 0,
        follow: true,
        stream: None,
    };
    c.write_all(req.to_line().as_bytes()).unwrap();
    lp.run(&mut |_| Some(Response::ok()), &mut |l| l.requests() == 1);
    let ServerEvent::Request(id, _) = lp.seen[0].clone() else {
        panic!()
    };
    let l = LogLine {
        line: "x".repeat(1000),
        ..LogLine::default()
    };
    let t0 = Instant::now();
    let mut sent = 0usize;
    while lp.server.send_line(lp.poll.registry(), id, &l) {
        sent += 1;
        assert!(sent < 100_000, "never dropped");
    }
    // Every call returned at once: nothing blocked.
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(sent * l.to_line().len() >= MAX_OUTPUT, "{sent}");
    assert_eq!(lp.server.client_count(), 0);
    assert!(!lp.server.reply(lp.poll.registry(), id, &Response::ok()));
}

#[test]
fn a_flooding_client_gets_its_share_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut lp = Loop::new(&path);
    // Pipelined status and garbage, answers read and thrown away.
    let flood = StdStream::connect(&path).unwrap();
    let mut reader = flood.try_clone().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let writer = thread::spawn(move || {
        let mut flood = flood;
        let mut chunk = Vec::new();
        for _ in 0..500 {
            chunk.extend_from_slice(Request::Status.to_line().as_bytes());
            chunk.extend_from_slice(b"garbage garbage\n");
        }
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            if flood.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let drain = thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
    });
    lp.run(&mut pong, &mut |l| l.requests() > 2000);
    let mut worst = 0;
    for _ in 0..3 {
        let p = path.clone();
        let t0 = Instant::now();
        let t =
            thread::spawn(move || client::request(&p, Request::Status, Duration::from_secs(10)));
        let before = lp.turns;
        let mut seen = lp.seen.len();
        lp.run(&mut pong, &mut |l| {
            // No turn handles more than its budget.
            worst = worst.max(l.seen.len() - seen);
            seen = l.seen.len();
            t.is_finished()
        });
        assert!(t.join().unwrap().unwrap().ok);
        eprintln!(
            "answered beside a flood in {:?} ({} turns)",
            t0.elapsed(),
            lp.turns - before
        );
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    }
    assert!(worst <= TURN_BUDGET, "{worst} requests in one turn");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    lp.server.shutdown(lp.poll.registry());
    writer.join().unwrap();
    drain.join().unwrap();
}

#[test]
fn a_client_that_does_not_read_is_paused_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut lp = Loop::new(&path);
    const N: usize = 40_000;
    let mut c = StdStream::connect(&path).unwrap();
    let mut w = c.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let lines = Request::Status.to_line().repeat(N);
        w.write_all(lines.as_bytes()).unwrap();
    });
    // It stops being read once its unread answers pass PAUSE_OUTPUT.
    lp.run(&mut pong, &mut |l| {
        l.requests() > 1000 && !l.server.backlog()
    });
    let paused_at = lp.requests();
    assert!(paused_at < N, "never paused");
    lp.run(&mut pong, &mut |_| true);
    assert_eq!(lp.requests(), paused_at);
    // Others are served meanwhile.
    let p = path.clone();
    let t = thread::spawn(move || client::request(&p, Request::Status, Duration::from_secs(10)));
    lp.run(&mut pong, &mut |_| t.is_finished());
    assert!(t.join().unwrap().unwrap().ok);
    // It reads: every answer comes, none lost.
    let reader = thread::spawn(move || {
        let mut r = BufReader::new(&mut c);
        (0..N).all(|_| read_line_from(&mut r).starts_with("{\"ok\":true"))
    });
    lp.run(&mut pong, &mut |_| reader.is_finished());
    assert!(reader.join().unwrap());
    writer.join().unwrap();
    assert_eq!(lp.requests(), N + 1);
}

fn read_line_from(r: &mut impl BufRead) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l
}

#[test]
fn peer_uid_is_ours() {
    let (a, _b) = StdStream::pair().unwrap();
    // SAFETY: geteuid(2) cannot fail.
    assert_eq!(peer_uid(&a).unwrap(), nix::unistd::geteuid().as_raw());
}

/// Connects as another user and prints the line it gets; run by
/// `other_users_are_refused` in a child process.
#[test]
#[ignore]
fn helper_connect_and_print() {
    let Some(path) = std::env::var_os("SUPERVISE_TEST_CONNECT") else {
        return;
    };
    let mut c = connect(Path::new(&path));
    let _ = c.get_mut().write_all(Request::Status.to_line().as_bytes());
    print!("GOT:{}", read_line(&mut c));
}

#[test]
fn other_users_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut lp = Loop::new(&path);
    let euid = nix::unistd::geteuid().as_raw();
    let output = if euid == 0 {
        // Root: a real client as nobody, past the file mode (opened up for the test)
        // to the SO_PEERCRED check.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).unwrap();
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "control::server::tests::helper_connect_and_print",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SUPERVISE_TEST_CONNECT", &path)
            .uid(65534)
            .gid(65534)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let t = thread::spawn(move || child.wait_with_output().unwrap());
        lp.run(&mut pong, &mut |_| t.is_finished());
        let out = t.join().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    } else {
        // Not root: pretend supervise runs as someone else.
        lp.server.euid = euid + 1;
        let mut c = connect(&path);
        let t = thread::spawn(move || format!("GOT:{}", read_line(&mut c)));
        lp.run(&mut pong, &mut |_| t.is_finished());
        t.join().unwrap()
    };
    let uid = if euid == 0 { 65534 } else { euid };
    let want =
        format!("GOT:{{\"ok\":false,\"error\":\"permission denied: uid {uid} is not allowed\"}}\n");
    assert!(output.contains(&want), "{output}");
    assert_eq!(lp.requests(), 0);
    assert_eq!(lp.server.client_count(), 0);
}

#[path = "server_admit_tests.rs"]
mod admit;
