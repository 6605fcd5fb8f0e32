//! The sending end of sd_notify: supervise tells its own parent (systemd with
//! `Type=notify`, `podman run --sdnotify=container`) how it is doing (SPEC section 7).
//!
//! The parent's socket comes from supervise's `NOTIFY_SOCKET`: a path, or an abstract
//! socket written `@name`. The apps never see that variable (spawn drops it); they get
//! supervise's own socket when they use `ready = "notify"`. Sending never blocks: the
//! socket is non-blocking and a datagram the parent cannot take now is dropped, as
//! libsystemd's `sd_notify` would fail it; supervision does not wait for a parent.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

pub struct ParentNotifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// `WATCHDOG_USEC`, when the parent asked for keep-alives (and `WATCHDOG_PID`, if
    /// set, names us).
    watchdog: Option<Duration>,
}

impl ParentNotifier {
    /// From supervise's environment; `None` when there is no `NOTIFY_SOCKET`.
    pub fn from_env() -> io::Result<Option<ParentNotifier>> {
        let Some(target) = std::env::var_os("NOTIFY_SOCKET").filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let watchdog = watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        let target = target.to_string_lossy().into_owned();
        ParentNotifier::new(&target, watchdog).map(Some)
    }

    pub fn new(target: &str, watchdog: Option<Duration>) -> io::Result<ParentNotifier> {
        let addr = match target.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
            None => SocketAddr::from_pathname(target)?,
        };
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(ParentNotifier {
            socket,
            addr,
            watchdog,
        })
    }

    /// How often the parent wants `WATCHDOG=1`, if it does.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Send one datagram of `KEY=VALUE` lines.
    pub fn send(&self, message: &str) -> io::Result<()> {
        self.socket
            .send_to_addr(message.as_bytes(), &self.addr)
            .map(|_| ())
    }
}

/// `WATCHDOG_USEC` as a duration, when it is a positive number and `WATCHDOG_PID` is
/// unset or names `own_pid` (as libsystemd's `sd_watchdog_enabled` checks).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    match pid.map(|p| p.trim().parse::<u32>()) {
        None => {}
        Some(Ok(p)) if p == own_pid => {}
        Some(_) => return None,
    }
    Some(Duration::from_micros(usec))
}

/// `MONOTONIC_USEC=` for a `RELOADING=1`: CLOCK_MONOTONIC now, in microseconds.
pub fn monotonic_usec() -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(Duration::from)
        .unwrap_or_default();
    now.as_micros() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_only_when_asked_for_us() {
        let s = Duration::from_secs;
        assert_eq!(watchdog_interval(None, None, 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("x"), None, 7), None);
        assert_eq!(watchdog_interval(Some("2000000"), None, 7), Some(s(2)));
        assert_eq!(watchdog_interval(Some("2000000"), Some("7"), 7), Some(s(2)));
        assert_eq!(watchdog_interval(Some("2000000"), Some("8"), 7), None);
    }

    #[test]
    fn sends_to_a_path_and_to_an_abstract_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let n = ParentNotifier::new(path.to_str().unwrap(), None).unwrap();
        n.send("READY=1\nSTATUS=1/1 ready").unwrap();
        let mut buf = [0u8; 256];
        let len = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=1/1 ready");

        let name = format!("supervise-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&addr).unwrap();
        let n = ParentNotifier::new(&format!("@{name}"), None).unwrap();
        n.send("STOPPING=1").unwrap();
        let len = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STOPPING=1");
    }

    #[test]
    fn a_missing_parent_is_an_error_not_a_wait() {
        let n = ParentNotifier::new("/nonexistent/notify.sock", None).unwrap();
        assert!(n.send("READY=1").is_err());
    }
}
