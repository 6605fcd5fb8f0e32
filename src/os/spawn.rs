//! Starting one instance: clone/exec in a session of its own, output on fresh pipes,
//! listening sockets passed the systemd way.
//!
//! Everything the child needs is prepared in the parent (argv, envp, the fd layout,
//! limits, ids) so that the child only makes async-signal-safe system calls, ending in
//! its own `execve`. That is what lets `LISTEN_PID` carry the child's own pid: the
//! environment is built before the clone, so we reserve the slot and write the digits
//! in the child (see DESIGN.md §C).
//!
//! The child is cloned with `CLONE_VM` on a stack of its own, as glibc's `posix_spawn`
//! does: no page tables are copied, so a spawn costs the same however large supervise
//! grows. Unlike `posix_spawn` (and std's `Command::spawn`), an instance's [`start`]
//! does not wait for the exec (no `CLONE_VFORK`): waiting serialises the starts behind
//! each child's turn on a busy CPU (1000 instances took twice as long as a C loop that
//! forks them; issue 14 item 2). Instead the child reports through a close-on-exec
//! pipe, which the loop polls: its end without data means the exec happened, an errno
//! before it means the child failed (and exits with 127). The image and the stack the
//! child runs on are kept until that end, which only the exec or the exit brings.
//! Exec probes use [`spawn`], which waits (`CLONE_VFORK`) and returns the error at once.
//!
//! Sharing memory with the running parent means the child must not touch anything but
//! its image and stack: no allocation, no locks, and no libc wrapper at all, since
//! they set `errno`, which the child shares with the loop thread (its system calls
//! are made directly, `sys`; on architectures without that, it waits as `spawn` does).
//! Every signal not at its default (handled or ignored; noted once, not per start:
//! [`note_signal_dispositions`]) is reset before any can be delivered.
//!
//! Runs on the loop thread, which is also the only waiter (`reap`): a child whose exec
//! failed is collected by whoever learns of it first, `spawn`/`Starting::outcome` (so
//! the reaper never sees it) or the reaper (which then asks `Starting::finish` why).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::Pid;

use super::image::{prepare, Image};
pub use super::image::{ExecSpec, Rlimit};
pub use super::starting::Starting;
pub use super::users::Ids;

pub struct Spawned {
    pub pid: i32,
    /// Read ends, non-blocking (none for a quiet spawn).
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// The child's stack: it only runs `exec_child`, whose frames are small.
const CHILD_STACK: usize = 32 * 1024;

/// Stacks kept for the next starts once their child has exec'ed; more are unmapped.
const SPARE_STACKS: usize = 8;

/// A child's stack, mapped on its own so that it goes back to the system when unmapped
/// (on the heap, a thousand starts in flight would leave supervise's memory grown).
struct Stack(std::ptr::NonNull<u8>);

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Stack>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Stack {
    fn take() -> io::Result<Stack> {
        if let Some(stack) = SPARE.with(|s| s.borrow_mut().pop()) {
            return Ok(stack);
        }
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                CHILD_STACK,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        std::ptr::NonNull::new(ptr.cast::<u8>())
            .map(Stack)
            .ok_or_else(|| io::Error::other("mmap gave no address"))
    }

    /// Its top, 16-byte aligned.
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping (its length is a multiple of 16).
        unsafe { self.0.as_ptr().add(CHILD_STACK).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no longer used by any child (see ChildMemory).
        unsafe { libc::munmap(self.0.as_ptr().cast(), CHILD_STACK) };
    }
}

/// What a child runs on until its exec: its prepared image and its stack.
pub(super) struct ChildMemory {
    image: Box<Image>,
    stack: Option<Stack>,
}

impl Drop for ChildMemory {
    /// Only once the child no longer runs on it: its stack is kept for the next
    /// start, or unmapped when enough are kept.
    fn drop(&mut self) {
        if let Some(stack) = self.stack.take() {
            let _ = SPARE.try_with(|spare| {
                let mut spare = spare.borrow_mut();
                if spare.len() < SPARE_STACKS {
                    spare.push(stack);
                }
            });
        }
    }
}

/// The signals whose disposition is not SIG_DFL (bit n-1 for signal n), which the child
/// resets; every one until [`note_signal_dispositions`] is first called.
static NOT_DEFAULT: AtomicU64 = AtomicU64::new(RESET_ALL);

/// Every signal but SIGKILL and SIGSTOP (which cannot be changed).
const RESET_ALL: u64 = !(1 << (libc::SIGKILL - 1) | 1 << (libc::SIGSTOP - 1));

/// Note which signals are not at SIG_DFL (handled or ignored), for the children to
/// reset only those: call once supervise's handlers are installed, and again after any
/// disposition changes. The set only grows (a signal set back to the default is reset
/// for nothing), so a note taken concurrently with a change never loses it.
pub fn note_signal_dispositions() {
    let mut noted = 0u64;
    for signal in 1..65u64 {
        let mut old = KernelSigaction {
            handler: libc::SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        // SAFETY: a query (no new action); `old` is the kernel's layout, valid for the
        // call. The system call itself: libc refuses the C library's own signals.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                std::ptr::null::<KernelSigaction>(),
                &mut old as *mut KernelSigaction,
                8usize,
            )
        };
        if ret != 0 || old.handler != libc::SIG_DFL {
            noted |= 1 << (signal - 1);
        }
    }
    noted &= RESET_ALL;
    let _ = NOT_DEFAULT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
        Some(if old == RESET_ALL { noted } else { old | noted })
    });
}

/// Whether the child's system calls bypass libc (see `sys`), which lets the loop thread
/// run on while the child prepares its exec.
const CONCURRENT: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// Start an exec probe: returns once the child has exec'ed, or with its error.
pub fn spawn(spec: &ExecSpec) -> io::Result<Spawned> {
    let (spawned, child) = launch(spec, None, true)?;
    // The child has exec'ed or exited: it no longer uses its image or stack.
    if child.image.errno != 0 {
        // It called _exit: collect it now, so the reaper never hears of it.
        let _ = nix::sys::wait::waitpid(Pid::from_raw(spawned.pid), None);
        return Err(io::Error::from_raw_os_error(child.image.errno));
    }
    Ok(spawned)
}

/// Start an instance without waiting for its exec: its outcome comes through
/// [`Starting`], to be read when its descriptor is readable.
pub fn start(spec: &ExecSpec) -> io::Result<(Spawned, Starting)> {
    let (report, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let (spawned, child) = launch(spec, Some(write.as_raw_fd()), !CONCURRENT)?;
    // Closed before any later clone can inherit it: the report ends when this child
    // exec's or exits, not when some sibling does.
    drop(write);
    let starting = Starting::new(spawned.pid, report, child);
    Ok((spawned, starting))
}

/// Prepare and clone the child; with `wait`, return once it has exec'ed or exited.
fn launch(
    spec: &ExecSpec,
    report: Option<RawFd>,
    wait: bool,
) -> io::Result<(Spawned, ChildMemory)> {
    let mut image = Box::new(prepare(spec)?);
    image.report = report.unwrap_or(-1);
    image.signals = NOT_DEFAULT.load(Ordering::Relaxed);
    image.sched_other = super::sched::children_reset();
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
    let stack = Stack::take()?;
    let pid = clone_child(&mut image, &stack, wait)?;
    // The child has its own copies of these descriptors (its own table): ours close.
    let spawned = Spawned {
        pid,
        stdout,
        stderr,
    };
    Ok((
        spawned,
        ChildMemory {
            image,
            stack: Some(stack),
        },
    ))
}

/// clone(CLONE_VM) running `exec_child` on `stack`: the child's pid. With `wait`
/// (CLONE_VFORK), once it has exec'ed or exited (then `image.errno` says why).
fn clone_child(image: &mut Image, stack: &Stack, wait: bool) -> io::Result<i32> {
    extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `arg` is the boxed `Image` clone_child passed; the parent keeps it (and
        // the stack) alive and untouched until this child has exec'ed or exited: it
        // waits (CLONE_VFORK), or it frees them only at the end of the report pipe,
        // which the exec (close-on-exec) or the exit brings.
        unsafe {
            let image = &mut *arg.cast::<Image>();
            let errno = exec_child(image).max(1);
            std::ptr::write_volatile(&mut image.errno, errno);
            if image.report >= 0 {
                let bytes = errno.to_ne_bytes();
                sys(
                    libc::SYS_write,
                    [image.report as usize, bytes.as_ptr() as usize, 4, 0],
                );
            }
            sys(libc::SYS_exit, [127, 0, 0, 0]);
            127
        }
    }
    let flags = libc::CLONE_VM | libc::SIGCHLD | if wait { libc::CLONE_VFORK } else { 0 };
    // SAFETY: the stack and image live until the child no longer uses them (above);
    // every signal is blocked around the clone so no handler of supervise runs on the
    // child's stack before it resets them; the child makes only the raw system calls
    // of `exec_child`, so it never writes the errno it shares with the loop thread.
    unsafe {
        let top = stack.top();
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let pid = libc::clone(child, top, flags, (image as *mut Image).cast());
        let error = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return Err(error);
        }
        if wait {
            // The child is done with the image (not so without `wait`: hands off).
            image.errno = std::ptr::read_volatile(&image.errno);
        }
        Ok(pid)
    }
}

/// A system call for the child, returning the result or -errno. The child shares the
/// loop thread's memory, its thread-local `errno` included, while that thread runs
/// on: it must not go through libc, whose wrappers set `errno`.
#[cfg(target_arch = "x86_64")]
unsafe fn sys(number: libc::c_long, args: [usize; 4]) -> isize {
    let ret: isize;
    std::arch::asm!(
        "syscall",
        inlateout("rax") number as isize => ret,
        in("rdi") args[0], in("rsi") args[1], in("rdx") args[2], in("r10") args[3],
        lateout("rcx") _, lateout("r11") _,
        options(nostack),
    );
    ret
}

#[cfg(target_arch = "aarch64")]
unsafe fn sys(number: libc::c_long, args: [usize; 4]) -> isize {
    let ret: isize;
    std::arch::asm!(
        "svc 0",
        in("x8") number,
        inlateout("x0") args[0] as isize => ret,
        in("x1") args[1], in("x2") args[2], in("x3") args[3],
        options(nostack),
    );
    ret
}

/// Elsewhere, libc's `syscall` (it sets errno): the loop thread then waits for each
/// child's exec (CONCURRENT is false), as glibc's `posix_spawn` does.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
unsafe fn sys(number: libc::c_long, args: [usize; 4]) -> isize {
    let ret = libc::syscall(number, args[0], args[1], args[2], args[3]);
    if ret < 0 {
        -(*libc::__errno_location() as isize)
    } else {
        ret as isize
    }
}

/// `sys`, with its result as Ok or the errno.
unsafe fn call(number: libc::c_long, args: [usize; 4]) -> Result<usize, libc::c_int> {
    let ret = sys(number, args);
    if ret < 0 {
        Err(-ret as libc::c_int)
    } else {
        Ok(ret as usize)
    }
}

/// The child side, sharing the parent's memory. Returns only on failure, with the errno.
unsafe fn exec_child(image: &mut Image) -> libc::c_int {
    match prepare_child(image) {
        Ok(()) => {
            let args = [
                image.program.as_ptr() as usize,
                image.argv_ptrs.as_ptr() as usize,
                image.envp_ptrs.as_ptr() as usize,
                0,
            ];
            call(libc::SYS_execve, args).err().unwrap_or(libc::ENOEXEC)
        }
        Err(errno) => errno,
    }
}

/// The kernel's `struct sigaction` (not libc's), for rt_sigaction.
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// F_DUPFD_CLOEXEC: a close-on-exec copy of `fd` at `at` or above.
unsafe fn copy_above(fd: RawFd, at: RawFd) -> Result<RawFd, libc::c_int> {
    let args = [fd as usize, libc::F_DUPFD_CLOEXEC as usize, at as usize, 0];
    Ok(call(libc::SYS_fcntl, args)? as RawFd)
}

/// dup2 (as dup3, which every architecture has; source and target always differ here).
unsafe fn place(fd: RawFd, target: RawFd) -> Result<(), libc::c_int> {
    call(libc::SYS_dup3, [fd as usize, target as usize, 0, 0]).map(drop)
}

unsafe fn prepare_child(image: &mut Image) -> Result<(), libc::c_int> {
    // Handlers of supervise (signal-hook's) must not run in the child: back to the
    // default, as exec would do. Ignored signals too (SIGPIPE, which Rust ignores, and
    // whatever supervise's own parent ignored: `nohup`, `sh -c '... &'` ignoring
    // SIGINT/SIGQUIT), as systemd does: an app must not ignore its own stop signal.
    // Only those not at the default already (`image.signals`): resetting all 62 was
    // most of the child's time before its exec.
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    let mut signals = image.signals;
    while signals != 0 {
        let signal = signals.trailing_zeros() as usize + 1;
        signals &= signals - 1;
        let action = &default as *const KernelSigaction as usize;
        sys(libc::SYS_rt_sigaction, [signal, action, 0, 8]);
    }
    // The parent blocked everything around the clone; the app starts with none blocked.
    let none = 0u64;
    let set = &none as *const u64 as usize;
    sys(
        libc::SYS_rt_sigprocmask,
        [libc::SIG_SETMASK as usize, set, 0, 8],
    );
    // The policy the loop thread gave up for SCHED_BATCH (os::sched), back for the app.
    // Never refused (the same weight, no privilege needed); if it were, the app would
    // run as SCHED_BATCH rather than not at all.
    if image.sched_other {
        // The kernel's `struct sched_param` is the priority alone (musl's is longer).
        let priority: libc::c_int = 0;
        let param = &priority as *const libc::c_int as usize;
        sys(
            libc::SYS_sched_setscheduler,
            [0, libc::SCHED_OTHER as usize, param, 0],
        );
    }
    // A session of its own: the instance is one process group, stopped as one, and
    // detached from supervise's terminal (Ctrl-C reaches supervise only).
    call(libc::SYS_setsid, [0; 4])?;
    // The report must survive the placing of stdio and sockets below: above them.
    let count = image.sockets.len() as RawFd;
    if image.report >= 0 && image.report < 3 + count {
        image.report = copy_above(image.report, 3 + count)?;
    }
    // stdio: sources below 3 are first copied above (so no dup2 overwrites a source
    // still to be placed), then each dup2 into place clears CLOEXEC on the target.
    for fd in image.stdio.iter_mut() {
        if *fd < 3 {
            *fd = copy_above(*fd, 3)?;
        }
    }
    for (target, fd) in (0..).zip(image.stdio) {
        place(fd, target)?;
    }
    call(libc::SYS_chdir, [image.cwd.as_ptr() as usize, 0, 0, 0])?;
    // Limits before dropping privileges: raising a hard limit needs them.
    for (resource, soft, hard) in &image.limits {
        let lim = libc::rlimit {
            rlim_cur: *soft,
            rlim_max: *hard,
        };
        let lim = &lim as *const libc::rlimit as usize;
        call(libc::SYS_prlimit64, [0, *resource as usize, lim, 0])?;
    }
    if let Some(ids) = &image.ids {
        // The system calls themselves: glibc's wrappers would signal every thread of
        // the parent (whose memory we share) to change its ids too.
        let groups = [ids.groups.len(), ids.groups.as_ptr() as usize, 0, 0];
        call(libc::SYS_setgroups, groups)?;
        call(libc::SYS_setgid, [ids.gid as usize, 0, 0, 0])?;
        if let Some(uid) = ids.uid {
            call(libc::SYS_setuid, [uid as usize, 0, 0, 0])?;
        }
    }
    if let Some(mask) = image.umask {
        sys(libc::SYS_umask, [mask as usize, 0, 0, 0]);
    }
    // Sockets to 3, 4, ...: first copy each above the target range (so no source is
    // overwritten and no dup2(fd, fd) keeps CLOEXEC), then dup2 into place, which
    // clears CLOEXEC on the target. The copies are CLOEXEC and vanish at exec.
    for (fd, moved) in image.sockets.iter().zip(image.moved.iter_mut()) {
        *moved = copy_above(*fd, 3 + count)?;
    }
    for (target, copy) in (3..).zip(&image.moved) {
        place(*copy, target)?;
    }
    if let Some(slot) = image.listen_pid_digits {
        write_decimal(slot, sys(libc::SYS_getpid, [0; 4]) as u64);
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
    use nix::sys::resource::Resource;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

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

    /// A start's outcome, waiting for it (with a deadline).
    fn outcome_of(starting: &mut Starting) -> io::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(outcome) = starting.outcome() {
                return outcome;
            }
            assert!(std::time::Instant::now() < deadline, "no outcome in 10 s");
            let mut fd = libc::pollfd {
                fd: starting.fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            unsafe { libc::poll(&mut fd, 1, 100) };
        }
    }

    /// Everything a started child wrote to stdout, and its exit code.
    fn output_and_code(child: Spawned) -> (String, i32) {
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

    /// Run `spec` both ways (`spawn`, which waits for the exec, and `start`, whose
    /// outcome comes through the report pipe): the same output and exit code.
    fn run(spec: &ExecSpec) -> (String, i32) {
        let waited = output_and_code(spawn(spec).unwrap());
        let (child, mut starting) = start(spec).unwrap();
        outcome_of(&mut starting).expect("exec succeeds");
        let started = output_and_code(child);
        assert_eq!(waited.1, started.1, "{} / {}", waited.0, started.0);
        started
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
        // Even one that supervise itself inherited as ignored, or ignores or handles
        // (noted, as the loop does once its handlers are installed).
        // SAFETY: SIG_IGN for SIGWINCH installs no handler; nothing here uses SIGWINCH.
        unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGWINCH,
                nix::sys::signal::SigHandler::SigIgn,
            )
            .unwrap();
        }
        let handled = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(libc::SIGUSR2, handled.clone()).unwrap();
        for noted in [false, true] {
            if noted {
                note_signal_dispositions();
                let set = NOT_DEFAULT.load(Ordering::Relaxed);
                for signal in [libc::SIGWINCH, libc::SIGUSR2, libc::SIGPIPE] {
                    assert_ne!(set & 1 << (signal - 1), 0, "signal {signal} is reset");
                }
                assert_eq!(
                    set & 1 << (libc::SIGTTIN - 1),
                    0,
                    "SIGTTIN is at its default"
                );
            }
            let (out, _) = run(&sh("grep -E '^Sig(Blk|Ign)' /proc/self/status"));
            for line in out.lines() {
                let (name, hex) = line.split_once(":\t").unwrap();
                let mask = u64::from_str_radix(hex, 16).unwrap();
                // Signals 1-31; 32 and 33 belong to the C library and cannot be reset.
                assert_eq!(mask & 0x7fff_ffff, 0, "{name}: {hex}");
            }
        }
        assert!(!handled.load(Ordering::Relaxed));
    }

    #[test]
    fn failures_are_reported_by_spawn_and_start() {
        let mut missing = sh("true");
        missing.program = "/nonexistent/program".into();
        let mut bad_cwd = sh("true");
        bad_cwd.cwd = "/nonexistent/folder".into();
        for spec in [&missing, &bad_cwd] {
            let e = spawn(spec).err().expect("spawn fails");
            assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
            let (child, mut starting) = start(spec).unwrap();
            let e = outcome_of(&mut starting).expect_err("start fails");
            assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
            // Collected already: no zombie is left for the reaper.
            let e = nix::sys::wait::waitpid(Pid::from_raw(child.pid), None).unwrap_err();
            assert_eq!(e, nix::errno::Errno::ECHILD);
        }
    }

    #[test]
    fn a_start_reaped_before_its_report_is_read_still_tells_why() {
        let mut missing = sh("true");
        missing.program = "/nonexistent/program".into();
        let (child, starting) = start(&missing).unwrap();
        let status = nix::sys::wait::waitpid(Pid::from_raw(child.pid), None).unwrap();
        assert_eq!(
            status,
            nix::sys::wait::WaitStatus::Exited(Pid::from_raw(child.pid), 127)
        );
        let e = starting.finish().expect_err("the exec failed");
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        // A child that exec'ed and ended: no error.
        let (child, starting) = start(&sh("exit 4")).unwrap();
        let (_, code) = output_and_code(child);
        assert_eq!(code, 4);
        starting.finish().expect("it exec'ed");
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
