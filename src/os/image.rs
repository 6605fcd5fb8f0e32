//! The prepared image of a child: everything its exec needs (argv, envp, the fd
//! layout, limits, ids), built in the parent before the clone, so that the child
//! (`spawn`) only reads it and makes system calls. The environment has its
//! `LISTEN_PID` slot reserved here; the child writes its own pid into it.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::sys::resource::Resource;

use super::users::Ids;

const LISTEN_PID: &[u8] = b"LISTEN_PID=";

/// A resource limit to set in the child: (resource, soft, hard).
pub type Rlimit = (Resource, libc::rlim_t, libc::rlim_t);

/// Everything one exec needs, prepared by the caller: no lookup (of users, of `PATH`,
/// of the environment) happens here.
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    /// Absolute path of the executable.
    pub program: PathBuf,
    /// argv, argv[0] included.
    pub argv: Vec<OsString>,
    /// The whole environment, in order (the socket-activation variables below are
    /// added to it).
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
    pub ids: Option<Ids>,
    pub limits: Vec<Rlimit>,
    pub umask: Option<u32>,
    /// Listening sockets, in `listen` order, with their LISTEN_FDNAMES names.
    pub sockets: Vec<(RawFd, String)>,
    /// `NOTIFY_SOCKET` for `ready = "notify"`.
    pub notify_socket: Option<PathBuf>,
    /// `WATCHDOG_USEC`, with `watchdog`.
    pub watchdog_usec: Option<u128>,
    /// Output to /dev/null (exec probes).
    pub quiet: bool,
}

fn cstring(bytes: Vec<u8>) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in argument"))
}

/// `setrlimit`'s resource type: glibc has its own, musl (the static build) takes an int.
#[cfg(target_env = "gnu")]
pub(super) type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
pub(super) type RlimitResource = libc::c_int;

/// The prepared image of the child: only read (and the LISTEN_PID slot written) after
/// fork. Raw pointers point into the buffers it owns.
pub(super) struct Image {
    pub(super) program: CString,
    pub(super) _argv: Vec<CString>,
    pub(super) argv_ptrs: Vec<*const libc::c_char>,
    pub(super) _envp: Vec<Vec<u8>>,
    pub(super) envp_ptrs: Vec<*const libc::c_char>,
    /// Where to write the pid digits (inside one of `_envp`'s buffers), if any.
    pub(super) listen_pid_digits: Option<*mut u8>,
    /// Sockets to place at 3, 4, ...; `moved` receives their temporary copies.
    pub(super) sockets: Vec<RawFd>,
    pub(super) moved: Vec<RawFd>,
    pub(super) limits: Vec<(RlimitResource, libc::rlim_t, libc::rlim_t)>,
    pub(super) ids: Option<Ids>,
    pub(super) umask: Option<libc::mode_t>,
    pub(super) cwd: CString,
    /// What becomes the child's 0, 1 and 2.
    pub(super) stdio: [RawFd; 3],
    /// Set by the child when it fails before or in execve; read after a waiting clone.
    pub(super) errno: libc::c_int,
    /// The write end of `start`'s report pipe (-1 for `spawn`), where the child writes
    /// that errno.
    pub(super) report: RawFd,
    /// The signals the child resets to SIG_DFL (bit n-1 for signal n).
    pub(super) signals: u64,
    /// Whether the child sets its scheduling policy back to SCHED_OTHER (the loop
    /// thread it is cloned from runs as SCHED_BATCH: `os::sched`).
    pub(super) sched_other: bool,
}

pub(super) fn prepare(spec: &ExecSpec) -> io::Result<Image> {
    if spec.sockets.len() > super::fds::RESERVED_FDS {
        return Err(io::Error::other(format!(
            "at most {} listen addresses per app",
            super::fds::RESERVED_FDS
        )));
    }
    let program = cstring(spec.program.as_os_str().as_bytes().to_vec())?;
    let argv: Vec<CString> = spec
        .argv
        .iter()
        .map(|a| cstring(a.as_bytes().to_vec()))
        .collect::<io::Result<_>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());

    let mut envp: Vec<Vec<u8>> = Vec::with_capacity(spec.env.len() + 5);
    for (k, v) in &spec.env {
        let mut entry = Vec::with_capacity(k.len() + v.len() + 2);
        entry.extend(k.as_bytes());
        entry.push(b'=');
        entry.extend(v.as_bytes());
        if entry.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NUL byte in environment",
            ));
        }
        entry.push(0);
        envp.push(entry);
    }
    if let Some(path) = &spec.notify_socket {
        let mut entry = b"NOTIFY_SOCKET=".to_vec();
        entry.extend(path.as_os_str().as_bytes());
        entry.push(0);
        envp.push(entry);
    }
    if let Some(usec) = spec.watchdog_usec {
        envp.push(format!("WATCHDOG_USEC={usec}\0").into_bytes());
    }
    let mut listen_pid_digits = None;
    if !spec.sockets.is_empty() {
        let names: Vec<&str> = spec.sockets.iter().map(|(_, n)| n.as_str()).collect();
        envp.push(format!("LISTEN_FDS={}\0", spec.sockets.len()).into_bytes());
        envp.push(format!("LISTEN_FDNAMES={}\0", names.join(":")).into_bytes());
        // 20 digits hold any pid; the slot is NUL-filled so it is always terminated.
        let mut entry = LISTEN_PID.to_vec();
        entry.extend([0u8; 21]);
        envp.push(entry);
        let slot = envp.last_mut().expect("just pushed");
        listen_pid_digits = Some(slot[LISTEN_PID.len()..].as_mut_ptr());
    }
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr().cast()).collect();
    envp_ptrs.push(std::ptr::null());

    let sockets: Vec<RawFd> = spec.sockets.iter().map(|(fd, _)| *fd).collect();
    Ok(Image {
        cwd: cstring(spec.cwd.as_os_str().as_bytes().to_vec())?,
        stdio: [-1; 3],
        errno: 0,
        report: -1,
        signals: !0,
        sched_other: false,
        program,
        _argv: argv,
        argv_ptrs,
        _envp: envp,
        envp_ptrs,
        listen_pid_digits,
        moved: vec![-1; sockets.len()],
        sockets,
        limits: spec
            .limits
            .iter()
            .map(|(r, soft, hard)| (*r as RlimitResource, *soft, *hard))
            .collect(),
        ids: spec.ids.clone(),
        umask: spec.umask,
    })
}
