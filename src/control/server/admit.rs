//! Admission: who gets in when the control socket is full, and a reply for everyone
//! who does not. Idle clients (nothing in flight, not following logs, quiet for a while)
//! make room for newcomers, the longest-idle first and told why; only when none is idle
//! is the newcomer turned away, with a line starting "too many clients" (which the CLI
//! retries, backing off). Followers and clients with a command in flight are never cut
//! off for someone else.
//!
//! Full means `max_clients` connections, or supervise short of file descriptors: a
//! newcomer whose descriptor falls in the reserve of [`crate::admission`] would eat
//! into those supervision needs to respawn an instance (its pipes, a log file), so
//! clients never take them, beyond the first [`FEW_CLIENTS`]: `supervise status` must
//! still work when supervise is short of descriptors, and a few cost a respawn nothing.
//! (The HTTP endpoint's clients stop that many short of the reserve, so these few
//! always find room.)
//!
//! When accept(2) itself fails for lack of descriptors, the newcomer is told on the
//! spare descriptor (see [`crate::admission`]). If even that fails (another thread
//! took the descriptor meanwhile), the listener is marked stalled and tried again once
//! per loop turn: turns come from other events (a child's exit, which frees
//! descriptors), never from a timer, and a stalled listener never makes the loop poll
//! without sleeping.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::net::UnixStream;
use mio::{Interest, Registry, Token};

use super::super::conn::Conn;
use super::super::protocol::Response;
use super::super::socket::peer_uid;
use super::ControlServer;
use crate::admission::{fd_reserve, in_reserve, out_of_fds, soft_nofile};

/// Clients at once, at least and at most; in between, a quarter of the open-file limit.
pub const MIN_CLIENTS: usize = 64;
pub const MAX_CLIENTS: usize = 1024;
/// A client quiet this long, with nothing in flight, may be closed to make room.
pub const IDLE_AFTER: Duration = Duration::from_secs(1);
/// Connections accepted per listener event before the loop gets to run other events.
const ACCEPT_BUDGET: usize = 256;

/// Clients admitted even when their descriptor is in the reserve (while accept(2) still
/// finds one).
pub const FEW_CLIENTS: usize = 4;

/// Why a newcomer is turned away.
enum Full {
    Clients,
    Reserve,
    NoFds,
}

impl ControlServer {
    pub(super) fn accept(&mut self, registry: &Registry) {
        let was_stalled = std::mem::take(&mut self.stalled);
        self.spare.restore();
        for _ in 0..ACCEPT_BUDGET {
            let mut stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if out_of_fds(&e) => {
                    if let Some(old) = self.idlest() {
                        self.evict(registry, old);
                    } else if !self.refuse_on_spare() {
                        // Said once, not on every loop turn it lasts.
                        if !was_stalled {
                            log::warn!(
                                "control socket: cannot accept a client: {e}; trying \
                                 again once some are free"
                            );
                        }
                        self.stalled = true;
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    // ENOBUFS, ENOMEM: the connection stays queued for the next event.
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
            let full = if self.clients.len() >= self.max_clients {
                Some(Full::Clients)
            } else if self.clients.len() >= FEW_CLIENTS
                && in_reserve(stream.as_raw_fd(), 0, self.fd_limit)
            {
                Some(Full::Reserve)
            } else {
                None
            };
            if let Some(why) = full {
                // Idle connections (silent ones, or done with their requests) must not
                // lock the CLI out: the longest-idle one makes room (a client, or the
                // descriptor the newcomer holds now).
                match self.idlest() {
                    Some(old) => self.evict(registry, old),
                    None => {
                        self.turn_away(&mut stream, &why);
                        continue;
                    }
                }
            }
            let token = Token(self.next_token);
            self.next_token += 1;
            if let Err(e) = registry.register(&mut stream, token, Interest::READABLE) {
                log::warn!("control socket: cannot register a client: {e}");
                continue;
            }
            self.turned_away.admitted();
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

    /// Whether accept(2) ran out of descriptors with connections still waiting: call
    /// [`ControlServer::accept`] again when the loop turns for another reason.
    pub(super) fn stalled(&self) -> bool {
        self.stalled
    }

    /// Out of descriptors: tell the next newcomer on the spare descriptor. False if
    /// that did not help (see [`crate::admission::Spare::refuse_one`]).
    fn refuse_on_spare(&mut self) -> bool {
        let message = self.refusal(&Full::NoFds);
        let listener = &self.listener;
        self.spare.refuse_one(
            || listener.accept().map(|(s, _)| s),
            |mut s, why| reject(&mut s, why),
            &mut self.turned_away,
            &message,
        )
    }

    /// Answer a newcomer that does not get in.
    fn turn_away(&mut self, stream: &mut UnixStream, why: &Full) {
        let message = self.refusal(why);
        self.turned_away.refused(&message);
        reject(stream, &message);
    }

    /// Why a newcomer does not get in, in its error line.
    fn refusal(&self, why: &Full) -> String {
        let limit = self.fd_limit;
        match why {
            Full::Clients => format!(
                "too many clients (at most {} at once, none idle); try again",
                self.max_clients
            ),
            Full::Reserve => format!(
                "too many clients: supervise keeps its last {} file descriptors (of {limit}) \
                 for its instances, and no client is idle; try again",
                fd_reserve(limit)
            ),
            Full::NoFds => format!(
                "too many clients: supervise is out of file descriptors (limit {}); \
                 try again",
                soft_nofile()
            ),
        }
    }

    /// Close an idle client to make room, telling it why.
    fn evict(&mut self, registry: &Registry, old: Token) {
        log::warn!("control socket: full; closing the longest idle client");
        let msg = "closed: idle while supervise had too many clients";
        self.queue(registry, old, Response::error(msg).to_line().as_bytes());
        self.remove(registry, old);
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
pub(super) fn client_limit(soft: u64) -> usize {
    usize::try_from(soft / 4)
        .unwrap_or(MAX_CLIENTS)
        .clamp(MIN_CLIENTS, MAX_CLIENTS)
}
