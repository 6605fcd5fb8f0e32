//! The listening side of the control socket, driven by the runtime's mio loop.
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

use super::protocol::{self, LogLine, Request, Response, MAX_REQUEST_LINE};
use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use std::collections::HashMap;
use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};

/// A connected client, named by its mio token. Tokens are never reused, so a stale id
/// kept by the loop can never reach a newer client.
pub type ClientId = Token;

/// What [`ControlServer::handle`] reports to the loop.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// A complete, well-formed request (version checked, target and signal syntax
    /// valid). Answer it with exactly one [`ControlServer::reply`].
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

struct Client {
    stream: UnixStream,
    /// Bytes read and not yet split into lines.
    input: Vec<u8>,
    /// Bytes queued and not yet written, from `out_pos`.
    out: Vec<u8>,
    out_pos: usize,
    /// WRITABLE interest is registered.
    writable: bool,
    /// Still reading requests (false after EOF or an over-long line).
    reading: bool,
    /// Requests handed to the loop and not answered yet.
    pending: usize,
    /// The loop has been told (Gone) or decided (reply after EOF) that this client is
    /// finished: nothing more is queued, the rest of `out` is flushed, then it closes.
    finished: bool,
    /// It sent at least one complete line.
    spoke: bool,
}

impl Client {
    fn unsent(&self) -> usize {
        self.out.len() - self.out_pos
    }
}

/// The control socket's listener and its clients.
pub struct ControlServer {
    path: PathBuf,
    /// The socket file's identity, so `remove_file` never removes someone else's.
    dev_ino: (u64, u64),
    listener: UnixListener,
    listener_token: Option<Token>,
    first_client_token: usize,
    next_token: usize,
    clients: HashMap<Token, Client>,
    euid: u32,
    scratch: Vec<u8>,
}

impl ControlServer {
    /// Bind the socket at `path`, mode 0600 with no moment where it is wider.
    ///
    /// If `path` exists and something answers on it: an error, "another supervise is
    /// already running on PATH". If nothing answers (a stale socket left by a dead
    /// supervise), it is replaced. A path that exists but is not a socket is left alone.
    pub fn bind(path: &Path) -> Result<ControlServer, String> {
        let shown = path.display();
        // sun_path holds 108 bytes including the terminating NUL.
        if path.as_os_str().len() > 107 {
            return Err(format!(
                "control socket path {shown} is too long ({} bytes; a Unix socket path \
                 may have at most 107)",
                path.as_os_str().len()
            ));
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            return Err(format!(
                "cannot create the control socket {shown}: the folder {} does not exist",
                parent.display()
            ));
        }
        match fs::symlink_metadata(path) {
            Ok(meta) => {
                if !meta.file_type().is_socket() {
                    return Err(format!(
                        "cannot create the control socket {shown}: the path exists and is \
                         not a socket (remove it or choose another --socket)"
                    ));
                }
                match std::os::unix::net::UnixStream::connect(path) {
                    Ok(_) => return Err(already_running(path)),
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                        // Stale: nobody listens. Replace it.
                        match fs::remove_file(path) {
                            Ok(()) => {}
                            Err(e) if e.kind() == ErrorKind::NotFound => {}
                            Err(e) => {
                                return Err(format!(
                                    "cannot remove the stale control socket {shown}: {e}"
                                ))
                            }
                        }
                    }
                    Err(e) => {
                        return Err(format!(
                            "cannot create the control socket {shown}: it exists and \
                             connecting to it failed: {e}"
                        ))
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot create the control socket {shown}: {e}")),
        }

        // How the socket gets mode 0600 with no window where it is wider: bind(2)
        // creates the file with mode 0777 & ~umask, and changing the umask around it
        // would be process-wide, racing every other thread that creates files or
        // folders meanwhile (the log writers; tests in parallel). Instead we bind in a
        // fresh private folder (mode 0700, so nobody else can reach the socket in it),
        // chmod the socket to 0600 there, and only then hard-link it to its real name.
        // link(2), unlike rename(2), fails if the name exists, so a supervise that
        // started at the same moment is never overwritten.
        let private = make_private_dir(&parent)
            .map_err(|e| format!("cannot create the control socket {shown}: {e}"))?;
        let inner = private.join("s");
        let result = (|| {
            let listener = std::os::unix::net::UnixListener::bind(&inner)?;
            fs::set_permissions(&inner, fs::Permissions::from_mode(0o600))?;
            fs::hard_link(&inner, path)?;
            Ok::<_, io::Error>(listener)
        })();
        let _ = fs::remove_file(&inner);
        let _ = fs::remove_dir(&private);
        let listener = match result {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(already_running(path)),
            Err(e) => return Err(format!("cannot create the control socket {shown}: {e}")),
        };
        let meta = fs::symlink_metadata(path)
            .map_err(|e| format!("cannot create the control socket {shown}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("cannot create the control socket {shown}: {e}"))?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            dev_ino: (meta.dev(), meta.ino()),
            listener: UnixListener::from_std(listener),
            listener_token: None,
            first_client_token: usize::MAX,
            next_token: usize::MAX,
            clients: HashMap::new(),
            // SAFETY: geteuid(2) cannot fail and has no preconditions.
            euid: unsafe { libc::geteuid() },
            scratch: vec![0; 64 * 1024],
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
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
        if let Some(mut c) = self.clients.remove(&client) {
            let _ = registry.deregister(&mut c.stream);
        }
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
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.dev_ino {
                let _ = fs::remove_file(&self.path);
            }
        }
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
            match peer_uid(stream.as_raw_fd()) {
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
            self.clients.insert(
                token,
                Client {
                    stream,
                    input: Vec::new(),
                    out: Vec::new(),
                    out_pos: 0,
                    writable: false,
                    reading: true,
                    pending: 0,
                    finished: false,
                    spoke: false,
                },
            );
        }
        // Budget spent with connections possibly still queued: re-arm so the loop
        // comes back after the other events.
        if let Some(t) = self.listener_token {
            let _ = registry.reregister(&mut self.listener, t, Interest::READABLE);
        }
    }

    fn serve(&mut self, registry: &Registry, token: Token, events: &mut Vec<ServerEvent>) {
        // Flush first: room in the socket may have been what woke us.
        if !self.flush(token) {
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
            match c.stream.read(&mut self.scratch[..want]) {
                Ok(0) => {
                    c.reading = false;
                    if c.pending == 0 && !c.finished {
                        c.finished = true;
                        events.push(ServerEvent::Gone(token));
                    }
                }
                Ok(n) => {
                    budget -= n;
                    c.input.extend_from_slice(&self.scratch[..n]);
                    if !self.take_lines(registry, token, events) {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.drop_client(registry, token, events);
                    return;
                }
            }
        }
        if rearm {
            if let Some(c) = self.clients.get_mut(&token) {
                let interest = if c.writable {
                    Interest::READABLE | Interest::WRITABLE
                } else {
                    Interest::READABLE
                };
                let _ = registry.reregister(&mut c.stream, token, interest);
            }
        }
        // Closes the client if it is finished and flushed; finished clients were
        // already reported (Gone) or answered for the last time.
        self.settle(registry, token);
    }

    /// Split complete lines out of the client's input and turn them into requests or
    /// error answers. Returns false if the client was dropped.
    fn take_lines(
        &mut self,
        registry: &Registry,
        token: Token,
        events: &mut Vec<ServerEvent>,
    ) -> bool {
        loop {
            let c = self
                .clients
                .get_mut(&token)
                .expect("take_lines: client exists");
            if !c.reading {
                return true;
            }
            let Some(nl) = c.input.iter().position(|&b| b == b'\n') else {
                if c.input.len() > MAX_REQUEST_LINE {
                    return self.overlong(registry, token, events);
                }
                return true;
            };
            let mut line: Vec<u8> = c.input.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > MAX_REQUEST_LINE {
                return self.overlong(registry, token, events);
            }
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
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
        let c = self
            .clients
            .get_mut(&token)
            .expect("overlong: client exists");
        c.reading = false;
        c.input = Vec::new();
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
        if c.out_pos == c.out.len() {
            c.out.clear();
            c.out_pos = 0;
        }
        c.out.extend_from_slice(bytes);
        if !self.flush(token) {
            self.remove(registry, token);
            return false;
        }
        self.update_interest(registry, token)
    }

    /// Write queued output until done or `WouldBlock`. False if the socket is broken.
    fn flush(&mut self, token: Token) -> bool {
        let c = self.clients.get_mut(&token).expect("flush: client exists");
        while c.out_pos < c.out.len() {
            match c.stream.write(&c.out[c.out_pos..]) {
                Ok(0) => return false,
                Ok(n) => c.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if c.out_pos == c.out.len() {
            c.out.clear();
            c.out_pos = 0;
        } else if c.out_pos > 64 * 1024 && c.out_pos * 2 > c.out.len() {
            c.out.drain(..c.out_pos);
            c.out_pos = 0;
        }
        true
    }

    /// WRITABLE interest exactly while output is pending. Returns false if the client
    /// was dropped because the registry refused.
    fn update_interest(&mut self, registry: &Registry, token: Token) -> bool {
        let c = self
            .clients
            .get_mut(&token)
            .expect("update_interest: client exists");
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
        if !self.update_interest(registry, token) {
            return false;
        }
        true
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
}

fn already_running(path: &Path) -> String {
    format!("another supervise is already running on {}", path.display())
}

/// A new folder in `parent`, mode 0700 (mkdir(2) with 0700 can only be narrowed by
/// the umask, never widened).
fn make_private_dir(parent: &Path) -> io::Result<PathBuf> {
    let pid = std::process::id();
    for n in 0u32..1000 {
        let dir = parent.join(format!(".sv{pid:x}.{n}"));
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        ErrorKind::AlreadyExists,
        "cannot find a free name for a private folder",
    ))
}

/// The uid of the process at the other end (SO_PEERCRED: as of connect(2)).
fn peer_uid(fd: RawFd) -> io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// Best effort: one error line into a fresh socket's (empty) send buffer, then close.
fn reject(stream: &mut UnixStream, message: &str) {
    let _ = stream.write(Response::error(message).to_line().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::client;
    use mio::{Events, Poll};
    use std::io::{BufRead, BufReader};
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
                self.poll
                    .poll(&mut self.events, Some(Duration::from_millis(10)))
                    .unwrap();
                let tokens: Vec<Token> = self.events.iter().map(|e| e.token()).collect();
                for (k, token) in tokens.into_iter().enumerate() {
                    assert!(self.server.owns(token));
                    let ev = self.events.iter().nth(k).unwrap();
                    let out = self.server.handle(self.poll.registry(), token, ev);
                    for e in out {
                        if let ServerEvent::Request(c, r) = &e {
                            if let Some(resp) = answer(r) {
                                self.server.reply(self.poll.registry(), *c, &resp);
                            }
                        }
                        self.seen.push(e);
                    }
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
                    target: "web.1".into(),
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
                    target: "web.1".into()
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
            let t = thread::spawn(move || {
                client::request(&p, Request::Status, Duration::from_secs(10))
            });
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
        let t =
            thread::spawn(move || client::request(&p, Request::Status, Duration::from_secs(10)));
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
                target: "web".into(),
                lines: 2,
                follow: true,
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
                target: "nope".into(),
                lines: 2,
                follow: true,
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
            target: "all".into(),
            lines: 0,
            follow: true,
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
    fn too_many_clients_are_turned_away() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let mut lp = Loop::new(&path);
        // Busy clients (each sent a request, left unanswered here).
        let _held: Vec<StdStream> = (0..MAX_CLIENTS)
            .map(|_| {
                let mut c = StdStream::connect(&path).unwrap();
                c.write_all(Request::Status.to_line().as_bytes()).unwrap();
                c
            })
            .collect();
        lp.run(&mut |_| None, &mut |l| l.requests() == MAX_CLIENTS);
        let mut extra = connect(&path);
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
        let r: Response = serde_json::from_str(&line).unwrap();
        assert!(r.error.unwrap().starts_with("too many clients"));
        assert_eq!(lp.server.client_count(), MAX_CLIENTS);
    }

    #[test]
    fn silent_clients_make_room() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let mut lp = Loop::new(&path);
        let mut held: Vec<BufReader<StdStream>> =
            (0..MAX_CLIENTS).map(|_| connect(&path)).collect();
        lp.run(&mut pong, &mut |l| l.server.client_count() == MAX_CLIENTS);
        // The CLI still gets in; the oldest silent connection is closed for it.
        let p = path.clone();
        let t =
            thread::spawn(move || client::request(&p, Request::Status, Duration::from_secs(10)));
        lp.run(&mut pong, &mut |_| t.is_finished());
        assert!(t.join().unwrap().unwrap().ok);
        assert_eq!(read_line(&mut held[0]), "");
        // The CLI's own connection goes once the server has read its end.
        lp.run(&mut pong, &mut |l| {
            l.server.client_count() == MAX_CLIENTS - 1
        });
        assert_eq!(lp.server.client_count(), MAX_CLIENTS - 1);
    }

    #[test]
    fn peer_uid_is_ours() {
        let (a, _b) = StdStream::pair().unwrap();
        // SAFETY: geteuid(2) cannot fail.
        assert_eq!(peer_uid(a.as_raw_fd()).unwrap(), unsafe { libc::geteuid() });
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
        // SAFETY: geteuid(2) cannot fail.
        let euid = unsafe { libc::geteuid() };
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
        let want = format!(
            "GOT:{{\"ok\":false,\"error\":\"permission denied: uid {uid} is not allowed\"}}\n"
        );
        assert!(output.contains(&want), "{output}");
        assert_eq!(lp.requests(), 0);
        assert_eq!(lp.server.client_count(), 0);
    }
}
