//! The control socket's file: bound mode 0600 with no moment where it is wider, never
//! stealing the path of a live supervise, replacing a stale one, removed at shutdown
//! only if it is still ours; and who is at the other end of a connection.

use std::fs;
use std::io::{self, ErrorKind};
use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

/// The socket file supervise created: its path and identity.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// The file's identity, so `remove` never removes someone else's.
    dev_ino: (u64, u64),
}

impl SocketFile {
    /// Bind the socket at `path`, mode 0600, non-blocking.
    ///
    /// If `path` exists and something answers on it: an error, "another supervise is
    /// already running on PATH". If nothing answers (a stale socket left by a dead
    /// supervise), it is replaced. A path that exists but is not a socket is left alone.
    pub fn bind(path: &Path) -> Result<(SocketFile, UnixListener), String> {
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
        remove_stale(path)?;

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
            let listener = UnixListener::bind(&inner)?;
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
        let file = SocketFile {
            path: path.to_path_buf(),
            dev_ino: (meta.dev(), meta.ino()),
        };
        Ok((file, listener))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove the socket file (at shutdown), if it is still ours.
    pub fn remove(&self) {
        if let Ok(meta) = fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.dev_ino {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

/// An existing `path`: an error if it is not a socket or someone answers on it;
/// removed if it is a stale socket.
fn remove_stale(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot create the control socket {shown}: {e}")),
    };
    if !meta.file_type().is_socket() {
        return Err(format!(
            "cannot create the control socket {shown}: the path exists and is not a \
             socket (remove it or choose another --socket)"
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(already_running(path)),
        // Stale: nobody listens. Replace it.
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!(
                "cannot remove the stale control socket {shown}: {e}"
            )),
        },
        Err(e) => Err(format!(
            "cannot create the control socket {shown}: it exists and connecting to it \
             failed: {e}"
        )),
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
pub fn peer_uid(stream: &impl AsFd) -> io::Result<u32> {
    getsockopt(stream, PeerCredentials)
        .map(|c| c.uid())
        .map_err(io::Error::from)
}
