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

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::config::AppSpec;

/// Variables of supervise's own environment that describe supervise, not its apps.
const NOT_INHERITED: &[&str] = &[
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];
const LISTEN_PID: &[u8] = b"LISTEN_PID=";

pub struct Spawned {
    pub pid: i32,
    /// Read ends, non-blocking (none for a quiet spawn).
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// What the runtime adds to an app's own spec for one spawn.
#[derive(Default)]
pub struct Extras<'a> {
    /// Listening sockets, in `listen` order, with their LISTEN_FDNAMES names.
    pub sockets: Vec<(RawFd, &'a str)>,
    /// `NOTIFY_SOCKET` for `ready = "notify"`.
    pub notify_socket: Option<&'a OsStr>,
    /// `WATCHDOG_USEC`, with `watchdog`.
    pub watchdog_usec: Option<u128>,
    /// Output to /dev/null (exec probes).
    pub quiet: bool,
}

/// The environment an instance gets: supervise's own (minus the socket-activation
/// variables meant for supervise itself), the app's `env`, then `SUPERVISE_APP`,
/// `SUPERVISE_INSTANCE` and `instance_var`.
pub fn instance_env(
    spec: &AppSpec,
    index: u32,
    user: Option<&nix::unistd::User>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| !NOT_INHERITED.iter().any(|n| OsStr::new(n) == k))
        .collect();
    let mut set = |k: &str, v: &str| {
        env.retain(|(key, _)| key != k);
        env.push((k.into(), v.into()));
    };
    if let Some(user) = user {
        set("USER", &user.name);
        set("LOGNAME", &user.name);
        set("HOME", &user.dir.to_string_lossy());
    }
    for (k, v) in &spec.env {
        set(k, v);
    }
    set("SUPERVISE_APP", &spec.name);
    set("SUPERVISE_INSTANCE", &index.to_string());
    if let Some(var) = &spec.instance_var {
        set(var, &index.to_string());
    }
    env
}

fn lookup_user(name: &str) -> Option<nix::unistd::User> {
    match name.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(uid.into()).ok().flatten(),
        Err(_) => nix::unistd::User::from_name(name).ok().flatten(),
    }
}

fn lookup_group(name: &str) -> Option<u32> {
    match name.parse::<u32>() {
        Ok(gid) => Some(gid),
        Err(_) => nix::unistd::Group::from_name(name)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw()),
    }
}

/// uid, gid and supplementary groups for `user`/`group`.
struct Ids {
    uid: Option<libc::uid_t>,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
}

/// `user` looked up once per spawn (the passwd lookup may go to NSS): it gives both
/// the ids and the USER/LOGNAME/HOME variables.
fn resolve_user(spec: &AppSpec) -> io::Result<Option<nix::unistd::User>> {
    match &spec.user {
        Some(name) => lookup_user(name)
            .map(Some)
            .ok_or_else(|| missing("user", name)),
        None => Ok(None),
    }
}

fn missing(what: &str, name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{what} {name:?} does not exist"),
    )
}

fn resolve_ids(spec: &AppSpec, user: Option<nix::unistd::User>) -> io::Result<Option<Ids>> {
    let group = match &spec.group {
        Some(name) => Some(lookup_group(name).ok_or_else(|| missing("group", name))?),
        None => None,
    };
    Ok(match (user, group) {
        (None, None) => None,
        (Some(user), group) => {
            let gid = group.unwrap_or(user.gid.as_raw());
            let cname = CString::new(user.name.as_bytes()).map_err(io::Error::other)?;
            let groups = nix::unistd::getgrouplist(&cname, gid.into())
                .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
                .unwrap_or_else(|_| vec![gid]);
            Some(Ids {
                uid: Some(user.uid.as_raw()),
                gid,
                groups,
            })
        }
        (None, Some(gid)) => Some(Ids {
            uid: None,
            gid,
            groups: vec![gid],
        }),
    })
}

fn cstring(bytes: Vec<u8>) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in argument"))
}

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
    limits: Vec<(libc::__rlimit_resource_t, libc::rlim_t)>,
    ids: Option<Ids>,
    umask: Option<libc::mode_t>,
}

// SAFETY: the pointers refer to heap buffers owned by the same `Image`, which moves as a
// whole into the pre_exec closure and is only used in the forked child.
unsafe impl Send for Image {}
unsafe impl Sync for Image {}

fn prepare(spec: &AppSpec, index: u32, extras: &Extras) -> io::Result<Image> {
    if extras.sockets.len() > super::fds::RESERVED_FDS {
        return Err(io::Error::other(format!(
            "at most {} listen addresses per app",
            super::fds::RESERVED_FDS
        )));
    }
    let program = cstring(spec.command.program.as_os_str().as_bytes().to_vec())?;
    let argv: Vec<CString> = spec
        .command
        .argv
        .iter()
        .map(|a| cstring(a.clone().into_bytes()))
        .collect::<io::Result<_>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());

    let user = resolve_user(spec)?;
    let mut envp: Vec<Vec<u8>> = Vec::new();
    for (k, v) in instance_env(spec, index, user.as_ref()) {
        let mut entry = k.into_vec();
        entry.push(b'=');
        entry.extend(v.into_vec());
        if entry.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NUL byte in environment",
            ));
        }
        entry.push(0);
        envp.push(entry);
    }
    if let Some(path) = extras.notify_socket {
        let mut entry = b"NOTIFY_SOCKET=".to_vec();
        entry.extend(path.as_bytes());
        entry.push(0);
        envp.push(entry);
    }
    if let Some(usec) = extras.watchdog_usec {
        envp.push(format!("WATCHDOG_USEC={usec}\0").into_bytes());
    }
    let mut listen_pid_digits = None;
    if !extras.sockets.is_empty() {
        let names: Vec<&str> = extras.sockets.iter().map(|(_, n)| *n).collect();
        envp.push(format!("LISTEN_FDS={}\0", extras.sockets.len()).into_bytes());
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

    let limits = spec
        .limits
        .iter()
        .map(|l| {
            (
                l.resource as libc::__rlimit_resource_t,
                l.value.unwrap_or(libc::RLIM_INFINITY),
            )
        })
        .collect();
    let sockets: Vec<RawFd> = extras.sockets.iter().map(|(fd, _)| *fd).collect();
    Ok(Image {
        program,
        _argv: argv,
        argv_ptrs,
        _envp: envp,
        envp_ptrs,
        listen_pid_digits,
        moved: vec![-1; sockets.len()],
        sockets,
        limits,
        ids: resolve_ids(spec, user)?,
        umask: spec.umask,
    })
}

pub fn spawn(spec: &AppSpec, index: u32, extras: &Extras) -> io::Result<Spawned> {
    let mut image = prepare(spec, index, extras)?;
    let output = || {
        if extras.quiet {
            Stdio::null()
        } else {
            Stdio::piped()
        }
    };
    let mut cmd = Command::new(&spec.command.program);
    cmd.current_dir(&spec.cwd)
        .env_clear()
        .stdin(Stdio::null())
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
    for (resource, value) in &image.limits {
        let lim = libc::rlimit {
            rlim_cur: *value,
            rlim_max: *value,
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

    #[test]
    fn env_overrides_and_strips_activation_variables() {
        let mut spec = AppSpec::new("web", "/bin/true", &["true"]);
        spec.env.insert("PATH".into(), "/custom".into());
        spec.instance_var = Some("NODE_APP_INSTANCE".into());
        let env = instance_env(&spec, 2, None);
        let get = |k: &str| {
            env.iter()
                .filter(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("PATH"), vec![OsString::from("/custom")]);
        assert_eq!(get("SUPERVISE_APP"), vec![OsString::from("web")]);
        assert_eq!(get("SUPERVISE_INSTANCE"), vec![OsString::from("2")]);
        assert_eq!(get("NODE_APP_INSTANCE"), vec![OsString::from("2")]);
        assert!(get("LISTEN_PID").is_empty());
    }
}
