//! Admission at the HTTP listener: who gets a connection, and an answer for everyone
//! who does not. HTTP clients are anonymous (a port scanner, a stuck scraper), so they
//! never take the descriptors supervision needs to respawn an instance:
//!
//! * the reserve is the control socket's ([`crate::admission`]): a newcomer whose
//!   descriptor (the lowest free one, so every one below is in use, whoever holds it)
//!   falls in it is turned away. One number counts what control clients, HTTP clients
//!   and instances hold together, with no bookkeeping between the two listeners;
//! * HTTP clients also stop [`FEW_CLIENTS`] short of the reserve, the room the control
//!   socket lets its first few clients take from it: `supervise status` still gets in
//!   when HTTP clients have filled what they may, and those few plus a respawn still
//!   fit. Unlike control, HTTP has no few of its own: a probe that finds supervise this
//!   short of descriptors is right to fail;
//! * at most [`MAX_CONNECTIONS`] at once whatever the limit;
//! * a newcomer turned away gets `503 Service Unavailable` with a short text body and
//!   `Connection: close` (a liveness probe then fails, which is right: supervise is out
//!   of descriptors), written into the fresh socket's empty send buffer; what it sent
//!   already is read first, so closing does not reset the connection under the answer;
//! * when accept(2) finds no descriptor at all (EMFILE, ENFILE), the newcomer is
//!   answered on the spare descriptor and closed, so no connection is left in the
//!   backlog with no event to come for it (the listener is edge-triggered). Silent
//!   clients are not evicted instead: they are gone within [`CLIENT_TIMEOUT`] anyway.
//!   If even the spare does not help (another thread took the descriptor meanwhile),
//!   the listener is marked stalled and tried again once per loop turn, when the loop
//!   turns for another reason (a child's exit, which frees descriptors), never on a
//!   timer: an idle supervise still never wakes.
//!
//! [`CLIENT_TIMEOUT`]: super::CLIENT_TIMEOUT

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::{encode, Client, HttpServer, Response, CLIENT_TIMEOUT, MAX_CONNECTIONS};
use crate::admission::{in_reserve, out_of_fds, soft_nofile};
use crate::control::server::FEW_CLIENTS;

/// Connections accepted per listener event before the loop gets to run other events.
const ACCEPT_BUDGET: usize = 256;

/// Why a newcomer is turned away.
enum Full {
    Clients,
    Reserve,
    NoFds,
}

impl HttpServer {
    pub(super) fn accept(&mut self, registry: &Registry, now: Instant) {
        let was_stalled = std::mem::take(&mut self.stalled);
        self.spare.restore();
        for _ in 0..ACCEPT_BUDGET {
            let mut stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if out_of_fds(&e) => {
                    if self.refuse_on_spare() {
                        continue;
                    }
                    // Said once, not on every loop turn it lasts.
                    if !was_stalled {
                        log::warn!(
                            "http: cannot accept a connection: {e}; trying again once \
                             some are free"
                        );
                    }
                    self.stalled = true;
                    return;
                }
                Err(e) => {
                    // ENOBUFS, ENOMEM: the connection stays queued for the next event.
                    log::warn!("http: cannot accept a connection: {e}");
                    return;
                }
            };
            if self.clients.len() >= MAX_CONNECTIONS {
                self.turn_away(&mut stream, Full::Clients);
                continue;
            }
            if in_reserve(stream.as_raw_fd(), FEW_CLIENTS as u64, self.fd_limit) {
                self.turn_away(&mut stream, Full::Reserve);
                continue;
            }
            let token = Token(self.next_client);
            self.next_client += 1;
            if let Err(e) = registry.register(&mut stream, token, Interest::READABLE) {
                log::warn!("http: cannot register a connection: {e}");
                continue;
            }
            self.turned_away.admitted();
            let client = Client {
                stream,
                input: Vec::new(),
                out: None,
                written: 0,
                deadline: now + CLIENT_TIMEOUT,
            };
            self.clients.insert(token, client);
        }
        // Budget spent with connections possibly still queued: re-arm so the loop
        // comes back after the other events.
        let _ = registry.reregister(&mut self.listener, self.token, Interest::READABLE);
    }

    /// Accept again if the listener stalled for lack of descriptors.
    pub fn retry(&mut self, registry: &Registry, now: Instant) {
        if self.stalled {
            self.accept(registry, now);
        }
    }

    /// Out of descriptors: answer the next newcomer on the spare descriptor. False if
    /// that did not help (see [`crate::admission::Spare::refuse_one`]).
    fn refuse_on_spare(&mut self) -> bool {
        let message = self.refusal(&Full::NoFds);
        let listener = &self.listener;
        self.spare.refuse_one(
            || listener.accept().map(|(s, _)| s),
            |mut s, why| refuse(&mut s, why),
            &mut self.turned_away,
            &message,
        )
    }

    /// Answer a newcomer that does not get in with a 503.
    fn turn_away(&mut self, stream: &mut TcpStream, why: Full) {
        let message = self.refusal(&why);
        self.turned_away.refused(&message);
        refuse(stream, &message);
    }

    /// Why a newcomer does not get in, in the 503's body.
    fn refusal(&self, why: &Full) -> String {
        match why {
            Full::Clients => {
                format!("too many connections (at most {MAX_CONNECTIONS} at once); try again")
            }
            Full::Reserve => format!(
                "supervise keeps its last file descriptors (of {}) for its instances; \
                 try again",
                self.fd_limit
            ),
            Full::NoFds => format!(
                "supervise is out of file descriptors (limit {}); try again",
                soft_nofile()
            ),
        }
    }
}

/// Best effort: a 503 into a fresh socket's (empty) send buffer, then close. What the
/// client sent already is read first, so closing does not reset the connection under
/// the answer.
fn refuse(stream: &mut TcpStream, message: &str) {
    let answer = encode(&Response::text(503, format!("{message}\n")), false);
    let _ = stream.write(&answer);
    let _ = stream.shutdown(Shutdown::Write);
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream as StdStream;
    use std::time::Duration;

    use mio::{Events, Poll, Token};

    use super::*;

    /// A server on a free port, registered; the listener's token.
    fn server(poll: &Poll) -> (HttpServer, Token) {
        let mut server = HttpServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        server.register(poll.registry(), Token(1), 100).unwrap();
        (server, Token(1))
    }

    /// Serve the listener's events until `done` holds (at most 5 s).
    fn serve_until(poll: &mut Poll, server: &mut HttpServer, done: impl Fn(&HttpServer) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut events = Events::with_capacity(16);
        while !done(server) {
            assert!(Instant::now() < deadline, "not done within 5 s");
            poll.poll(&mut events, Some(Duration::from_millis(50)))
                .unwrap();
            for event in events.iter() {
                server.ready(poll.registry(), event.token(), Instant::now(), &mut |_| {
                    Response::text(200, "ok\n")
                });
            }
        }
    }

    /// What a connection reads after its request: the whole answer, up to the close.
    fn answer(mut conn: StdStream) -> String {
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = conn.write_all(b"GET /livez HTTP/1.1\r\n\r\n");
        let mut got = Vec::new();
        let _ = conn.read_to_end(&mut got);
        String::from_utf8(got).unwrap()
    }

    #[test]
    fn past_the_connection_cap_a_newcomer_gets_a_503() {
        let mut poll = Poll::new().unwrap();
        let (mut server, _) = server(&poll);
        let addr = server.local_addr().unwrap();
        let _held: Vec<_> = (0..MAX_CONNECTIONS)
            .map(|_| StdStream::connect(addr).unwrap())
            .collect();
        serve_until(&mut poll, &mut server, |s| s.clients() == MAX_CONNECTIONS);
        // Turned away as soon as it is accepted: nothing else needs serving.
        let newcomer = StdStream::connect(addr).unwrap();
        serve_until(&mut poll, &mut server, |s| s.turned_away.count() == 1);
        let got = answer(newcomer);
        assert!(
            got.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{got}"
        );
        assert!(got.contains("Connection: close\r\n"), "{got}");
        assert!(
            got.ends_with("\r\n\r\ntoo many connections (at most 128 at once); try again\n"),
            "{got}"
        );
        assert_eq!(server.clients(), MAX_CONNECTIONS);
    }

    #[test]
    fn a_newcomer_whose_descriptor_is_in_the_reserve_gets_a_503() {
        let mut poll = Poll::new().unwrap();
        let (mut server, _) = server(&poll);
        // Any descriptor is within the reserve (and the four kept above it) of this.
        server.fd_limit = 0;
        let newcomer = StdStream::connect(server.local_addr().unwrap()).unwrap();
        serve_until(&mut poll, &mut server, |s| s.turned_away.count() == 1);
        let got = answer(newcomer);
        assert!(got.starts_with("HTTP/1.1 503 "), "{got}");
        assert!(
            got.contains("supervise keeps its last file descriptors"),
            "{got}"
        );
        assert_eq!(server.clients(), 0);
    }
}
