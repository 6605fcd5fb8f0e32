//! Starting one instance: clone/exec in a session of its own, output on fresh pipes,
//! listening sockets passed the systemd way.
//!
//! Everything the child needs is prepared in the parent (argv, envp, the fd layout,
//! limits, ids) so that the child only makes async-signal-safe system calls, ending in
//! its own `execve`. That is what lets `LISTEN_PID` carry the child's own pid: the
//! environment is built before the clone, so we reserve the slot and write the digits
//! in the child (see DESIGN.md §C).
//!
//! The child is started the way glibc's `posix_spawn` does it, with
//! `clone(CLONE_VM | CLONE_VFORK)` on a stack of its own: no page tables are copied,
//! and the loop thread is suspended only until the child's `execve` has replaced its
//! memory (or the child has failed and written its errno into the image). So a failed
//! exec is known when `spawn` returns, and spawning costs no more than the exec itself,
//! however large supervise grows. Sharing memory with the parent means the child must
//! not touch anything but the image: no allocation, no locks, no glibc call that
//! works on the whole process (setuid and friends are raw system calls here), and
//! every handled signal reset before any can be delivered.
//!
//! Runs on the loop thread, which is also the only waiter (`reap`): a child whose exec
//! failed is collected here, before `spawn` returns, so the reaper never sees it.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::resource::Resource;
use nix::unistd::Pid;

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
    cwd: CString,
    /// What becomes the child's 0, 1 and 2.
    stdio: [RawFd; 3],
    /// Set by the child when it fails before or in execve; read after the clone.
    errno: libc::c_int,
}

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
        cwd: cstring(spec.cwd.as_os_str().as_bytes().to_vec())?,
        stdio: [-1; 3],
        errno: 0,
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

/// The child's stack: it only runs `exec_child`, whose frames are small.
const CHILD_STACK: usize = 64 * 1024;

pub fn spawn(spec: &ExecSpec) -> io::Result<Spawned> {
    let mut image = prepare(spec)?;
    let stdin = super::fds::null_input()?;
    let (stdout, stderr, out_w, err_w) = if spec.quiet {
        let null = super::fds::null_output()?;
        (None, None, Some(null.try_clone()?), Some(null))
    } else {
        let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        for fd in [&out_r, &err_r] {
            fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        }
        (Some(out_r), Some(err_r), Some(out_w), Some(err_w))
    };
    let raw = |fd: &Option<OwnedFd>| fd.as_ref().map_or(-1, AsRawFd::as_raw_fd);
    image.stdio = [stdin.as_raw_fd(), raw(&out_w), raw(&err_w)];

    let mut stack = vec![0u8; CHILD_STACK];
    let pid = clone_vfork(&mut image, &mut stack)?;
    // The child has exec'ed or exited: it no longer uses the image, the stack, or
    // these descriptors (its own copies of the write ends stay open in it).
    if image.errno != 0 {
        // It called _exit: collect it now, so the reaper never hears of it.
        let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
        return Err(io::Error::from_raw_os_error(image.errno));
    }
    Ok(Spawned {
        pid,
        stdout,
        stderr,
    })
}

/// clone(CLONE_VM | CLONE_VFORK) running `exec_child` on `stack`; the child's pid once
/// it has exec'ed or exited (then `image.errno` says why).
fn clone_vfork(image: &mut Image, stack: &mut [u8]) -> io::Result<i32> {
    extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the `&mut Image` clone_vfork passed, alive and not used by the
        // suspended parent until this child has exec'ed or exited.
        unsafe {
            let image = &mut *arg.cast::<Image>();
            let errno = exec_child(image);
            std::ptr::write_volatile(&mut image.errno, errno.max(1));
            libc::_exit(127)
        }
    }
    // SAFETY: the stack is ours and outlives the child's use of it (CLONE_VFORK returns
    // only after its exec or exit); every signal is blocked around the clone so no
    // handler of supervise runs on the child's stack before it resets them; the child
    // makes only the system calls of `exec_child`.
    unsafe {
        let top = stack.as_mut_ptr().add(stack.len());
        let top = top.sub(top as usize % 16).cast::<libc::c_void>();
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let pid = libc::clone(
            child,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (image as *mut Image).cast(),
        );
        let error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return Err(error);
        }
        image.errno = std::ptr::read_volatile(&image.errno);
        Ok(pid)
    }
}

/// The errno of a failed call, or Ok.
unsafe fn check(ret: libc::c_long) -> Result<(), libc::c_int> {
    if ret < 0 {
        Err(*libc::__errno_location())
    } else {
        Ok(())
    }
}

/// The child side, sharing the parent's memory. Returns only on failure, with the errno.
unsafe fn exec_child(image: &mut Image) -> libc::c_int {
    match prepare_child(image) {
        Ok(()) => {
            libc::execve(
                image.program.as_ptr(),
                image.argv_ptrs.as_ptr(),
                image.envp_ptrs.as_ptr(),
            );
            *libc::__errno_location()
        }
        Err(errno) => errno,
    }
}

unsafe fn prepare_child(image: &mut Image) -> Result<(), libc::c_int> {
    // Handlers of supervise (signal-hook's) must not run in the child: back to the
    // default, as exec would do. Ignored signals too (SIGPIPE, which Rust ignores, and
    // whatever supervise's own parent ignored: `nohup`, `sh -c '... &'` ignoring
    // SIGINT/SIGQUIT), as systemd does: an app must not ignore its own stop signal.
    let mut action: libc::sigaction = std::mem::zeroed();
    for signal in 1..65 {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        if libc::sigaction(signal, std::ptr::null(), &mut action) == 0
            && action.sa_sigaction != libc::SIG_DFL
        {
            action.sa_sigaction = libc::SIG_DFL;
            action.sa_flags = 0;
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
    // The parent blocked everything around the clone; the app starts with none blocked.
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    // A session of its own: the instance is one process group, stopped as one, and
    // detached from supervise's terminal (Ctrl-C reaches supervise only).
    check(libc::setsid().into())?;
    // stdio: sources below 3 are first copied above (so no dup2 overwrites a source
    // still to be placed), then each dup2 into place clears CLOEXEC on the target.
    for fd in image.stdio.iter_mut() {
        if *fd < 3 {
            *fd = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3);
            check((*fd).into())?;
        }
    }
    for (target, fd) in image.stdio.iter().enumerate() {
        check(libc::dup2(*fd, target as RawFd).into())?;
    }
    check(libc::chdir(image.cwd.as_ptr()).into())?;
    // Limits before dropping privileges: raising a hard limit needs them.
    for (resource, soft, hard) in &image.limits {
        let lim = libc::rlimit {
            rlim_cur: *soft,
            rlim_max: *hard,
        };
        check(libc::setrlimit(*resource, &lim).into())?;
    }
    if let Some(ids) = &image.ids {
        // Raw system calls: glibc's wrappers would signal every thread of the parent
        // (whose memory we share) to change its ids too.
        let groups = (ids.groups.len(), ids.groups.as_ptr());
        check(libc::syscall(libc::SYS_setgroups, groups.0, groups.1))?;
        check(libc::syscall(libc::SYS_setgid, ids.gid))?;
        if let Some(uid) = ids.uid {
            check(libc::syscall(libc::SYS_setuid, uid))?;
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
        check(copy.into())?;
        image.moved[i] = copy;
    }
    for (i, copy) in image.moved.iter().enumerate() {
        check(libc::dup2(*copy, 3 + i as RawFd).into())?;
    }
    if let Some(slot) = image.listen_pid_digits {
        write_decimal(slot, libc::getpid() as u64);
    }
    Ok(())
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

    fn sh(script: &str) -> ExecSpec {
        ExecSpec {
            program: "/bin/sh".into(),
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![("GREETING".into(), "hello".into())],
            cwd: "/tmp".into(),
            ..ExecSpec::default()
        }
    }

    /// Everything the child wrote to stdout, and its exit code.
    fn run(spec: &ExecSpec) -> (String, i32) {
        let child = spawn(spec).unwrap();
        let fd = child.stdout.unwrap();
        fcntl(&fd, FcntlArg::F_SETFL(OFlag::empty())).unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut out).unwrap();
        let status = nix::sys::wait::waitpid(Pid::from_raw(child.pid), None).unwrap();
        let code = match status {
            nix::sys::wait::WaitStatus::Exited(_, code) => code,
            other => panic!("{other:?}"),
        };
        (out, code)
    }

    #[test]
    fn runs_with_the_prepared_environment_directory_and_session() {
        let (out, code) = run(&sh(
            "echo $GREETING; pwd; test $(ps -o sid= $$) -eq $$ && echo leader; exit 3",
        ));
        assert_eq!(out, "hello\n/tmp\nleader\n");
        assert_eq!(code, 3);
    }

    #[test]
    fn starts_with_no_signal_blocked_or_ignored() {
        // Even one that supervise itself inherited as ignored.
        // SAFETY: SIG_IGN for SIGWINCH installs no handler; nothing here uses SIGWINCH.
        unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGWINCH,
                nix::sys::signal::SigHandler::SigIgn,
            )
            .unwrap();
        }
        let (out, _) = run(&sh("grep -E '^Sig(Blk|Ign)' /proc/self/status"));
        for line in out.lines() {
            let (name, hex) = line.split_once(":\t").unwrap();
            let mask = u64::from_str_radix(hex, 16).unwrap();
            // Signals 1-31; 32 and 33 belong to the C library and cannot be reset.
            assert_eq!(mask & 0x7fff_ffff, 0, "{name}: {hex}");
        }
    }

    #[test]
    fn failures_are_reported_by_spawn() {
        let mut missing = sh("true");
        missing.program = "/nonexistent/program".into();
        let e = spawn(&missing)
            .err()
            .expect("exec of a missing program fails");
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let mut bad_cwd = sh("true");
        bad_cwd.cwd = "/nonexistent/folder".into();
        let e = spawn(&bad_cwd)
            .err()
            .expect("chdir to a missing folder fails");
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn limits_and_umask_apply() {
        let mut spec = sh("ulimit -Sn; ulimit -Hn; umask");
        spec.limits = vec![(Resource::RLIMIT_NOFILE, 123, 456)];
        spec.umask = Some(0o027);
        let (out, _) = run(&spec);
        assert_eq!(out, "123\n456\n0027\n");
    }

    #[test]
    fn sockets_are_passed_with_the_childs_own_pid() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut spec = sh(
            "echo $LISTEN_PID $$ $LISTEN_FDS $LISTEN_FDNAMES; test -e /proc/self/fd/3 && echo fd3",
        );
        spec.sockets = vec![(listener.as_raw_fd(), "web".into())];
        let (out, _) = run(&spec);
        let words: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(words[0], words[1], "LISTEN_PID is the child's pid: {out}");
        assert_eq!(&words[2..], ["1", "web", "fd3"]);
    }
}
