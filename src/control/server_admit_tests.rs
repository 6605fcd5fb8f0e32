//! Admission tests: who gets in when the control socket is full, and the reply of
//! everyone who does not.

use super::*;

/// A newcomer asks for `status` while the loop runs here; its answer.
fn newcomer(lp: &mut Loop, path: &Path) -> Response {
    let mut extra = connect(path);
    extra
        .get_mut()
        .write_all(Request::Status.to_line().as_bytes())
        .unwrap();
    extra
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let mut line = String::new();
    for _ in 0..200 {
        lp.run(&mut pong, &mut |_| true);
        if extra.read_line(&mut line).is_ok() {
            break;
        }
    }
    serde_json::from_str(&line).unwrap()
}

/// A small server for the admission tests: `limit` clients, idle at once.
fn small_loop(path: &Path, limit: usize) -> Loop {
    let mut lp = Loop::new(path);
    lp.server.set_limits(limit, Duration::ZERO);
    lp
}

#[test]
fn too_many_busy_clients_turn_the_newcomer_away_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut lp = small_loop(&path, 8);
    // Busy clients (each sent a request, left unanswered here).
    let _held: Vec<StdStream> = (0..8)
        .map(|_| {
            let mut c = StdStream::connect(&path).unwrap();
            c.write_all(Request::Status.to_line().as_bytes()).unwrap();
            c
        })
        .collect();
    lp.run(&mut |_| None, &mut |l| l.requests() == 8);
    // The newcomer's request reaches the server before it is turned away: the reason
    // line is still read, not reset.
    let r = newcomer(&mut lp, &path);
    assert!(r.error.unwrap().starts_with("too many clients"));
    assert_eq!(lp.server.client_count(), 8);
}

#[test]
fn silent_clients_make_room() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut lp = small_loop(&path, 8);
    let mut held: Vec<BufReader<StdStream>> = (0..8).map(|_| connect(&path)).collect();
    lp.run(&mut pong, &mut |l| l.server.client_count() == 8);
    // The CLI still gets in; the oldest silent connection is closed for it, told why.
    let p = path.clone();
    let t = thread::spawn(move || client::request(&p, Request::Status, Duration::from_secs(10)));
    lp.run(&mut pong, &mut |_| t.is_finished());
    assert!(t.join().unwrap().unwrap().ok);
    let r: Response = serde_json::from_str(&read_line(&mut held[0])).unwrap();
    assert!(r.error.unwrap().starts_with("closed: idle"));
    assert_eq!(read_line(&mut held[0]), "");
    // The CLI's own connection goes once the server has read its end.
    lp.run(&mut pong, &mut |l| l.server.client_count() == 7);
}

#[test]
fn idle_clients_go_before_followers_and_busy_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut lp = small_loop(&path, 6);
    let follow = Request::Logs {
        target: Target::All,
        lines: 0,
        follow: true,
        stream: None,
    };
    let restart = Request::Restart {
        target: Target::All,
    };
    // Two followers, two with a command in flight, then two that asked and went quiet.
    let mut followers: Vec<_> = (0..2).map(|_| connect(&path)).collect();
    let mut busy: Vec<_> = (0..2).map(|_| connect(&path)).collect();
    let mut idle: Vec<_> = (0..2).map(|_| connect(&path)).collect();
    for (group, request) in [(&mut followers, &follow), (&mut busy, &restart)] {
        for c in group.iter_mut() {
            c.get_mut().write_all(request.to_line().as_bytes()).unwrap();
        }
    }
    for c in &mut idle {
        c.get_mut()
            .write_all(Request::Status.to_line().as_bytes())
            .unwrap();
    }
    let mut answer = |r: &Request| match r {
        Request::Restart { .. } => None,
        Request::Logs { .. } => Some(Response::ok()),
        _ => Some(Response::message("pong status")),
    };
    lp.run(&mut answer, &mut |l| l.requests() == 6);
    for c in followers.iter_mut().chain(&mut idle) {
        assert!(serde_json::from_str::<Response>(&read_line(c)).unwrap().ok);
    }
    // A newcomer closes the longest-idle client, never a follower or a busy one.
    let p = path.clone();
    let t = thread::spawn(move || client::request(&p, Request::Status, Duration::from_secs(10)));
    lp.run(&mut answer, &mut |_| t.is_finished());
    let r = t.join().unwrap().unwrap();
    assert!(r.ok, "{r:?}");
    let r: Response = serde_json::from_str(&read_line(&mut idle[0])).unwrap();
    assert!(r.error.unwrap().starts_with("closed: idle"));
    assert_eq!(read_line(&mut idle[0]), "");
    lp.run(&mut answer, &mut |l| l.server.client_count() == 5);
    let gone: Vec<Token> = lp
        .seen
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Gone(t) => Some(*t),
            _ => None,
        })
        .collect();
    assert!(gone.iter().all(|t| t.0 >= FIRST + 6), "{gone:?}");
    // Followers still get lines.
    let id = Token(FIRST);
    let line = LogLine {
        line: "still here".into(),
        ..LogLine::default()
    };
    assert!(lp.server.send_line(lp.poll.registry(), id, &line));
    let got: LogLine = serde_json::from_str(&read_line(&mut followers[0])).unwrap();
    assert_eq!(got.line, "still here");
    drop(busy);
}

/// A newcomer whose descriptor falls in the last ones before the open-file limit makes
/// an idle client go, or is turned away with a reason: beyond the first few, clients
/// never take the descriptors supervision needs to respawn.
#[test]
fn clients_never_take_the_last_file_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sock");
    let mut lp = small_loop(&path, 8);
    // Every descriptor is in the reserve: the lowest free one is above 6 here (stdio,
    // the poll, the listener, the test's own two sockets).
    lp.server.set_fd_limit(12);
    assert_eq!(fd_reserve(12), 8);
    let restart = Request::Restart {
        target: Target::All,
    };
    // The first few get in all the same: one that asks and goes quiet (idle at once
    // here), the others with a command in flight.
    let mut idle = connect(&path);
    idle.get_mut()
        .write_all(Request::Status.to_line().as_bytes())
        .unwrap();
    let mut busy: Vec<_> = (1..FEW_CLIENTS).map(|_| connect(&path)).collect();
    for c in &mut busy {
        c.get_mut().write_all(restart.to_line().as_bytes()).unwrap();
    }
    let mut status_only = |r: &Request| matches!(r, Request::Status).then(Response::ok);
    lp.run(&mut status_only, &mut |l| l.requests() == FEW_CLIENTS);
    assert!(
        serde_json::from_str::<Response>(&read_line(&mut idle))
            .unwrap()
            .ok
    );
    // One more with a command in flight gets in, in place of the idle client.
    let mut one_more = connect(&path);
    one_more
        .get_mut()
        .write_all(restart.to_line().as_bytes())
        .unwrap();
    lp.run(&mut |_| None, &mut |l| l.requests() == FEW_CLIENTS + 1);
    let r: Response = serde_json::from_str(&read_line(&mut idle)).unwrap();
    assert!(r.error.unwrap().starts_with("closed: idle"));
    // The next one is turned away with a line saying why, and nobody is closed for it.
    let why = newcomer(&mut lp, &path).error.unwrap();
    assert!(
        why.starts_with("too many clients: supervise keeps its last 8 file descriptors"),
        "{why}"
    );
    lp.run(&mut pong, &mut |l| l.server.client_count() == FEW_CLIENTS);
    assert_eq!(lp.requests(), FEW_CLIENTS + 1);
    drop((busy, one_more));
}
