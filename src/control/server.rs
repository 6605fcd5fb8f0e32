//! The listening side of the control socket, driven by the runtime's mio loop: accept,
//! admit or turn away, read requests, queue answers. The socket file is
//! [`super::socket`]'s business, framing and buffering one connection's bytes is
//! [`super::conn`]'s.
//!
//! Nothing here blocks: the listener and every client are non-blocking and registered
//! edge-triggered; reads go until `WouldBlock` (within a budget, see below), writes go
//! until `WouldBlock` and the rest waits in a bounded per-client buffer with WRITABLE
//! interest added only while something is pending. A client that connects and says
//! nothing is one idle fd; a client that does not read its answers is dropped when its
//! buffer passes [`MAX_OUTPUT`]; a client that floods us is read at most
//! [`READ_BUDGET`] bytes per event, after which it is re-armed so the loop can serve
//! everyone else first.
//!
//! How the loop uses it:
//! * `bind` at startup (a clear error if another supervise owns the path), `register`
//!   with a listener token and the first token of a range reserved for clients;
//! * for every event whose token [`ControlServer::owns`], call [`ControlServer::handle`]
//!   and act on the returned [`ServerEvent`]s;
//! * answer every `Request` with exactly one [`ControlServer::reply`] (possibly much
//!   later, e.g. when a restart is done); for `logs --follow`, keep the client and call
//!   [`ControlServer::send_line`] for every new line until `Gone` or until `send_line`
//!   returns false;
//! * [`ControlServer::remove_file`] at shutdown.

use super::conn::{Conn, Frame, Got};
use super::protocol::{self, LogLine, Request, Response, MAX_REQUEST_LINE};
use super::socket::{peer_uid, SocketFile};
use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use std::collections::HashMap;
use std::io::{self, ErrorKind, Write};
use std::path::Path;

/// A connected client, named by its mio token. Tokens are never reused, so a stale id
/// kept by the loop can never reach a newer client.
pub type ClientId = Token;

/// What [`ControlServer::handle`] reports to the loop.
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

/// At most this many clients at once. When full, the oldest client that never sent a
/// complete line is closed to make room; if there is none, the newcomer is answered
/// with an error and closed.
pub const MAX_CLIENTS: usize = 64;
/// A client whose unsent output passes this is dropped (a reader too slow to keep up).
pub const MAX_OUTPUT: usize = 4 * 1024 * 1024;
/// Bytes read from one client per event before the loop gets to run other events.
pub const READ_BUDGET: usize = 1024 * 1024;
/// Connections accepted per listener event before the loop gets to run other events.
const ACCEPT_BUDGET: usize = 256;

/// The control socket's listener and its clients.
pub struct ControlServer {
    file: SocketFile,
    listener: UnixListener,
    listener_token: Option<Token>,
    first_client_token: usize,
    next_token: usize,
    clients: HashMap<Token, Conn>,
    euid: u32,
    scratch: Vec<u8>,
}

impl ControlServer {
    /// Bind the socket at `path` (see [`SocketFile::bind`]).
    pub fn bind(path: &Path) -> Result<ControlServer, String> {
        let (file, listener) = SocketFile::bind(path)?;
        Ok(ControlServer {
            file,
            listener: UnixListener::from_std(listener),
            listener_token: None,
            first_client_token: usize::MAX,
            next_token: usize::MAX,
            clients: HashMap::new(),
            euid: nix::unistd::geteuid().as_raw(),
            scratch: vec![0; 64 * 1024],
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

    /// Handle a readiness event for `token`: accept on the listener, read requests and
    /// flush answers on a client. Returns the complete requests and the departures.
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
            self.serve(registry, token, &mut events);
        }
        events
    }

    /// Queue the answer to a request. Returns false if the client is gone: closed,
    /// dropped now as a too-slow reader, or finished (it shut its sending side, and
    /// this was the answer to its last request: written, then closed). Forget it; in
    /// particular, start following logs for a `logs --follow` only if this is true.
    pub fn reply(&mut self, registry: &Registry, client: ClientId, response: &Response) -> bool {
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
        let queued = self.queue(registry, client, response.to_line().as_bytes());
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

    fn accept(&mut self, registry: &Registry) {
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
            if self.clients.len() >= MAX_CLIENTS {
                // Full. Connections that never sent a whole request (silent ones,
                // half a line) must not lock the CLI out: the oldest of them makes room.
                let idle = self
                    .clients
                    .iter()
                    .filter(|(_, c)| !c.spoke)
                    .map(|(t, _)| *t)
                    .min();
                if let Some(old) = idle {
                    log::warn!(
                        "control socket: {MAX_CLIENTS} clients; closing the oldest silent one"
                    );
                    self.remove(registry, old);
                }
            }
            if self.clients.len() >= MAX_CLIENTS {
                reject(
                    &mut stream,
                    &format!("too many clients (at most {MAX_CLIENTS} at once); try again"),
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
        }
        // Budget spent with connections possibly still queued: re-arm so the loop
        // comes back after the other events.
        if let Some(t) = self.listener_token {
            let _ = registry.reregister(&mut self.listener, t, Interest::READABLE);
        }
    }

    fn serve(&mut self, registry: &Registry, token: Token, events: &mut Vec<ServerEvent>) {
        // Flush first: room in the socket may have been what woke us.
        if self.conn(token).flush().is_err() {
            self.drop_client(registry, token, events);
            return;
        }
        let mut budget = READ_BUDGET;
        let mut rearm = false;
        loop {
            let c = self.clients.get_mut(&token).expect("serve: client exists");
            if !c.reading {
                break;
            }
            if budget == 0 {
                rearm = true;
                break;
            }
            let want = budget.min(self.scratch.len());
            match c.read(&mut self.scratch[..want]) {
                Got::Eof => {
                    c.reading = false;
                    if c.pending == 0 && !c.finished {
                        c.finished = true;
                        events.push(ServerEvent::Gone(token));
                    }
                }
                Got::Bytes(n) => {
                    budget -= n;
                    if !self.take_lines(registry, token, events) {
                        return;
                    }
                }
                Got::WouldBlock => break,
                Got::Broken => {
                    self.drop_client(registry, token, events);
                    return;
                }
            }
        }
        if rearm {
            let c = self.conn(token);
            let interest = if c.writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let _ = registry.reregister(&mut c.stream, token, interest);
        }
        // Closes the client if it is finished and flushed; finished clients were
        // already reported (Gone) or answered for the last time.
        self.settle(registry, token);
    }

    /// Turn the complete lines of the client's input into requests or error answers.
    /// Returns false if the client was dropped.
    fn take_lines(
        &mut self,
        registry: &Registry,
        token: Token,
        events: &mut Vec<ServerEvent>,
    ) -> bool {
        loop {
            let c = self.conn(token);
            if !c.reading {
                return true;
            }
            let line = match c.next_line() {
                Frame::Partial => return true,
                Frame::Overlong => return self.overlong(registry, token, events),
                Frame::Line(line) => line,
            };
            c.spoke = true;
            match protocol::parse_request(&line) {
                Ok(req) => {
                    c.pending += 1;
                    events.push(ServerEvent::Request(token, req));
                }
                Err(msg) => {
                    if !self.queue_in_handle(registry, token, &Response::error(msg), events) {
                        return false;
                    }
                }
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

    fn conn(&mut self, token: Token) -> &mut Conn {
        self.clients.get_mut(&token).expect("a known client")
    }
}

/// Best effort: one error line into a fresh socket's (empty) send buffer, then close.
fn reject(stream: &mut UnixStream, message: &str) {
    let _ = stream.write(Response::error(message).to_line().as_bytes());
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
