//! The read-only HTTP endpoint of `settings.http` (SPEC section 7): `/livez`, `/readyz`
//! and `/metrics` for orchestrators' probes and Prometheus, served by the event loop
//! itself, so a wedged loop fails the liveness probe.
//!
//! This module frames requests and writes answers; what to answer is the runtime's.
//! Everything is non-blocking and bounded, so no client can delay supervision: at most
//! [`MAX_CONNECTIONS`] clients, never taking the descriptors supervision needs (see
//! `admit`: a newcomer that does not get in is answered 503 and closed), a request
//! head of at most [`MAX_HEAD`] bytes, one request per connection (answered with
//! `Connection: close`), and a deadline per connection ([`CLIENT_TIMEOUT`]) after which
//! a silent or slow client is dropped. Without clients there is no deadline: idle
//! supervise never wakes for HTTP.

mod admit;
pub mod metrics;

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use crate::admission::{soft_nofile, Refusals, Spare};

pub const MAX_CONNECTIONS: usize = 128;
pub const MAX_HEAD: usize = 8 * 1024;
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// A request the runtime answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// Without the query string.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// The bytes on the wire: status line, headers, and the body unless the request was HEAD.
pub fn encode(response: &Response, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    if response.status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head_only {
        bytes.extend_from_slice(&response.body);
    }
    bytes
}

/// What the head read so far says.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    Complete(Request),
    Partial,
    /// Answer with this status and close.
    Bad(u16),
}

/// Parse a request head: the request line of `METHOD TARGET HTTP/1.x`, up to the blank
/// line that ends the headers (which are not needed and not read).
pub fn parse_head(input: &[u8]) -> Head {
    let end = input
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| input.windows(2).position(|w| w == b"\n\n"));
    if end.is_none() {
        return if input.len() >= MAX_HEAD {
            Head::Bad(431)
        } else {
            Head::Partial
        };
    }
    let line_end = input
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(input.len());
    let Ok(line) = std::str::from_utf8(&input[..line_end]) else {
        return Head::Bad(400);
    };
    let mut words = line.trim_end_matches('\r').split(' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some(method), Some(target), Some(version), None)
            if !method.is_empty() && target.starts_with('/') && version.starts_with("HTTP/1.") =>
        {
            let path = target.split(['?', '#']).next().unwrap_or(target);
            Head::Complete(Request {
                method: method.to_string(),
                path: path.to_string(),
            })
        }
        _ => Head::Bad(400),
    }
}

struct Client {
    stream: TcpStream,
    input: Vec<u8>,
    /// The answer, once there is one; `out[..written]` is on the wire.
    out: Option<Vec<u8>>,
    written: usize,
    deadline: Instant,
}

pub struct HttpServer {
    listener: TcpListener,
    token: Token,
    first_client: usize,
    next_client: usize,
    clients: HashMap<Token, Client>,
    /// The soft open-file limit.
    fd_limit: u64,
    /// A descriptor to give up when accept(2) finds none free (see `admit`).
    spare: Spare,
    /// accept(2) found no descriptor free and the spare did not help: retry each turn.
    stalled: bool,
    /// Newcomers turned away since the last one got in.
    turned_away: Refusals,
}

impl HttpServer {
    /// Bind `addr` (non-blocking, `SO_REUSEADDR`, close-on-exec).
    pub fn bind(addr: SocketAddr) -> io::Result<HttpServer> {
        Ok(HttpServer {
            listener: TcpListener::bind(addr)?,
            token: Token(0),
            first_client: 0,
            next_client: 0,
            clients: HashMap::new(),
            fd_limit: soft_nofile(),
            spare: Spare::open(),
            stalled: false,
            turned_away: Refusals::new("http"),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Register the listener as `token`; clients get tokens from `first_client` up.
    pub fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        first_client: usize,
    ) -> io::Result<()> {
        self.token = token;
        self.first_client = first_client;
        self.next_client = first_client;
        registry.register(&mut self.listener, token, Interest::READABLE)
    }

    pub fn owns(&self, token: Token) -> bool {
        token == self.token || token.0 >= self.first_client && token.0 < self.next_client
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.clients.values().map(|c| c.deadline).min()
    }

    /// Drop the clients whose time is up.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        let late: Vec<Token> = self
            .clients
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for token in late {
            self.close(registry, token);
        }
    }

    /// Serve an event of `token` (the listener or a client); `answer` is asked once per
    /// complete request.
    pub fn ready(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        answer: &mut dyn FnMut(&Request) -> Response,
    ) {
        if token == self.token {
            self.accept(registry, now);
            return;
        }
        let Some(client) = self.clients.get_mut(&token) else {
            return;
        };
        if client.out.is_none() {
            match read_head(client) {
                Head::Partial => return,
                Head::Bad(status) => {
                    let text = Response::text(status, format!("{}\n", reason(status)));
                    client.out = Some(encode(&text, false));
                }
                Head::Complete(request) => {
                    let response = answer(&request);
                    client.out = Some(encode(&response, request.method == "HEAD"));
                }
            }
            client.deadline = now + CLIENT_TIMEOUT;
            if let Err(e) = registry.reregister(&mut client.stream, token, Interest::WRITABLE) {
                log::warn!("http: cannot wait to write to a client: {e}");
            }
        }
        if flush(client) {
            self.close(registry, token);
        }
    }

    fn close(&mut self, registry: &Registry, token: Token) {
        if let Some(mut client) = self.clients.remove(&token) {
            let _ = registry.deregister(&mut client.stream);
        }
    }

    /// Connected clients (for tests and figures).
    pub fn clients(&self) -> usize {
        self.clients.len()
    }
}

/// Read what the client sent so far (at most [`MAX_HEAD`] bytes in all).
fn read_head(client: &mut Client) -> Head {
    let mut buf = [0u8; 2048];
    loop {
        let room = MAX_HEAD.saturating_sub(client.input.len()).min(buf.len());
        if room == 0 {
            return parse_head(&client.input);
        }
        match client.stream.read(&mut buf[..room]) {
            Ok(0) => {
                // The client closed before a whole head: nothing to answer.
                return match parse_head(&client.input) {
                    Head::Partial => Head::Bad(400),
                    other => other,
                };
            }
            Ok(n) => client.input.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return parse_head(&client.input),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Head::Bad(400),
        }
    }
}

/// Write what the socket takes; true when the client is done with (all written, or
/// the connection broke).
fn flush(client: &mut Client) -> bool {
    let Some(out) = &client.out else {
        return false;
    };
    while client.written < out.len() {
        match client.stream.write(&out[client.written..]) {
            Ok(0) => return true,
            Ok(n) => client.written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str) -> Head {
        Head::Complete(Request {
            method: method.into(),
            path: path.into(),
        })
    }

    #[test]
    fn heads_are_parsed_or_refused() {
        assert_eq!(
            parse_head(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"),
            req("GET", "/livez")
        );
        assert_eq!(
            parse_head(b"HEAD /readyz?verbose HTTP/1.0\r\n\r\n"),
            req("HEAD", "/readyz")
        );
        assert_eq!(
            parse_head(b"POST /metrics HTTP/1.1\n\n"),
            req("POST", "/metrics")
        );
        assert_eq!(
            parse_head(b"GET /livez HTTP/1.1\r\nHost: x\r\n"),
            Head::Partial
        );
        assert_eq!(parse_head(b"GET /livez\r\n\r\n"), Head::Bad(400));
        assert_eq!(parse_head(b"GET livez HTTP/1.1\r\n\r\n"), Head::Bad(400));
        assert_eq!(parse_head(b"\xff /x HTTP/1.1\r\n\r\n"), Head::Bad(400));
        assert_eq!(parse_head(&vec![b'a'; MAX_HEAD]), Head::Bad(431));
    }

    #[test]
    fn responses_carry_length_and_close_and_head_has_no_body() {
        let r = Response::text(405, "no\n");
        let text = String::from_utf8(encode(&r, false)).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{text}"
        );
        assert!(text.contains("Content-Length: 3\r\n") && text.contains("Allow: GET, HEAD\r\n"));
        assert!(text.ends_with("\r\n\r\nno\n"));
        let head = String::from_utf8(encode(&Response::text(200, "ok\n"), true)).unwrap();
        assert!(head.contains("Content-Length: 3\r\n") && head.ends_with("\r\n\r\n"));
    }
}
