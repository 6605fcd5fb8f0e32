//! The listening side of the control socket, driven by the runtime's mio loop: accept,
//! admit or turn away, read requests, queue answers. The socket file is
//! [`super::socket`]'s business, framing and buffering one connection's bytes is
//! [`super::conn`]'s.
//!
//! Nothing here blocks, and nobody gets more than a fair share of a loop turn:
//! * readiness events only flush output and put the client in a ready queue;
//!   [`ControlServer::serve`], called once per loop turn after supervision's own work,
//!   reads requests round-robin: at most [`CLIENT_SHARE`] units (a request line or one
//!   read) per client per visit and [`TURN_BUDGET`] in all. A client with more to say
//!   waits for the next turn, and the loop polls without sleeping while one does;
//! * a client is read only when no complete line of it is buffered, and not at all
//!   while [`PAUSE_OUTPUT`] of its answers are unsent: a flooding or non-reading client
//!   is slowed down by its own socket, the loop never is;
//! * a client whose unsent output still passes [`MAX_OUTPUT`] (a `logs --follow`
//!   reader that stopped reading) is dropped;
//! * at most `max_clients` connections (from the open-file limit), never taking the
//!   last file descriptors supervision needs: when full, the longest-idle client (no
//!   request in flight, not following, quiet for [`IDLE_AFTER`]) is closed to make
//!   room; only if none is idle is the newcomer turned away, with an error line saying
//!   so. Every newcomer turned away gets that line, even when supervise is out of
//!   descriptors altogether (see `admit`).
//!
//! How the loop uses it:
//! * `bind` at startup (a clear error if another supervise owns the path), `register`
//!   with a listener token and the first token of a range reserved for clients;
//! * for every event whose token [`ControlServer::owns`], call [`ControlServer::handle`];
//!   once per turn call [`ControlServer::serve`]; act on the [`ServerEvent`]s both
//!   return; while [`ControlServer::backlog`] is true, poll without sleeping;
//! * answer every `Request` with exactly one [`ControlServer::reply`] (possibly much
//!   later, e.g. when a restart is done); for `logs --follow`, keep the client and call
//!   [`ControlServer::send_line`] for every new line until `Gone` or until `send_line`
//!   returns false;
//! * [`ControlServer::remove_file`] at shutdown.

use super::conn::{Conn, Frame, Got};
use super::protocol::{self, LogLine, Request, Response, MAX_REQUEST_LINE};
use super::socket::SocketFile;
use crate::admission::{Refusals, Spare};
use mio::net::UnixListener;
use mio::{Interest, Registry, Token};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// A connected client, named by its mio token. Tokens are never reused, so a stale id
/// kept by the loop can never reach a newer client.
pub type ClientId = Token;

/// What [`ControlServer::handle`] and [`ControlServer::serve`] report to the loop.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// A complete, well-formed request (version checked, target and signal typed).
    /// Answer it with exactly one [`ControlServer::reply`].
    Request(ClientId, Request),
    /// The client is gone (closed, errored, or dropped): forget it (follow
    /// subscriptions, pending answers). May name a client the loop never saw a
    /// request from; ignore those.
    Gone(ClientId),
}

/// A client whose unsent output passes this is dropped (a reader too slow to keep up).
pub const MAX_OUTPUT: usize = 4 * 1024 * 1024;
/// A client with this much unsent output is not read until it has read some.
pub const PAUSE_OUTPUT: usize = 512 * 1024;
/// Units of work (a request line, or one read of up to 64 KiB) for all clients in one
/// loop turn.
pub const TURN_BUDGET: usize = 256;
/// Units of work for one client per visit; it goes to the back of the queue after.
pub const CLIENT_SHARE: usize = 16;
/// The control socket's listener and its clients.
pub struct ControlServer {
    file: SocketFile,
    listener: UnixListener,
    listener_token: Option<Token>,
    first_client_token: usize,
    next_token: usize,
    clients: HashMap<Token, Conn>,
    /// Clients with something to read, in turn order.
    ready: VecDeque<Token>,
    max_clients: usize,
    idle_after: Duration,
    euid: u32,
    scratch: Vec<u8>,
    /// The soft open-file limit.
    fd_limit: u64,
    /// A descriptor to give up when accept(2) finds none free (see `admit`).
    spare: Spare,
    /// accept(2) found no descriptor free and the spare did not help: retry each turn.
    stalled: bool,
    /// Newcomers turned away since the last one got in.
    turned_away: Refusals,
}

impl ControlServer {
    /// Bind the socket at `path` (see [`SocketFile::bind`]).
    pub fn bind(path: &Path) -> Result<ControlServer, String> {
        let (file, listener) = SocketFile::bind(path)?;
        let fd_limit = crate::admission::soft_nofile();
        Ok(ControlServer {
            file,
            listener: UnixListener::from_std(listener),
            listener_token: None,
            first_client_token: usize::MAX,
            next_token: usize::MAX,
            clients: HashMap::new(),
            ready: VecDeque::new(),
            max_clients: admit::client_limit(fd_limit),
            idle_after: IDLE_AFTER,
            euid: nix::unistd::geteuid().as_raw(),
            scratch: vec![0; 64 * 1024],
            fd_limit,
            spare: Spare::open(),
            stalled: false,
            turned_away: Refusals::new("control socket"),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Register the listener with `listener_token`; clients get tokens from
    /// `first_client_token` upward, never reused: the loop must not use any token
    /// `>= first_client_token` for anything else.
    pub fn register(
        &mut self,
        registry: &Registry,
        listener_token: Token,
        first_client_token: usize,
    ) -> io::Result<()> {
        registry.register(&mut self.listener, listener_token, Interest::READABLE)?;
        self.listener_token = Some(listener_token);
        self.first_client_token = first_client_token;
        self.next_token = first_client_token;
        Ok(())
    }

    /// Whether `token` is the listener's or in the client range (a client, or one
    /// that was closed: events for it are ignored by `handle`).
    pub fn owns(&self, token: Token) -> bool {
        Some(token) == self.listener_token || token.0 >= self.first_client_token
    }

    /// How many clients are connected.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// How many clients may be connected at once.
    pub fn max_clients(&self) -> usize {
        self.max_clients
    }

    /// Handle a readiness event for `token`: accept on the listener; on a client,
    /// flush its answers and queue it for [`ControlServer::serve`]. Returns the
    /// departures.
    pub fn handle(
        &mut self,
        registry: &Registry,
        token: Token,
        event: &mio::event::Event,
    ) -> Vec<ServerEvent> {
        let _ = event; // readiness is re-checked by trying: edge-triggered, non-blocking.
        let mut events = Vec::new();
        if Some(token) == self.listener_token {
            self.accept(registry);
        } else if self.clients.contains_key(&token) {
            if self.conn(token).flush().is_err() {
                self.drop_client(registry, token, &mut events);
            } else if self.settle(registry, token) {
                self.enqueue(token);
            }
        }
        events
    }

    /// Whether some client has more to read: poll without sleeping and `serve` again.
    pub fn backlog(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Read the queued clients' requests, round-robin, within [`TURN_BUDGET`]; and
    /// accept again if the listener stalled for lack of file descriptors.
    pub fn serve(&mut self, registry: &Registry) -> Vec<ServerEvent> {
        if self.stalled() {
            self.accept(registry);
        }
        let mut events = Vec::new();
        let mut budget = TURN_BUDGET;
        while budget > 0 {
            let Some(token) = self.ready.pop_front() else {
                break;
            };
            let Some(c) = self.clients.get_mut(&token) else {
                continue;
            };
            c.queued = false;
            let (used, more) =
                self.serve_one(registry, token, CLIENT_SHARE.min(budget), &mut events);
            budget = budget.saturating_sub(used.max(1));
            if more {
                self.enqueue(token);
            } else {
                self.settle(registry, token);
            }
        }
        events
    }

    /// Queue the answer to a request. Returns false if the client is gone: closed,
    /// dropped now as a too-slow reader, or finished (it shut its sending side, and
    /// this was the answer to its last request: written, then closed). Forget it; in
    /// particular, start following logs for a `logs --follow` only if this is true.
    pub fn reply(&mut self, registry: &Registry, client: ClientId, response: &Response) -> bool {
        self.reply_line(registry, client, &response.to_line())
    }

    /// [`ControlServer::reply`] with a response already written as one line (the same
    /// `status` answer for every client that asked in a turn).
    pub fn reply_line(&mut self, registry: &Registry, client: ClientId, line: &str) -> bool {
        let Some(c) = self.clients.get_mut(&client) else {
            return false;
        };
        if c.finished {
            return false;
        }
        c.pending = c.pending.saturating_sub(1);
        if !c.reading && c.pending == 0 {
            // The client stopped sending (half-close): this was the last answer.
            c.finished = true;
        }
        c.last_active = Instant::now();
        // A client paused on its output is queued again by the WRITABLE event that
        // drains it, in `handle`.
        let queued = self.queue(registry, client, line.as_bytes());
        queued && self.settle(registry, client)
    }

    /// Queue one followed log line for a client in follow mode. Returns false if the
    /// client is gone (as for `reply`): stop following for it.
    pub fn send_line(&mut self, registry: &Registry, client: ClientId, line: &LogLine) -> bool {
        match self.clients.get(&client) {
            Some(c) if !c.finished => {}
            _ => return false,
        }
        self.queue(registry, client, line.to_line().as_bytes())
    }

    /// Close a client now (unsent output is discarded). No `Gone` follows.
    pub fn close(&mut self, registry: &Registry, client: ClientId) {
        self.remove(registry, client);
    }

    /// Close every client and deregister the listener (at shutdown).
    pub fn shutdown(&mut self, registry: &Registry) {
        let ids: Vec<Token> = self.clients.keys().copied().collect();
        for id in ids {
            self.close(registry, id);
        }
        let _ = registry.deregister(&mut self.listener);
    }

    /// Remove the socket file (at shutdown), if it is still ours.
    pub fn remove_file(&self) {
        self.file.remove();
    }

    /// Serve one client up to `share` units: its buffered lines, reading more only
    /// when none is complete. Returns the units used and whether it has more.
    fn serve_one(
        &mut self,
        registry: &Registry,
        token: Token,
        share: usize,
        events: &mut Vec<ServerEvent>,
    ) -> (usize, bool) {
        let mut used = 0;
        loop {
            let Some(c) = self.clients.get_mut(&token) else {
                return (used, false);
            };
            if !c.reading || c.finished || c.unsent() >= PAUSE_OUTPUT {
                // Not reading any more, or paused until it reads its answers (a
                // WRITABLE event, or the next reply, queues it again).
                return (used, false);
            }
            if used >= share {
                return (used, true);
            }
            used += 1;
            let line = match c.next_line() {
                Frame::Line(line) => line,
                Frame::Overlong => {
                    self.overlong(registry, token, events);
                    return (used, false);
                }
                Frame::Partial => match c.read(&mut self.scratch) {
                    Got::Bytes(_) => continue,
                    // Edge-triggered: the next event queues it again.
                    Got::WouldBlock => return (used, false),
                    Got::Eof => {
                        c.reading = false;
                        if c.pending == 0 && !c.finished {
                            c.finished = true;
                            events.push(ServerEvent::Gone(token));
                        }
                        return (used, false);
                    }
                    Got::Broken => {
                        self.drop_client(registry, token, events);
                        return (used, false);
                    }
                },
            };
            c.spoke = true;
            c.last_active = Instant::now();
            match protocol::parse_request(&line) {
                Ok(req) => {
                    c.pending += 1;
                    if matches!(req, Request::Logs { follow: true, .. }) {
                        c.following = true;
                    }
                    events.push(ServerEvent::Request(token, req));
                }
                Err(msg) => {
                    if !self.queue_in_handle(registry, token, &Response::error(msg), events) {
                        return (used, false);
                    }
                }
            }
        }
    }

    fn enqueue(&mut self, token: Token) {
        if let Some(c) = self.clients.get_mut(&token) {
            if !c.queued && c.reading && !c.finished {
                c.queued = true;
                self.ready.push_back(token);
            }
        }
    }

    /// An over-long line: answer with an error, stop reading, close once answered.
    fn overlong(
        &mut self,
        registry: &Registry,
        token: Token,
        events: &mut Vec<ServerEvent>,
    ) -> bool {
        let c = self.conn(token);
        c.reading = false;
        c.spoke = true;
        c.discard_input();
        if c.pending == 0 {
            c.finished = true;
            events.push(ServerEvent::Gone(token));
        }
        let msg = format!(
            "bad request: line longer than {} KiB; closing the connection",
            MAX_REQUEST_LINE / 1024
        );
        self.queue_in_handle(registry, token, &Response::error(msg), events)
    }

    /// `queue` from inside `handle`, where a drop is reported as `Gone`.
    fn queue_in_handle(
        &mut self,
        registry: &Registry,
        token: Token,
        response: &Response,
        events: &mut Vec<ServerEvent>,
    ) -> bool {
        let finished = self.clients.get(&token).is_some_and(|c| c.finished);
        let ok = self.queue(registry, token, response.to_line().as_bytes());
        if !ok && !finished {
            events.push(ServerEvent::Gone(token));
        }
        ok
    }

    /// Append `bytes` to the client's output and write what the socket takes now.
    /// Returns false if the client was dropped (broken or too slow).
    fn queue(&mut self, registry: &Registry, token: Token, bytes: &[u8]) -> bool {
        let Some(c) = self.clients.get_mut(&token) else {
            return false;
        };
        if c.unsent() + bytes.len() > MAX_OUTPUT {
            log::warn!("control socket: dropping a client that does not read its answers");
            self.remove(registry, token);
            return false;
        }
        c.push(bytes);
        if c.flush().is_err() {
            self.remove(registry, token);
            return false;
        }
        self.update_interest(registry, token)
    }

    /// WRITABLE interest exactly while output is pending. Returns false if the client
    /// was dropped because the registry refused.
    fn update_interest(&mut self, registry: &Registry, token: Token) -> bool {
        let c = self.conn(token);
        let want = c.unsent() > 0;
        if want == c.writable {
            return true;
        }
        let interest = if want {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if registry.reregister(&mut c.stream, token, interest).is_err() {
            self.remove(registry, token);
            return false;
        }
        c.writable = want;
        true
    }

    /// Close a finished client whose output is all written. Returns false if it was
    /// closed (or is unknown).
    fn settle(&mut self, registry: &Registry, token: Token) -> bool {
        let Some(c) = self.clients.get(&token) else {
            return false;
        };
        if c.finished && c.unsent() == 0 {
            self.remove(registry, token);
            return false;
        }
        self.update_interest(registry, token)
    }

    /// A broken client: close it, report it unless already reported.
    fn drop_client(&mut self, registry: &Registry, token: Token, events: &mut Vec<ServerEvent>) {
        let finished = self.clients.get(&token).is_some_and(|c| c.finished);
        self.remove(registry, token);
        if !finished {
            events.push(ServerEvent::Gone(token));
        }
    }

    fn remove(&mut self, registry: &Registry, token: Token) {
        if let Some(mut c) = self.clients.remove(&token) {
            let _ = registry.deregister(&mut c.stream);
        }
    }

    #[cfg(test)]
    pub(crate) fn set_limits(&mut self, max_clients: usize, idle_after: Duration) {
        self.max_clients = max_clients;
        self.idle_after = idle_after;
    }

    #[cfg(test)]
    pub(crate) fn set_fd_limit(&mut self, fd_limit: u64) {
        self.fd_limit = fd_limit;
    }

    fn conn(&mut self, token: Token) -> &mut Conn {
        self.clients.get_mut(&token).expect("a known client")
    }
}

mod admit;

pub use crate::admission::fd_reserve;
pub use admit::{FEW_CLIENTS, IDLE_AFTER, MAX_CLIENTS, MIN_CLIENTS};

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
