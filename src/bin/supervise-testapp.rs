//! `supervise-testapp`: the child every integration test and benchmark runs.
//!
//! It replaces shell scripts, so the tests do not depend on a shell and each behaviour a
//! test needs (print its environment, crash, trap or ignore SIGTERM, fork children, leave
//! an orphan, print long or partial lines) is one flag. See `usage()` for the options.
//!
//! Signals are handled the async-signal-safe way: handlers only set flags; the main thread
//! blocks the handled signals and waits in `ppoll` with them unblocked, so a signal can
//! never slip in between "check the flags" and "go to sleep". Nothing busy-loops.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::exit;
use std::sync::atomic::{AtomicBool, Ordering};
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
  --ready-line           print \"ready pid=<pid>\" after setup"
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
            "-h" | "--help" => usage(),
            other => {
                eprintln!("supervise-testapp: unknown option {other:?}");
                usage()
            }
        }
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
                        tv_sec: left.as_secs() as libc::time_t,
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
        write_atomic(&dir.join(format!("{stem}.pid")), &format!("{pid}\n"));
        append(&dir.join(format!("{stem}.starts")), &format!("{pid}\n"));
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

    app.wait_until(options.exit_after.map(|d| started + d));
    app.handle_signals();
    let _ = std::io::stdout().flush();
    exit(options.exit_code);
}
