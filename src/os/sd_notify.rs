//! The receiving end of the sd_notify protocol (`ready = "notify"`, SPEC §3): one datagram
//! socket per supervise, its path given to the instances as `NOTIFY_SOCKET`. Messages are
//! attributed to an instance by the sender's pid, which the kernel attaches to every
//! datagram (`SO_PASSCRED` / `SCM_CREDENTIALS`), so a program cannot speak for another.
//!
//! The socket is non-blocking: register [`NotifySocket::raw_fd`] with mio (readable) and call
//! [`NotifySocket::receive`] on every readiness event; it drains until `EAGAIN`.
//!
//! Permissions: the socket file is mode 0666 so that apps running as another user (`user=`)
//! can send. Access is meant to be limited by the directory: the caller puts the socket in a
//! private directory of mode 0711 (others may pass through it to a path they know, but not
//! list it). Any process that can reach the file can send, but every message is attributed
//! by its kernel-supplied pid, and only instances' pids mean anything to supervise.

use std::fs;
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::socket::{
    self, recvmsg, sockopt, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    UnixAddr, UnixCredentials,
};

/// Largest datagram accepted (systemd's limit too); longer ones are dropped.
const MAX_DATAGRAM: usize = 4096;

/// Most fds one `SCM_RIGHTS` message can carry (the kernel's SCM_MAX_FD). Room for them
/// all means fds sent to us (`FDSTORE=1`) are always received, and then closed, never leaked.
const MAX_FDS: usize = 253;

/// One parsed notification: the core's type, which the parser fills in.
pub use crate::state::NotifyMessage;

/// Parse one datagram: newline-separated `KEY=VALUE` lines; unknown keys, lines without `=`
/// and malformed numbers are ignored, invalid UTF-8 is replaced, a later key wins.
pub fn parse(datagram: &[u8]) -> NotifyMessage {
    let mut m = NotifyMessage::default();
    for line in datagram.split(|b| *b == b'\n') {
        let line = trim_nuls(line);
        let Some(eq) = line.iter().position(|b| *b == b'=') else {
            continue;
        };
        let (key, value) = (&line[..eq], &line[eq + 1..]);
        let flag = value == b"1";
        match key {
            b"READY" => m.ready = flag,
            b"STOPPING" => m.stopping = flag,
            b"RELOADING" => m.reloading = flag,
            b"WATCHDOG" => m.watchdog = flag,
            b"STATUS" => {
                let text = String::from_utf8_lossy(value);
                m.status = Some(
                    text.chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .collect(),
                );
            }
            b"MAINPID" => m.main_pid = number(value).filter(|n| *n > 0),
            b"ERRNO" => m.errno = number(value).filter(|n| *n >= 0),
            _ => {}
        }
    }
    m
}

fn trim_nuls(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., 0] = s {
        s = rest;
    }
    s
}

fn number(value: &[u8]) -> Option<i32> {
    std::str::from_utf8(value).ok()?.trim().parse().ok()
}

/// The notify socket. Dropping it closes the socket and removes its file.
#[derive(Debug)]
pub struct NotifySocket {
    fd: OwnedFd,
    path: PathBuf,
    /// Device and inode of our file: only that file is removed on drop.
    file: (u64, u64),
}

impl NotifySocket {
    /// Bind a datagram socket at `path` (an existing socket file there is removed first; any
    /// other kind of file is an error), with `SO_PASSCRED`, non-blocking, close-on-exec,
    /// file mode 0666 (see the module docs: the caller provides the 0711 directory).
    pub fn bind(path: &Path) -> io::Result<NotifySocket> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: exists and is not a socket", path.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let addr = UnixAddr::new(path).map_err(io::Error::from)?;
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        // Before bind, so no datagram ever arrives without credentials.
        socket::setsockopt(&fd, sockopt::PassCred, &true)?;
        socket::bind(fd.as_raw_fd(), &addr)?;
        let finish = || -> io::Result<(u64, u64)> {
            fs::set_permissions(path, fs::Permissions::from_mode(0o666))?;
            let m = fs::symlink_metadata(path)?;
            Ok((m.dev(), m.ino()))
        };
        match finish() {
            Ok(file) => Ok(NotifySocket {
                fd,
                path: path.to_path_buf(),
                file,
            }),
            Err(e) => {
                let _ = fs::remove_file(path);
                Err(e)
            }
        }
    }

    /// The value for `NOTIFY_SOCKET`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// For `mio::unix::SourceFd` registration (readable interest).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Read every pending datagram (until `EAGAIN`); never blocks. Each comes with the
    /// sender's pid from its credentials. Datagrams without credentials, empty ones and
    /// oversized ones (> 4096 bytes) are dropped; fds passed along are closed.
    pub fn receive(&self) -> Vec<(i32, NotifyMessage)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut cmsg = nix::cmsg_space!(UnixCredentials, [RawFd; MAX_FDS]);
        loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC;
            let (bytes, pid, truncated) =
                match recvmsg::<()>(self.fd.as_raw_fd(), &mut iov, Some(&mut cmsg), flags) {
                    Ok(msg) => {
                        let mut pid = None;
                        match msg.cmsgs() {
                            Ok(cmsgs) => {
                                for c in cmsgs {
                                    match c {
                                        ControlMessageOwned::ScmCredentials(cred) => {
                                            pid = Some(cred.pid())
                                        }
                                        ControlMessageOwned::ScmRights(fds) => {
                                            for fd in fds {
                                                // The kernel just installed it in our
                                                // table; nobody else owns it.
                                                let _ = nix::unistd::close(fd);
                                            }
                                        }
                                        _ => {}
                                    }
                                }
                            }
                            Err(e) => log::warn!("notify socket: control data: {e}"),
                        }
                        let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
                        (msg.bytes, pid, truncated)
                    }
                    Err(Errno::EINTR) => continue,
                    Err(Errno::EAGAIN) => break,
                    Err(e) => {
                        log::warn!("notify socket {}: {e}", self.path.display());
                        break;
                    }
                };
            match pid {
                _ if truncated => log::warn!(
                    "notify socket: dropped a datagram over {MAX_DATAGRAM} bytes (pid {pid:?})"
                ),
                None | Some(0) => log::warn!("notify socket: dropped a datagram without sender"),
                Some(_) if bytes == 0 => {}
                Some(pid) => out.push((pid, parse(&buf[..bytes]))),
            }
        }
        out
    }
}

impl AsRawFd for NotifySocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for NotifySocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        if let Ok(m) = fs::symlink_metadata(&self.path) {
            if (m.dev(), m.ino()) == self.file {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    fn me() -> i32 {
        std::process::id() as i32
    }

    #[test]
    fn parse_keys() {
        let m = parse(b"READY=1\nSTATUS=Listening on :3000\nWATCHDOG=1\n");
        assert_eq!(
            m,
            NotifyMessage {
                ready: true,
                watchdog: true,
                status: Some("Listening on :3000".into()),
                ..Default::default()
            }
        );
        let m = parse(b"STOPPING=1");
        assert!(m.stopping && !m.ready);
        let m = parse(b"RELOADING=1\nMAINPID=42\nERRNO=2\nFOO=bar\nnoequals\nREADY=0");
        assert!(m.reloading && !m.ready);
        assert_eq!((m.main_pid, m.errno), (Some(42), Some(2)));
        assert_eq!(parse(b"MAINPID=x\nMAINPID=-1\nERRNO=").main_pid, None);
        assert_eq!(parse(b"").clone(), NotifyMessage::default());
        assert_eq!(parse(b"WATCHDOG=trigger"), NotifyMessage::default());
    }

    #[test]
    fn parse_tolerates_bad_bytes() {
        let m = parse(b"STATUS=caf\xff\x1b[31m\nREADY=1\0");
        assert!(m.ready);
        assert_eq!(m.status.as_deref(), Some("caf\u{fffd} [31m"));
        assert_eq!(parse(b"STATUS=").status.as_deref(), Some(""));
        assert_eq!(parse(b"STATUS=a=b").status.as_deref(), Some("a=b"));
    }

    #[test]
    fn receives_with_sender_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = NotifySocket::bind(&path).unwrap();
        assert_eq!(sock.path(), path);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o666);
        assert!(sock.receive().is_empty(), "nothing pending: no blocking");

        let tx = UnixDatagram::unbound().unwrap();
        tx.send_to(b"READY=1\nSTATUS=up", &path).unwrap();
        tx.send_to(b"WATCHDOG=1", &path).unwrap();
        tx.send_to(b"STOPPING=1", &path).unwrap();
        let got = sock.receive();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got.iter().all(|(pid, _)| *pid == me()));
        assert!(got[0].1.ready);
        assert_eq!(got[0].1.status.as_deref(), Some("up"));
        assert!(got[1].1.watchdog);
        assert!(got[2].1.stopping);
        assert!(sock.receive().is_empty());

        drop(sock);
        assert!(!path.exists(), "drop removes the file");
    }

    #[test]
    fn passed_fds_are_closed_and_message_kept() {
        use nix::sys::socket::{sendmsg, ControlMessage};
        use std::io::IoSlice;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = NotifySocket::bind(&path).unwrap();
        let tx = UnixDatagram::unbound().unwrap();
        let file = fs::File::open("/dev/null").unwrap();
        let fds = [file.as_raw_fd()];
        let addr = UnixAddr::new(&path).unwrap();
        sendmsg(
            tx.as_raw_fd(),
            &[IoSlice::new(b"FDSTORE=1\nREADY=1")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            Some(&addr),
        )
        .unwrap();
        let got = sock.receive();
        assert_eq!(got.len(), 1);
        assert!(got[0].1.ready);
        assert_eq!(got[0].0, me());
    }

    #[test]
    fn stale_socket_replaced_other_file_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        drop(UnixDatagram::bind(&path).unwrap());
        let sock = NotifySocket::bind(&path).unwrap();
        UnixDatagram::unbound()
            .unwrap()
            .send_to(b"READY=1", &path)
            .unwrap();
        assert_eq!(sock.receive().len(), 1);

        let plain = dir.path().join("plain");
        fs::write(&plain, "x").unwrap();
        assert!(NotifySocket::bind(&plain).is_err());
        assert!(plain.exists());
    }
}
