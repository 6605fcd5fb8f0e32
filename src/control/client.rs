//! The CLI side of the control socket: find it, send one request, read the answer.
//! Blocking std sockets are fine here: the client does nothing else meanwhile.

use super::protocol::{LogLine, Request, Response};
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The control socket's path, SPEC §4: the explicit `--socket` flag, else
/// `SUPERVISE_SOCKET`, else `settings.socket` of the ecosystem file (the caller passes
/// it when it found one), else `$XDG_RUNTIME_DIR/supervise.sock`, else
/// `/run/supervise.sock` for root and `/tmp/supervise-<uid>.sock` for others.
/// Empty environment variables count as unset.
pub fn socket_path(explicit: Option<&Path>, settings_socket: Option<&Path>) -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let euid = nix::unistd::geteuid().as_raw();
    resolve_socket_path(
        explicit,
        env("SUPERVISE_SOCKET").as_deref(),
        settings_socket,
        env("XDG_RUNTIME_DIR").as_deref(),
        euid,
    )
}

fn resolve_socket_path(
    explicit: Option<&Path>,
    env_socket: Option<&Path>,
    settings_socket: Option<&Path>,
    xdg_runtime_dir: Option<&Path>,
    euid: u32,
) -> PathBuf {
    if let Some(p) = explicit.or(env_socket).or(settings_socket) {
        return p.to_path_buf();
    }
    if let Some(dir) = xdg_runtime_dir {
        return dir.join("supervise.sock");
    }
    if euid == 0 {
        PathBuf::from("/run/supervise.sock")
    } else {
        PathBuf::from(format!("/tmp/supervise-{euid}.sock"))
    }
}

/// Why a request did not get an answer.
#[derive(Debug)]
pub enum ClientError {
    /// No socket file, or nobody listens on it.
    NotRunning(PathBuf),
    /// We may not connect (the socket belongs to another user) or the server refused us.
    Refused(PathBuf, String),
    /// No answer within the timeout.
    Timeout(PathBuf, Duration),
    /// Any other I/O error.
    Io(PathBuf, io::Error),
    /// The answer is not what the protocol says.
    Protocol(String),
    /// supervise answered with an error (`follow` only; `request` returns the
    /// response with `ok: false` instead).
    Failed(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotRunning(p) => write!(
                f,
                "no supervise is running on {} (start one with `supervise ecosystem.toml`)",
                p.display()
            ),
            ClientError::Refused(p, why) => write!(f, "{}: {why}", p.display()),
            ClientError::Timeout(p, d) => write!(
                f,
                "supervise on {} did not answer within {}",
                p.display(),
                humantime::format_duration(*d)
            ),
            ClientError::Io(p, e) => write!(f, "control socket {}: {e}", p.display()),
            ClientError::Protocol(why) => write!(f, "unexpected answer from supervise: {why}"),
            ClientError::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ClientError {}

/// Send `req` and wait at most `timeout` (in total) for the answer. An error answer is
/// `Ok` with `ok: false` and `error` set.
pub fn request(socket: &Path, req: Request, timeout: Duration) -> Result<Response, ClientError> {
    let deadline = Instant::now() + timeout;
    answered(socket, &req, Some((deadline, timeout)), deadline).map(|(_, r)| r)
}

/// `logs --follow`: `on_line` gets the answer's lines first, then every streamed line,
/// until supervise closes the connection (it stopped: `Ok`) or `on_line` returns false.
/// An error answer is `Err(ClientError::Failed)`.
pub fn follow(
    socket: &Path,
    req: Request,
    on_line: &mut dyn FnMut(&LogLine) -> bool,
) -> Result<(), ClientError> {
    let (mut conn, response) = answered(socket, &req, None, Instant::now() + BUSY_PATIENCE)?;
    if !response.ok {
        return Err(ClientError::Failed(
            response.error.unwrap_or_else(|| "failed".into()),
        ));
    }
    for l in &response.lines {
        if !on_line(l) {
            return Ok(());
        }
    }
    while let Some(line) = conn.line()? {
        let l: LogLine = serde_json::from_slice(&line).map_err(|e| {
            ClientError::Protocol(format!("{e}: {}", String::from_utf8_lossy(&line)))
        })?;
        if !on_line(&l) {
            return Ok(());
        }
    }
    Ok(())
}

/// How long a client without a deadline of its own retries a busy supervise.
const BUSY_PATIENCE: Duration = Duration::from_secs(10);

/// Send `req` and read the answer line. A supervise with too many clients turns us
/// away with a reason; then we try again, backing off, until `retry_until`.
fn answered(
    socket: &Path,
    req: &Request,
    deadline: Option<(Instant, Duration)>,
    retry_until: Instant,
) -> Result<(Conn, Response), ClientError> {
    let busy = |why: &str| why.starts_with("too many clients");
    let mut backoff = Duration::from_millis(5);
    loop {
        let result = Conn::open(socket, req, deadline).and_then(|mut conn| {
            let line = conn.line()?.ok_or_else(|| {
                ClientError::Protocol("the connection closed without an answer".into())
            })?;
            Ok((conn, parse_response(&line)?))
        });
        let turned_away = match &result {
            Ok((_, r)) => !r.ok && r.error.as_deref().is_some_and(busy),
            Err(ClientError::Refused(_, why)) => busy(why),
            Err(_) => false,
        };
        if !turned_away || Instant::now() + backoff >= retry_until {
            return result;
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_millis(200));
    }
}

fn parse_response(line: &[u8]) -> Result<Response, ClientError> {
    serde_json::from_slice(line).map_err(|e| {
        let text = String::from_utf8_lossy(line);
        let shown: String = text.chars().take(200).collect();
        ClientError::Protocol(format!("{e}: {shown}"))
    })
}

struct Conn {
    path: PathBuf,
    stream: UnixStream,
    buf: Vec<u8>,
    /// The deadline and the timeout it came from (for the message).
    deadline: Option<(Instant, Duration)>,
}

impl Conn {
    fn open(
        socket: &Path,
        req: &Request,
        deadline: Option<(Instant, Duration)>,
    ) -> Result<Conn, ClientError> {
        let path = socket.to_path_buf();
        let mut stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
            ErrorKind::NotFound | ErrorKind::ConnectionRefused => {
                ClientError::NotRunning(path.clone())
            }
            ErrorKind::PermissionDenied => ClientError::Refused(
                path.clone(),
                "permission denied (the control socket belongs to another user; run as \
                 that user or root)"
                    .into(),
            ),
            _ => ClientError::Io(path.clone(), e),
        })?;
        if let Some((d, t)) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout(path, t));
            }
            let _ = stream.set_write_timeout(Some(left));
        }
        let written = stream.write_all(req.to_line().as_bytes());
        let mut conn = Conn {
            path,
            stream,
            buf: Vec::new(),
            deadline,
        };
        if let Err(e) = written {
            match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                    return Err(ClientError::Timeout(
                        conn.path,
                        deadline.map_or(Duration::ZERO, |d| d.1),
                    ))
                }
                // The server closed on us (refused: a reason line may be waiting).
                ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => {
                    if let Ok(Some(line)) = conn.line() {
                        if let Ok(r) = parse_response(&line) {
                            if let Some(why) = r.error {
                                return Err(ClientError::Refused(conn.path, why));
                            }
                        }
                    }
                    return Err(ClientError::Io(conn.path, e));
                }
                _ => return Err(ClientError::Io(conn.path, e)),
            }
        }
        Ok(conn)
    }

    /// The next line without its newline, or None at the end of the stream.
    fn line(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        let mut chunk = [0u8; 64 * 1024];
        let mut scanned = 0;
        loop {
            if let Some(i) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=scanned + i).collect();
                line.pop();
                return Ok(Some(line));
            }
            scanned = self.buf.len();
            if let Some((d, t)) = self.deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ClientError::Timeout(self.path.clone(), t));
                }
                let _ = self.stream.set_read_timeout(Some(left));
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    // A last line without newline.
                    return Ok(Some(std::mem::take(&mut self.buf)));
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    let t = self.deadline.map_or(Duration::ZERO, |d| d.1);
                    return Err(ClientError::Timeout(self.path.clone(), t));
                }
                // A reset after the server's last line: the end of the stream.
                Err(e) if e.kind() == ErrorKind::ConnectionReset && self.buf.is_empty() => {
                    return Ok(None)
                }
                Err(e) => return Err(ClientError::Io(self.path.clone(), e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_lookup_order() {
        let p = |s: &str| PathBuf::from(s);
        let flag = p("/flag.sock");
        let env = p("/env.sock");
        let set = p("/settings.sock");
        let xdg = p("/run/user/1000");
        let r = resolve_socket_path;
        assert_eq!(
            r(Some(&flag), Some(&env), Some(&set), Some(&xdg), 1000),
            flag
        );
        assert_eq!(r(None, Some(&env), Some(&set), Some(&xdg), 1000), env);
        assert_eq!(r(None, None, Some(&set), Some(&xdg), 1000), set);
        assert_eq!(
            r(None, None, None, Some(&xdg), 1000),
            p("/run/user/1000/supervise.sock")
        );
        assert_eq!(r(None, None, None, None, 0), p("/run/supervise.sock"));
        assert_eq!(
            r(None, None, None, None, 1000),
            p("/tmp/supervise-1000.sock")
        );
    }

    #[test]
    fn not_running_is_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.sock");
        let e = request(&path, Request::Status, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, ClientError::NotRunning(_)));
        assert_eq!(
            e.to_string(),
            format!(
                "no supervise is running on {} (start one with `supervise ecosystem.toml`)",
                path.display()
            )
        );
        // A stale socket file: connection refused, the same message.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let e = request(&path, Request::Status, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, ClientError::NotRunning(_)), "{e}");
    }

    #[test]
    fn timeout_when_nobody_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mute.sock");
        let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let t0 = Instant::now();
        let e = request(&path, Request::Status, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(e, ClientError::Timeout(..)), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert!(e.to_string().contains("did not answer within 200ms"), "{e}");
    }
}
