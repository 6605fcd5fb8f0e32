//! Starting one instance: fork/exec in a session of its own, output on fresh pipes,
//! listening sockets passed the systemd way.
//!
//! Everything the child needs is prepared in the parent (argv, envp, the fd layout,
//! limits, ids) so that the forked child of this multi-threaded process only makes
//! async-signal-safe system calls, ending in its own `execve`. That is what lets
//! `LISTEN_PID` carry the child's own pid: std builds the environment before fork, so
//! we reserve the slot and write the digits after fork (see DESIGN.md §C).
//!
//! Runs on the loop thread, which is also the only waiter (`reap`): std's `spawn`
//! waits for a child whose exec failed, and that must not race another waiter. We keep
//! std's `Child` only to take its pipes; dropping it neither waits nor kills.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use nix::sys::resource::Resource;

pub use super::users::Ids;

const LISTEN_PID: &[u8] = b"LISTEN_PID=";

pub struct Spawned {
    pub pid: i32,
    /// Read ends, non-blocking (none for a quiet spawn).
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

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
type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type RlimitResource = libc::c_int;

/// The prepared image of the child: only read (and the LISTEN_PID slot written) after
/// fork. Raw pointers point into the buffers it owns.
struct Image {
    program: CString,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<Vec<u8>>,
    envp_ptrs: Vec<*const libc::c_char>,
    /// Where to write the pid digits (inside one of `_envp`'s buffers), if any.
    listen_pid_digits: Option<*mut u8>,
    /// Sockets to place at 3, 4, ...; `moved` receives their temporary copies.
    sockets: Vec<RawFd>,
    moved: Vec<RawFd>,
    limits: Vec<(RlimitResource, libc::rlim_t, libc::rlim_t)>,
    ids: Option<Ids>,
    umask: Option<libc::mode_t>,
}

// SAFETY: the pointers refer to heap buffers owned by the same `Image`, which moves as a
// whole into the pre_exec closure and is only used in the forked child.
unsafe impl Send for Image {}
unsafe impl Sync for Image {}

fn prepare(spec: &ExecSpec) -> io::Result<Image> {
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

pub fn spawn(spec: &ExecSpec) -> io::Result<Spawned> {
    let mut image = prepare(spec)?;
    let output = || {
        if spec.quiet {
            Stdio::null()
        } else {
            Stdio::piped()
        }
    };
    let mut cmd = Command::new(&spec.program);
    cmd.current_dir(&spec.cwd)
        .env_clear()
        .stdin(super::fds::null_input()?)
        .stdout(output())
        .stderr(output());
    // SAFETY: the closure runs in the forked child of a multi-threaded process. It only
    // reads the prepared image, writes into buffers the image owns, and makes
    // async-signal-safe system calls: no allocation, no locks, no logging. std has
    // already placed stdio and changed directory when it runs.
    unsafe {
        cmd.pre_exec(move || exec_child(&mut image));
    }
    let mut child = cmd.spawn()?;
    let pid = child.id() as i32;
    let stdout: Option<OwnedFd> = child.stdout.take().map(Into::into);
    let stderr: Option<OwnedFd> = child.stderr.take().map(Into::into);
    for fd in stdout.iter().chain(stderr.iter()) {
        set_nonblocking(fd)?;
    }
    Ok(Spawned {
        pid,
        stdout,
        stderr,
    })
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The child side. Returns only on failure; std then reports the error to the parent.
unsafe fn exec_child(image: &mut Image) -> io::Result<()> {
    // A session of its own: the instance is one process group, stopped as one, and
    // detached from supervise's terminal (Ctrl-C reaches supervise only).
    check(libc::setsid())?;
    // std keeps the parent's signal mask in the child; start from an empty one.
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    // Limits before dropping privileges: raising a hard limit needs them.
    for (resource, soft, hard) in &image.limits {
        let lim = libc::rlimit {
            rlim_cur: *soft,
            rlim_max: *hard,
        };
        check(libc::setrlimit(*resource, &lim))?;
    }
    if let Some(ids) = &image.ids {
        check(libc::setgroups(ids.groups.len(), ids.groups.as_ptr()))?;
        check(libc::setgid(ids.gid))?;
        if let Some(uid) = ids.uid {
            check(libc::setuid(uid))?;
        }
    }
    if let Some(mask) = image.umask {
        libc::umask(mask);
    }
    // Sockets to 3, 4, ...: first copy each above the target range (so no source is
    // overwritten and no dup2(fd, fd) keeps CLOEXEC), then dup2 into place, which
    // clears CLOEXEC on the target. The copies are CLOEXEC and vanish at exec.
    let count = image.sockets.len() as RawFd;
    for (i, fd) in image.sockets.iter().enumerate() {
        let copy = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3 + count);
        check(copy)?;
        image.moved[i] = copy;
    }
    for (i, copy) in image.moved.iter().enumerate() {
        check(libc::dup2(*copy, 3 + i as RawFd))?;
    }
    if let Some(slot) = image.listen_pid_digits {
        write_decimal(slot, libc::getpid() as u64);
    }
    libc::execve(
        image.program.as_ptr(),
        image.argv_ptrs.as_ptr(),
        image.envp_ptrs.as_ptr(),
    );
    Err(io::Error::last_os_error())
}

/// Writes the digits of `n` at `out` (which has room for 20 digits and a NUL).
unsafe fn write_decimal(out: *mut u8, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        *out.add(i) = digits[len - 1 - i];
    }
    *out.add(len) = 0;
}

/// Only ever on our own pipe ends: never on an inherited descriptor such as stdout,
/// whose open file description is shared with the terminal or the container runtime.
fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_digits() {
        for n in [0u64, 7, 10, 4242, 4194304, u64::MAX] {
            let mut buf = [0xffu8; 21];
            unsafe { write_decimal(buf.as_mut_ptr(), n) };
            let end = buf.iter().position(|b| *b == 0).unwrap();
            assert_eq!(std::str::from_utf8(&buf[..end]).unwrap(), n.to_string());
        }
    }
}
