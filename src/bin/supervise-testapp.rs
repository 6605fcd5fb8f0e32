//! `supervise-testapp`: the child every integration test and benchmark runs.
//!
//! It replaces shell scripts, so the tests do not depend on a shell and each behaviour a
//! test needs (print its environment, crash, trap or ignore SIGTERM, fork children, leave
//! an orphan, print long or partial lines) is one flag. See `usage()` for the options.
//!
//! Cluster mode (issue 5) is covered by a small HTTP/1.0 server (`--serve` on the sockets
//! passed by socket activation, `--serve-own` on a port of its own) and an sd_notify client
//! (`--notify-ready`, `--notify-status`, `--watchdog-every`), hand-written with std: the
//! protocols are a few lines each. They run on threads started after every `fork`, with
//! the handled signals blocked (inherited from the main thread), so signals still arrive
//! only in the main thread's `ppoll`.
//!
//! Signals are handled the async-signal-safe way: handlers only set flags; the main thread
//! blocks the handled signals and waits in `ppoll` with them unblocked, so a signal can
//! never slip in between "check the flags" and "go to sleep". Nothing busy-loops.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::exit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{fork, ForkResult};

fn usage() -> ! {
    eprintln!(
        "usage: supervise-testapp [options]
  --print-env            print SUPERVISE_APP, SUPERVISE_INSTANCE and each --var
  --var NAME             also print NAME=value with --print-env
  --pid-dir DIR          write DIR/APP.INST.pid and append the pid to DIR/APP.INST.starts
  --report-start PATH    first of all, append \"<pid> <monotonic ns>\" to PATH
  --exit-after DUR       exit after DUR (default: run forever)
  --exit-code N          exit code for --exit-after (default 0)
  --ignore-term          ignore SIGTERM (prints \"ignoring SIGTERM\")
  --trap-term            on SIGTERM print \"got SIGTERM, exiting\" and exit 0
  --echo-signals         print \"signal NAME\" for SIGUSR1, SIGUSR2, SIGHUP, SIGINT
  --fork N               fork N children that sleep forever
  --orphan DIR           leave an orphan that writes DIR/orphan.<pid> and exits after 100ms
  --print N              print N lines \"line K of APP.INST\"
  --interval DUR         pause between --print lines (default 0)
  --line-bytes N         print one line of N 'x' bytes
  --partial TEXT         write TEXT without a newline
  --stderr TEXT          write TEXT and a newline to stderr
  --ready-line           print \"ready pid=<pid>\" after setup

cluster mode (socket activation, sd_notify, probes):
  --serve                print \"listen LISTEN_PID=.. pid=.. LISTEN_FDS=.. LISTEN_FDNAMES=..
                         fd3=tcp|unix|none types=..\"; when LISTEN_FDS is set and LISTEN_PID
                         is our pid (as sd_listen_fds checks), answer HTTP/1.0 on fds 3..
                         with \"pid=<pid>\" (200, or 503 while unhealthy)
  --unhealthy-file PATH  answer 503 while PATH exists and is empty or holds our pid
  --port PORT            the port for --serve-own
  --serve-own            serve the same HTTP on 127.0.0.1:PORT of our own
  --serve-delay DUR      start --serve-own after DUR (default 0)
  --notify-status TEXT   send STATUS=TEXT to $NOTIFY_SOCKET at start
  --notify-ready DUR     send READY=1 to $NOTIFY_SOCKET after DUR, then print
                         \"notified READY=1\"
  --watchdog-every DUR   send WATCHDOG=1 every DUR, until the --stop-watchdog-file
  --stop-watchdog-file PATH
                         stop sending WATCHDOG=1 once PATH exists and is empty or holds
                         our pid"
    );
    exit(2)
}

#[derive(Default)]
struct Options {
    print_env: bool,
    vars: Vec<String>,
    pid_dir: Option<PathBuf>,
    report_start: Option<PathBuf>,
    exit_after: Option<Duration>,
    exit_code: i32,
    ignore_term: bool,
    trap_term: bool,
    echo_signals: bool,
    fork: u32,
    orphan: Option<PathBuf>,
    print: u64,
    interval: Duration,
    line_bytes: Option<usize>,
    partial: Option<String>,
    stderr: Vec<String>,
    ready_line: bool,
    serve: bool,
    unhealthy_file: Option<PathBuf>,
    port: Option<u16>,
    serve_own: bool,
    serve_delay: Duration,
    notify_status: Option<String>,
    notify_ready: Option<Duration>,
    watchdog_every: Option<Duration>,
    stop_watchdog_file: Option<PathBuf>,
}

fn parse_duration(text: &str) -> Duration {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = match number.parse() {
        Ok(n) => n,
        Err(_) => {
            eprintln!("supervise-testapp: bad duration {text:?}");
            usage()
        }
    };
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1e3,
        "us" => number / 1e6,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => {
            eprintln!("supervise-testapp: bad duration {text:?}");
            usage()
        }
    };
    Duration::from_secs_f64(seconds)
}

fn parse_number<T: std::str::FromStr>(text: &str) -> T {
    text.parse().unwrap_or_else(|_| {
        eprintln!("supervise-testapp: bad number {text:?}");
        usage()
    })
}

fn parse_args() -> Options {
    let mut options = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--print-env" => options.print_env = true,
            "--var" => options.vars.push(value()),
            "--pid-dir" => options.pid_dir = Some(PathBuf::from(value())),
            "--report-start" => options.report_start = Some(PathBuf::from(value())),
            "--exit-after" => options.exit_after = Some(parse_duration(&value())),
            "--exit-code" => options.exit_code = parse_number(&value()),
            "--ignore-term" => options.ignore_term = true,
            "--trap-term" => options.trap_term = true,
            "--echo-signals" => options.echo_signals = true,
            "--fork" => options.fork = parse_number(&value()),
            "--orphan" => options.orphan = Some(PathBuf::from(value())),
            "--print" => options.print = parse_number(&value()),
            "--interval" => options.interval = parse_duration(&value()),
            "--line-bytes" => options.line_bytes = Some(parse_number(&value())),
            "--partial" => options.partial = Some(value()),
            "--stderr" => options.stderr.push(value()),
            "--ready-line" => options.ready_line = true,
            "--serve" => options.serve = true,
            "--unhealthy-file" => options.unhealthy_file = Some(PathBuf::from(value())),
            "--port" => options.port = Some(parse_number(&value())),
            "--serve-own" => options.serve_own = true,
            "--serve-delay" => options.serve_delay = parse_duration(&value()),
            "--notify-status" => options.notify_status = Some(value()),
            "--notify-ready" => options.notify_ready = Some(parse_duration(&value())),
            "--watchdog-every" => options.watchdog_every = Some(parse_duration(&value())),
            "--stop-watchdog-file" => options.stop_watchdog_file = Some(PathBuf::from(value())),
            "-h" | "--help" => usage(),
            other => {
                eprintln!("supervise-testapp: unknown option {other:?}");
                usage()
            }
        }
    }
    if options.serve_own && options.port.is_none() {
        eprintln!("supervise-testapp: --serve-own needs --port");
        usage()
    }
    options
}

// One flag per signal the app may handle; set by the handler, consumed by the main thread.
static GOT_TERM: AtomicBool = AtomicBool::new(false);
static GOT_USR1: AtomicBool = AtomicBool::new(false);
static GOT_USR2: AtomicBool = AtomicBool::new(false);
static GOT_HUP: AtomicBool = AtomicBool::new(false);
static GOT_INT: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(signal: libc::c_int) {
    let flag = match signal {
        libc::SIGTERM => &GOT_TERM,
        libc::SIGUSR1 => &GOT_USR1,
        libc::SIGUSR2 => &GOT_USR2,
        libc::SIGHUP => &GOT_HUP,
        libc::SIGINT => &GOT_INT,
        _ => return,
    };
    flag.store(true, Ordering::SeqCst);
}

/// The signals this run handles (the others keep their default action).
fn handled_signals(options: &Options) -> Vec<Signal> {
    let mut signals = Vec::new();
    if options.ignore_term || options.trap_term {
        signals.push(Signal::SIGTERM);
    }
    if options.echo_signals {
        signals.extend([
            Signal::SIGUSR1,
            Signal::SIGUSR2,
            Signal::SIGHUP,
            Signal::SIGINT,
        ]);
    }
    signals
}

struct App {
    options: Options,
    app: String,
    instance: String,
    /// The signal mask to wait with: the startup mask minus nothing (handled signals are
    /// blocked everywhere else, and unblocked only inside `ppoll`).
    wait_mask: SigSet,
    handled: Vec<Signal>,
}

fn out(text: &str) {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    // A closed stdout is not an error worth dying for in a test child.
    let _ = lock.write_all(text.as_bytes());
    let _ = lock.flush();
}

fn println_out(text: &str) {
    let mut line = String::with_capacity(text.len() + 1);
    line.push_str(text);
    line.push('\n');
    out(&line);
}

fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

/// Append `text` with one `write(2)` on an `O_APPEND` file, so concurrent writers never
/// interleave.
fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Write a file atomically: a reader sees nothing or the whole content.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename {}: {e}", path.display()));
}

/// In a forked child: back to default dispositions and an empty mask, as a plain program.
fn reset_signals(handled: &[Signal]) {
    for &signal in handled {
        let action = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        // SAFETY: installing SIG_DFL is always sound.
        let _ = unsafe { sigaction(signal, &action) };
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

fn sleep_forever() -> ! {
    loop {
        nix::unistd::pause();
    }
}

impl App {
    /// Wait until `deadline` (or forever), handling signal flags as they come. Returns
    /// when the deadline has passed.
    fn wait_until(&self, deadline: Option<Instant>) {
        loop {
            self.handle_signals();
            let timeout = match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return;
                    }
                    let left = deadline - now;
                    Some(libc::timespec {
                        tv_sec: left.as_secs() as _,
                        tv_nsec: left.subsec_nanos() as libc::c_long,
                    })
                }
                None => None,
            };
            let timeout_ptr = timeout
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: no fds; the timeout and mask pointers are valid for the call. ppoll
            // installs `wait_mask` atomically, so blocked signals are delivered only here.
            unsafe {
                libc::ppoll(
                    std::ptr::null_mut(),
                    0,
                    timeout_ptr,
                    self.wait_mask.as_ref(),
                );
            }
        }
    }

    fn handle_signals(&self) {
        if GOT_TERM.swap(false, Ordering::SeqCst) {
            if self.options.trap_term {
                println_out("got SIGTERM, exiting");
                exit(0);
            } else {
                println_out("ignoring SIGTERM");
            }
        }
        for (flag, name) in [
            (&GOT_USR1, "SIGUSR1"),
            (&GOT_USR2, "SIGUSR2"),
            (&GOT_HUP, "SIGHUP"),
            (&GOT_INT, "SIGINT"),
        ] {
            if flag.swap(false, Ordering::SeqCst) {
                println_out(&format!("signal {name}"));
            }
        }
    }

    fn fork_children(&self) {
        for k in 1..=self.options.fork {
            // SAFETY: single-threaded program; the child only writes a file and pauses.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    reset_signals(&self.handled);
                    if let Some(dir) = &self.options.pid_dir {
                        let path = dir.join(format!("{}.{}.child{k}.pid", self.app, self.instance));
                        write_atomic(&path, &format!("{}\n", std::process::id()));
                    }
                    sleep_forever();
                }
                Ok(ForkResult::Parent { .. }) => {}
                Err(e) => panic!("fork: {e}"),
            }
        }
    }

    fn leave_orphan(&self, dir: &Path) {
        // SAFETY: single-threaded program; the children only write a file and exit.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                reset_signals(&self.handled);
                match unsafe { fork() } {
                    Ok(ForkResult::Child) => {
                        // The grandchild: once its parent is gone it is an orphan,
                        // re-parented to PID 1 or the nearest subreaper (supervise).
                        let marker = dir.join(format!("orphan.{}", std::process::id()));
                        write_atomic(&marker, &format!("{}\n", std::process::id()));
                        std::thread::sleep(Duration::from_millis(100));
                        // SAFETY: _exit skips atexit handlers shared with the parent.
                        unsafe { libc::_exit(0) }
                    }
                    _ => unsafe { libc::_exit(0) },
                }
            }
            Ok(ForkResult::Parent { child }) => {
                // Reap the middle child so it is not our zombie.
                let _ = nix::sys::wait::waitpid(child, None);
            }
            Err(e) => panic!("fork: {e}"),
        }
    }
}

fn main() {
    let options = parse_args();
    if let Some(path) = &options.report_start {
        append(
            path,
            &format!("{} {}\n", std::process::id(), monotonic_ns()),
        );
    }

    // Block the handled signals first, then install handlers: they are delivered only
    // while waiting in ppoll with `wait_mask`.
    let handled = handled_signals(&options);
    let mut old_mask = SigSet::empty();
    let mut block = SigSet::empty();
    for &signal in &handled {
        block.add(signal);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&block), Some(&mut old_mask))
        .expect("sigprocmask");
    let mut wait_mask = old_mask;
    for &signal in &handled {
        wait_mask.remove(signal);
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: the handler only stores to atomics.
        unsafe { sigaction(signal, &action) }.expect("sigaction");
    }

    let app = App {
        app: std::env::var("SUPERVISE_APP").unwrap_or_else(|_| "app".into()),
        instance: std::env::var("SUPERVISE_INSTANCE").unwrap_or_else(|_| "0".into()),
        options,
        wait_mask,
        handled,
    };
    let options = &app.options;
    let started = Instant::now();
    let pid = std::process::id();

    if options.print_env {
        let mut text = format!(
            "SUPERVISE_APP={}\nSUPERVISE_INSTANCE={}\n",
            std::env::var("SUPERVISE_APP").unwrap_or_else(|_| "<unset>".into()),
            std::env::var("SUPERVISE_INSTANCE").unwrap_or_else(|_| "<unset>".into()),
        );
        for name in &options.vars {
            let value = std::env::var(name).unwrap_or_else(|_| "<unset>".into());
            text.push_str(&format!("{name}={value}\n"));
        }
        out(&text);
    }
    if let Some(dir) = &options.pid_dir {
        let stem = format!("{}.{}", app.app, app.instance);
        // The start first: whoever sees the new pid file finds it among the starts.
        append(&dir.join(format!("{stem}.starts")), &format!("{pid}\n"));
        write_atomic(&dir.join(format!("{stem}.pid")), &format!("{pid}\n"));
    }
    app.fork_children();
    if let Some(dir) = &options.orphan {
        app.leave_orphan(dir);
    }
    if options.ready_line {
        println_out(&format!("ready pid={pid}"));
    }
    for text in &options.stderr {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(stderr, "{text}");
        let _ = stderr.flush();
    }
    if let Some(n) = options.line_bytes {
        let mut line = vec![b'x'; n];
        line.push(b'\n');
        out(&String::from_utf8(line).unwrap());
    }
    for k in 1..=options.print {
        app.handle_signals();
        println_out(&format!("line {k} of {}.{}", app.app, app.instance));
        if !options.interval.is_zero() && k < options.print {
            app.wait_until(Some(Instant::now() + options.interval));
        }
    }
    if let Some(text) = &options.partial {
        out(text);
    }
    // Threads only from here on: every fork is behind us.
    start_cluster_mode(options);

    app.wait_until(options.exit_after.map(|d| started + d));
    app.handle_signals();
    let _ = std::io::stdout().flush();
    exit(options.exit_code);
}

// ------------------------------------------------------------------------ cluster mode

/// A marker file "applies to" this process when it exists and is empty or holds our pid
/// (so a test can single out one instance, and its successor is not affected).
fn marker_applies(path: &Path) -> bool {
    match fs::read_to_string(path) {
        Ok(text) => {
            let text = text.trim();
            text.is_empty() || text == std::process::id().to_string()
        }
        Err(_) => false,
    }
}

fn env_or_unset(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| "<unset>".into())
}

/// `tcp`, `unix` (stream sockets), `udp`/`dgram` for others, or `none` when `fd` is not a
/// socket (or not open).
fn socket_type(fd: RawFd) -> &'static str {
    let get = |option: libc::c_int| {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes one int into `value`, whose size `len` gives.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                &mut value as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            )
        };
        (rc == 0).then_some(value)
    };
    match (get(libc::SO_DOMAIN), get(libc::SO_TYPE)) {
        (Some(libc::AF_INET | libc::AF_INET6), Some(libc::SOCK_STREAM)) => "tcp",
        (Some(libc::AF_UNIX), Some(libc::SOCK_STREAM)) => "unix",
        (Some(libc::AF_INET | libc::AF_INET6), Some(_)) => "udp",
        (Some(_), Some(_)) => "dgram",
        _ => "none",
    }
}

struct Server {
    pid: u32,
    unhealthy_file: Option<PathBuf>,
}

impl Server {
    /// Read the request head (up to the blank line, EOF, or 8 KiB), answer, close. A peer
    /// that sends nothing (a tcp readiness probe) gets no answer.
    fn handle(&self, mut conn: impl Read + Write) {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    head.extend_from_slice(&buf[..n]);
                    if head.windows(4).any(|w| w == b"\r\n\r\n")
                        || head.windows(2).any(|w| w == b"\n\n")
                        || head.len() > 8192
                    {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if head.is_empty() {
            return;
        }
        let unhealthy = self.unhealthy_file.as_deref().is_some_and(marker_applies);
        let (status, body) = if unhealthy {
            (
                "503 Service Unavailable",
                format!("pid={} unhealthy\n", self.pid),
            )
        } else {
            ("200 OK", format!("pid={}\n", self.pid))
        };
        let response = format!(
            "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        // A peer that went away is its own business.
        let _ = conn.write_all(response.as_bytes());
        let _ = conn.flush();
    }

    fn serve_tcp(&self, listener: TcpListener, what: &str) {
        loop {
            match listener.accept() {
                Ok((conn, _)) => {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
                    self.handle(conn);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {}
                Err(e) => {
                    println_out(&format!("accept on {what}: {e}, no longer serving it"));
                    return;
                }
            }
        }
    }

    fn serve_unix(&self, listener: UnixListener, what: &str) {
        loop {
            match listener.accept() {
                Ok((conn, _)) => {
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                    let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
                    self.handle(conn);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {}
                Err(e) => {
                    println_out(&format!("accept on {what}: {e}, no longer serving it"));
                    return;
                }
            }
        }
    }
}

/// The passed sockets, as `sd_listen_fds` finds them: `LISTEN_PID` must be our pid and
/// `LISTEN_FDS` a count. Prints the `listen ...` line either way.
fn passed_fds(pid: u32) -> Vec<RawFd> {
    let count = std::env::var("LISTEN_FDS").ok();
    let n: usize = count.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0);
    let types: Vec<&str> = (0..n).map(|i| socket_type(3 + i as RawFd)).collect();
    println_out(&format!(
        "listen LISTEN_PID={} pid={pid} LISTEN_FDS={} LISTEN_FDNAMES={} fd3={} types={}",
        env_or_unset("LISTEN_PID"),
        env_or_unset("LISTEN_FDS"),
        env_or_unset("LISTEN_FDNAMES"),
        socket_type(3),
        if types.is_empty() {
            "-".to_string()
        } else {
            types.join(",")
        },
    ));
    if count.is_none() {
        return Vec::new();
    }
    if std::env::var("LISTEN_PID").ok().as_deref() != Some(pid.to_string().as_str()) {
        println_out("LISTEN_PID is not our pid: not using the passed sockets");
        return Vec::new();
    }
    (0..n).map(|i| 3 + i as RawFd).collect()
}

/// Send one sd_notify datagram to `$NOTIFY_SOCKET` (a path; abstract `@` names too).
fn notify(message: &str) -> Result<(), String> {
    let path = std::env::var_os("NOTIFY_SOCKET").ok_or("NOTIFY_SOCKET is not set")?;
    let socket = UnixDatagram::unbound().map_err(|e| format!("socket: {e}"))?;
    let bytes = path.as_encoded_bytes();
    let result = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(name).map_err(|e| format!("{e}"))?;
        socket.send_to_addr(message.as_bytes(), &addr)
    } else {
        socket.send_to(message.as_bytes(), &path)
    };
    result
        .map(drop)
        .map_err(|e| format!("send to {}: {e}", path.to_string_lossy()))
}

fn notify_or_say(message: &str) {
    match notify(message) {
        Ok(()) => println_out(&format!("notified {message}")),
        Err(e) => println_out(&format!("cannot notify {message}: {e}")),
    }
}

/// Start the servers and the sd_notify sender asked for; each runs on its own thread.
fn start_cluster_mode(options: &Options) {
    let pid = std::process::id();
    let server = Arc::new(Server {
        pid,
        unhealthy_file: options.unhealthy_file.clone(),
    });
    if let Some(text) = &options.notify_status {
        notify_or_say(&format!("STATUS={text}"));
    }
    if options.serve {
        for fd in passed_fds(pid) {
            let server = server.clone();
            let what = format!("fd {fd}");
            match socket_type(fd) {
                "tcp" => {
                    // SAFETY: fd was passed to us by socket activation; nothing else owns it.
                    let listener = unsafe { TcpListener::from_raw_fd(fd) };
                    thread::spawn(move || server.serve_tcp(listener, &what));
                }
                "unix" => {
                    // SAFETY: as above.
                    let listener = unsafe { UnixListener::from_raw_fd(fd) };
                    thread::spawn(move || server.serve_unix(listener, &what));
                }
                other => println_out(&format!("fd {fd} is {other}, not serving it")),
            }
        }
    }
    if let (true, Some(port)) = (options.serve_own, options.port) {
        let server = server.clone();
        let delay = options.serve_delay;
        thread::spawn(move || {
            thread::sleep(delay);
            // The previous instance may still hold the port for a moment.
            let deadline = Instant::now() + Duration::from_secs(5);
            let listener = loop {
                match TcpListener::bind(("127.0.0.1", port)) {
                    Ok(l) => break l,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => {
                        println_out(&format!("cannot listen on 127.0.0.1:{port}: {e}"));
                        return;
                    }
                }
            };
            println_out(&format!("serving own 127.0.0.1:{port}"));
            server.serve_tcp(listener, &format!("127.0.0.1:{port}"));
        });
    }
    if let Some(delay) = options.notify_ready {
        thread::spawn(move || {
            thread::sleep(delay);
            notify_or_say("READY=1");
        });
    }
    if let Some(every) = options.watchdog_every {
        let stop = options.stop_watchdog_file.clone();
        thread::spawn(move || loop {
            thread::sleep(every);
            if stop.as_deref().is_some_and(marker_applies) {
                println_out("watchdog: no longer sending WATCHDOG=1");
                return;
            }
            if let Err(e) = notify("WATCHDOG=1") {
                println_out(&format!("cannot notify WATCHDOG=1: {e}"));
            }
        });
    }
}
