//! Listening sockets for cluster mode (SPEC §3): supervise binds each `listen` address once,
//! keeps it open for as long as some app of the running config lists it, and hands it to every
//! instance by socket activation. supervise itself never accepts on these sockets.
//!
//! Everything here is quick and never waits on the network: `bind`, `listen` and the
//! liveness check of an existing unix socket file (a non-blocking `connect`) return at once,
//! so the functions are safe to call from the event loop.
//!
//! Unix socket files are created with mode **0660** (owner and group may connect, others
//! may not), whatever the umask is: connecting needs write permission on the file, and a
//! world-connectable socket should be an explicit choice (put it in a directory whose mode
//! says who may reach it, or change the group). The mode is set between `bind` and
//! `listen`, so no client can connect while the file still has its umask-derived mode.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, UnixAddr,
};

use crate::config::model::ListenAddr;

/// The listen backlog asked for; the kernel caps it at `net.core.somaxconn`.
pub const BACKLOG: i32 = 1024;

/// Mode of the unix socket files supervise creates.
pub const UNIX_SOCKET_MODE: u32 = 0o660;

/// Longest name put into `LISTEN_FDNAMES` (systemd's FDNAME_MAX).
const FDNAME_MAX: usize = 255;

/// One listening socket, bound by supervise. `fd` is close-on-exec and in blocking mode: the
/// spawner moves it to fd 3.. in the child (clearing CLOEXEC there), and the apps accept on it.
#[derive(Debug)]
pub struct ListenSocket {
    pub addr: ListenAddr,
    pub fd: OwnedFd,
    /// The name for `LISTEN_FDNAMES`: `tcp-0.0.0.0-3000`, `tcp-__1-3001` (IPv6 `::1`),
    /// `unix-web.sock` (the file name only). Only `[A-Za-z0-9._-]`, at most 255 bytes.
    pub name: String,
    /// For unix sockets: device and inode of the file we created, so closing only ever
    /// unlinks our own file, never one somebody put there since.
    unix_file: Option<(u64, u64)>,
}

impl ListenSocket {
    /// Close the socket; a unix socket's file is removed too (if it is still ours).
    /// Instances that inherited the socket keep their copies: the listening socket itself
    /// lives on until they exit. Dropping a `ListenSocket` closes the fd but leaves the file.
    pub fn close(self) {
        if let (ListenAddr::Unix(path), Some(id)) = (&self.addr, self.unix_file) {
            unlink_if_same(path, id);
        }
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// `tcp://127.0.0.1:3000` / `unix:/run/app.sock`, the way the config spells them.
pub fn describe(addr: &ListenAddr) -> String {
    match addr {
        ListenAddr::Tcp(a) => format!("tcp://{a}"),
        ListenAddr::Unix(p) => format!("unix:{}", p.display()),
    }
}

/// The `LISTEN_FDNAMES` entry for `addr` (see [`ListenSocket::name`]).
pub fn fd_name(addr: &ListenAddr) -> String {
    let raw = match addr {
        ListenAddr::Tcp(a) => format!("tcp-{}-{}", a.ip(), a.port()),
        ListenAddr::Unix(p) => match p.file_name() {
            Some(f) => format!("unix-{}", f.to_string_lossy()),
            None => "unix".to_string(),
        },
    };
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(FDNAME_MAX);
    name
}

/// Bind and listen on one address.
///
/// TCP: `SO_REUSEADDR` (a restarted supervise rebinds despite TIME_WAIT), `IPV6_V6ONLY` for
/// IPv6 addresses (so `[::]:80` and `0.0.0.0:80` can both be listed), backlog [`BACKLOG`].
/// Unix: an existing socket file nobody listens on is stale and removed; one somebody
/// listens on is "address already in use"; a file that is not a socket is an error (never
/// removed). The new file gets mode [`UNIX_SOCKET_MODE`].
///
/// Errors read like `tcp://127.0.0.1:3000: address already in use`.
pub fn bind(addr: &ListenAddr) -> Result<ListenSocket, String> {
    let (fd, unix_file) = match addr {
        ListenAddr::Tcp(a) => (bind_tcp(a, true), None),
        ListenAddr::Unix(p) => match bind_unix(p) {
            Ok((fd, id)) => (Ok(fd), Some(id)),
            Err(e) => (Err(e), None),
        },
    };
    let fd = fd.map_err(|e| format!("{}: {e}", describe(addr)))?;
    Ok(ListenSocket {
        addr: addr.clone(),
        fd,
        name: fd_name(addr),
        unix_file,
    })
}

/// Whether `addr` could be bound now (for `supervise check` and config validation). An
/// address `set` already holds counts as bindable. TCP binds a throwaway socket (without
/// listening) and closes it; unix creates nothing: it checks the existing file as `bind`
/// would and that the directory exists and is writable.
pub fn can_bind(addr: &ListenAddr, set: Option<&SocketSet>) -> Result<(), String> {
    if set.is_some_and(|s| s.get(addr).is_some()) {
        return Ok(());
    }
    let result = match addr {
        ListenAddr::Tcp(a) => bind_tcp(a, false).map(drop),
        ListenAddr::Unix(p) => check_unix(p),
    };
    result.map_err(|e| format!("{}: {e}", describe(addr)))
}

/// The listening sockets the running config uses.
#[derive(Debug, Default)]
pub struct SocketSet {
    sockets: Vec<ListenSocket>,
}

impl SocketSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make the set hold exactly `wanted` (duplicates ignored): sockets already bound are
    /// kept as they are (same fd), new addresses are bound, and the ones no longer wanted are
    /// closed (unix files removed). All or nothing: if any new address fails to bind, the
    /// sockets bound in this call are closed again, the set is unchanged, and every failure
    /// is returned.
    ///
    /// Note: a TCP address that overlaps one being removed (`0.0.0.0:3000` replaced by
    /// `127.0.0.1:3000`) fails with "address already in use", because the old socket is
    /// still open (here and in the running instances) while the new one is bound. Such a
    /// change needs the old address dropped first (stop its users, `sync` without it).
    pub fn sync(&mut self, wanted: &[ListenAddr]) -> Result<(), Vec<(ListenAddr, String)>> {
        let mut seen = HashSet::new();
        let mut bound = Vec::new();
        let mut errors = Vec::new();
        for addr in wanted {
            if !seen.insert(addr) || self.get(addr).is_some() {
                continue;
            }
            match bind(addr) {
                Ok(s) => bound.push(s),
                Err(e) => errors.push((addr.clone(), e)),
            }
        }
        if !errors.is_empty() {
            bound.into_iter().for_each(ListenSocket::close);
            return Err(errors);
        }
        let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sockets)
            .into_iter()
            .partition(|s| seen.contains(&s.addr));
        gone.into_iter().for_each(ListenSocket::close);
        self.sockets = keep;
        self.sockets.extend(bound);
        Ok(())
    }

    pub fn get(&self, addr: &ListenAddr) -> Option<&ListenSocket> {
        self.sockets.iter().find(|s| &s.addr == addr)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ListenSocket> {
        self.sockets.iter()
    }

    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }

    /// Close every socket (unix files removed), e.g. at shutdown.
    pub fn close_all(&mut self) {
        std::mem::take(&mut self.sockets)
            .into_iter()
            .for_each(ListenSocket::close);
    }
}

fn bind_tcp(a: &SocketAddr, listen: bool) -> Result<OwnedFd, String> {
    let family = if a.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let text = |e: Errno| tcp_error(a, e);
    let fd =
        socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).map_err(text)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(text)?;
    if a.is_ipv6() {
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(text)?;
    }
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(*a)).map_err(text)?;
    if listen {
        socket::listen(&fd, backlog()).map_err(text)?;
    }
    Ok(fd)
}

fn backlog() -> Backlog {
    Backlog::new(BACKLOG.min(libc::SOMAXCONN)).unwrap_or(Backlog::MAXCONN)
}

fn tcp_error(a: &SocketAddr, e: Errno) -> String {
    match e {
        Errno::EACCES | Errno::EPERM if a.port() < 1024 => {
            "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)".into()
        }
        Errno::EADDRNOTAVAIL => "address not available (no local interface has it)".into(),
        Errno::EAFNOSUPPORT => "address family not supported (is IPv6 disabled?)".into(),
        e => errno_text(e),
    }
}

/// `EADDRINUSE` -> "address already in use": the errno's text, first letter lowercased.
fn errno_text(e: Errno) -> String {
    let desc = e.desc();
    let mut chars = desc.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => format!("{e:?}"),
    }
}

fn io_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => errno_text(Errno::from_raw(code)),
        None => e.to_string(),
    }
}

fn unix_addr(path: &Path) -> Result<UnixAddr, String> {
    UnixAddr::new(path).map_err(|e| match e {
        Errno::ENAMETOOLONG => "path too long for a unix socket (at most 107 bytes)".to_string(),
        e => errno_text(e),
    })
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn bind_unix(path: &Path) -> Result<(OwnedFd, (u64, u64)), String> {
    let ua = unix_addr(path)?;
    clear_stale_unix(path, true)?;
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(errno_text)?;
    socket::bind(fd.as_raw_fd(), &ua).map_err(|e| match e {
        Errno::ENOENT => format!("directory {} does not exist", parent_dir(path).display()),
        e => errno_text(e),
    })?;
    // From here on the file is ours: remove it again if anything below fails.
    let undo = |e: String| {
        let _ = fs::remove_file(path);
        e
    };
    fs::set_permissions(path, fs::Permissions::from_mode(UNIX_SOCKET_MODE))
        .map_err(|e| undo(format!("cannot set mode: {}", io_text(&e))))?;
    let meta = fs::symlink_metadata(path).map_err(|e| undo(io_text(&e)))?;
    socket::listen(&fd, backlog()).map_err(|e| undo(errno_text(e)))?;
    Ok((fd, (meta.dev(), meta.ino())))
}

/// `bind`'s treatment of an existing file at `path`, without creating anything, plus a
/// check that the directory is there and writable.
fn check_unix(path: &Path) -> Result<(), String> {
    unix_addr(path)?;
    clear_stale_unix(path, false)?;
    let dir = parent_dir(path);
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a directory", dir.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!("directory {} does not exist", dir.display()))
        }
        Err(e) => return Err(io_text(&e)),
    }
    use nix::unistd::{access, AccessFlags};
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| match e {
        Errno::EACCES => format!(
            "permission denied (cannot create files in {})",
            dir.display()
        ),
        e => errno_text(e),
    })
}

/// Look at an existing file at `path`: nothing there or a stale socket is fine (the stale
/// file is removed when `remove`), a live socket or any other kind of file is an error.
fn clear_stale_unix(path: &Path, remove: bool) -> Result<(), String> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_text(&e)),
    };
    if !meta.file_type().is_socket() {
        return Err("the path exists and is not a socket".into());
    }
    let probe = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(errno_text)?;
    match socket::connect(probe.as_raw_fd(), &unix_addr(path)?) {
        // Connected, or the backlog is full: somebody listens.
        Ok(()) | Err(Errno::EAGAIN) | Err(Errno::EINPROGRESS) => {
            Err("address already in use".into())
        }
        Err(Errno::EPROTOTYPE) => {
            Err("address already in use (by a socket of another type)".into())
        }
        Err(Errno::ECONNREFUSED) => {
            if remove {
                match fs::remove_file(path) {
                    Ok(()) => {
                        log::info!("removed stale socket file {}", path.display());
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("cannot remove stale socket: {}", io_text(&e))),
                }
            }
            Ok(())
        }
        Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(errno_text(e)),
    }
}

fn unlink_if_same(path: &PathBuf, (dev, ino): (u64, u64)) {
    if let Ok(m) = fs::symlink_metadata(path) {
        if m.dev() == dev && m.ino() == ino {
            if let Err(e) = fs::remove_file(path) {
                log::warn!("cannot remove socket file {}: {e}", path.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::unix::net::{UnixListener, UnixStream};

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn tcp(port: u16) -> ListenAddr {
        ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn fd_flags(fd: i32) -> (i32, i32) {
        // SAFETY: fcntl F_GETFD/F_GETFL on a descriptor we own.
        unsafe {
            (
                libc::fcntl(fd, libc::F_GETFD),
                libc::fcntl(fd, libc::F_GETFL),
            )
        }
    }

    #[test]
    fn tcp_bind_listens_blocking_cloexec() {
        let port = free_port();
        let s = bind(&tcp(port)).unwrap();
        assert_eq!(s.name, format!("tcp-127.0.0.1-{port}"));
        TcpStream::connect(("127.0.0.1", port)).expect("connect to the bound socket");
        let (fdfl, flfl) = fd_flags(s.raw_fd());
        assert_ne!(fdfl & libc::FD_CLOEXEC, 0, "close-on-exec");
        assert_eq!(flfl & libc::O_NONBLOCK, 0, "blocking");
    }

    #[test]
    fn tcp_ipv6_is_v6only() {
        let port = free_port();
        let v6 = ListenAddr::Tcp(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)));
        let Ok(s6) = bind(&v6) else {
            return; // no IPv6 on this machine
        };
        assert_eq!(s6.name, format!("tcp-__-{port}"));
        // V6ONLY: the IPv4 wildcard on the same port is still free.
        let v4 = ListenAddr::Tcp(SocketAddr::from(([0, 0, 0, 0], port)));
        let _s4 = bind(&v4).unwrap();
        TcpStream::connect(("::1", port)).expect("connect over IPv6");
    }

    #[test]
    fn tcp_duplicate_bind_is_address_in_use() {
        let port = free_port();
        let _first = bind(&tcp(port)).unwrap();
        let err = bind(&tcp(port)).unwrap_err();
        assert_eq!(
            err,
            format!("tcp://127.0.0.1:{port}: address already in use")
        );
        let err = can_bind(&tcp(port), None).unwrap_err();
        assert!(err.ends_with("address already in use"), "{err}");
    }

    #[test]
    fn privileged_port_message() {
        let e = tcp_error(&"0.0.0.0:80".parse().unwrap(), Errno::EACCES);
        assert_eq!(
            e,
            "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        );
        assert_eq!(
            tcp_error(&"0.0.0.0:8080".parse().unwrap(), Errno::EACCES),
            "permission denied"
        );
    }

    #[test]
    fn unix_stale_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.sock");
        drop(UnixListener::bind(&path).unwrap()); // std leaves the file behind: stale
        assert!(path.exists());
        let addr = ListenAddr::Unix(path.clone());
        can_bind(&addr, None).unwrap();
        let s = bind(&addr).unwrap();
        assert_eq!(s.name, "unix-web.sock");
        UnixStream::connect(&path).expect("connect to the new socket");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, UNIX_SOCKET_MODE);
        s.close();
        assert!(!path.exists(), "close removes the file");
    }

    #[test]
    fn unix_live_socket_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.sock");
        let _live = UnixListener::bind(&path).unwrap();
        let addr = ListenAddr::Unix(path.clone());
        let err = bind(&addr).unwrap_err();
        assert_eq!(
            err,
            format!("unix:{}: address already in use", path.display())
        );
        assert!(can_bind(&addr, None).is_err());
        assert!(path.exists(), "a live socket's file is left alone");
    }

    #[test]
    fn unix_non_socket_and_missing_dir() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain");
        fs::write(&path, "x").unwrap();
        let err = bind(&ListenAddr::Unix(path.clone())).unwrap_err();
        assert!(
            err.ends_with("the path exists and is not a socket"),
            "{err}"
        );
        assert_eq!(fs::read(&path).unwrap(), b"x");
        let missing = ListenAddr::Unix(dir.path().join("nope/x.sock"));
        let err = bind(&missing).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
        assert!(can_bind(&missing, None)
            .unwrap_err()
            .contains("does not exist"));
        let long = ListenAddr::Unix(dir.path().join("x".repeat(120)));
        assert!(bind(&long).unwrap_err().contains("too long"));
    }

    #[test]
    fn set_keeps_fds_and_closes_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (pa, pb) = (free_port(), free_port());
        let sock = ListenAddr::Unix(dir.path().join("s.sock"));
        let (a, b) = (tcp(pa), tcp(pb));
        let mut set = SocketSet::new();
        set.sync(&[a.clone(), b.clone(), sock.clone(), a.clone()])
            .unwrap();
        assert_eq!(set.len(), 3);
        let fd_a = set.get(&a).unwrap().raw_fd();
        can_bind(&a, Some(&set)).unwrap();

        set.sync(std::slice::from_ref(&a)).unwrap();
        assert_eq!(set.get(&a).unwrap().raw_fd(), fd_a, "kept, same fd");
        assert!(set.get(&b).is_none());
        assert!(TcpStream::connect(("127.0.0.1", pb)).is_err(), "b closed");
        assert!(!dir.path().join("s.sock").exists(), "unix file removed");
        TcpStream::connect(("127.0.0.1", pa)).unwrap();

        set.close_all();
        assert!(set.is_empty());
        assert!(TcpStream::connect(("127.0.0.1", pa)).is_err());
    }

    #[test]
    fn set_sync_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (pa, pnew) = (free_port(), free_port());
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let pbusy = busy.local_addr().unwrap().port();
        let new_unix = ListenAddr::Unix(dir.path().join("n.sock"));
        let mut set = SocketSet::new();
        set.sync(&[tcp(pa)]).unwrap();
        let fd_a = set.get(&tcp(pa)).unwrap().raw_fd();

        let errs = set
            .sync(&[tcp(pnew), new_unix.clone(), tcp(pbusy)])
            .unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, tcp(pbusy));
        assert!(errs[0].1.ends_with("address already in use"));
        // Nothing changed: a still held with its fd, the new ones not bound.
        assert_eq!(set.len(), 1);
        assert_eq!(set.get(&tcp(pa)).unwrap().raw_fd(), fd_a);
        TcpStream::connect(("127.0.0.1", pa)).unwrap();
        assert!(TcpStream::connect(("127.0.0.1", pnew)).is_err());
        assert!(!dir.path().join("n.sock").exists());
        assert!(set.get(&new_unix).is_none());
    }
}
