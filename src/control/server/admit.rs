//! Admission: who gets in when the control socket is full. Idle clients (nothing in
//! flight, not following logs, quiet for a while) make room for newcomers, the
//! longest-idle first and told why; only when none is idle is the newcomer turned away,
//! with a line saying so. Followers and clients with a command in flight are never cut
//! off for someone else.

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use mio::net::UnixStream;
use mio::{Interest, Registry, Token};

use super::super::conn::Conn;
use super::super::protocol::Response;
use super::super::socket::peer_uid;
use super::ControlServer;

/// Clients at once, at least and at most; in between, a quarter of the open-file limit.
pub const MIN_CLIENTS: usize = 64;
pub const MAX_CLIENTS: usize = 1024;
/// A client quiet this long, with nothing in flight, may be closed to make room.
pub const IDLE_AFTER: Duration = Duration::from_secs(1);
/// Connections accepted per listener event before the loop gets to run other events.
const ACCEPT_BUDGET: usize = 256;

impl ControlServer {
    pub(super) fn accept(&mut self, registry: &Registry) {
        for _ in 0..ACCEPT_BUDGET {
            let mut stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: the pending connection stays queued; try
                    // again on the next event rather than spinning now.
                    log::warn!("control socket: accept failed: {e}");
                    return;
                }
            };
            match peer_uid(&stream) {
                Ok(uid) if uid == self.euid || uid == 0 => {}
                Ok(uid) => {
                    log::warn!("control socket: refused a client with uid {uid}");
                    reject(
                        &mut stream,
                        &format!("permission denied: uid {uid} is not allowed"),
                    );
                    continue;
                }
                Err(e) => {
                    reject(
                        &mut stream,
                        &format!("permission denied: no peer credentials ({e})"),
                    );
                    continue;
                }
            }
            if self.clients.len() >= self.max_clients {
                // Full. Idle connections (silent ones, or done with their requests)
                // must not lock the CLI out: the longest-idle one makes room.
                if let Some(old) = self.idlest() {
                    log::warn!(
                        "control socket: {} clients; closing the longest idle one",
                        self.max_clients
                    );
                    let msg = "closed: idle while supervise had too many clients";
                    self.queue(registry, old, Response::error(msg).to_line().as_bytes());
                    self.remove(registry, old);
                }
            }
            if self.clients.len() >= self.max_clients {
                reject(
                    &mut stream,
                    &format!(
                        "too many clients (at most {} at once, none idle); try again",
                        self.max_clients
                    ),
                );
                continue;
            }
            let token = Token(self.next_token);
            self.next_token += 1;
            if let Err(e) = registry.register(&mut stream, token, Interest::READABLE) {
                log::warn!("control socket: cannot register a client: {e}");
                continue;
            }
            self.clients.insert(token, Conn::new(stream));
            // Connections queued before the listener's event may have spoken already.
            self.enqueue(token);
        }
        // Budget spent with connections possibly still queued: re-arm so the loop
        // comes back after the other events.
        if let Some(t) = self.listener_token {
            let _ = registry.reregister(&mut self.listener, t, Interest::READABLE);
        }
    }

    /// The client that has been idle longest, if any is idle: nothing in flight, not
    /// following logs, quiet for `idle_after`.
    pub(super) fn idlest(&self) -> Option<Token> {
        let now = Instant::now();
        self.clients
            .iter()
            .filter(|(_, c)| {
                c.pending == 0
                    && !c.following
                    && !c.queued
                    && c.unsent() == 0
                    && now.saturating_duration_since(c.last_active) >= self.idle_after
            })
            .min_by_key(|(t, c)| (c.last_active, **t))
            .map(|(t, _)| *t)
    }
}

/// Best effort: one error line into a fresh socket's (empty) send buffer, then close.
/// What it sent already is read first, so closing does not reset the connection
/// under the line.
fn reject(stream: &mut UnixStream, message: &str) {
    let _ = stream.write(Response::error(message).to_line().as_bytes());
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// A quarter of the open-file limit, within [`MIN_CLIENTS`]..=[`MAX_CLIENTS`]: the
/// rest is for the instances' pipes and sockets.
pub(super) fn client_limit() -> usize {
    use nix::sys::resource::{getrlimit, Resource};
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
    usize::try_from(soft / 4)
        .unwrap_or(MAX_CLIENTS)
        .clamp(MIN_CLIENTS, MAX_CLIENTS)
}
