//! The harness itself: a temporary directory, the ecosystem files written into it, and
//! one `supervise` started on them (plainly, with a never-read stdout, or as PID 1 of a
//! new pid namespace).

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::output::{spawn_reader, Output};
use super::{alive, children_of, cmdline, descendants, supervise_bin, LONG, POLL};

/// How supervise is started.
pub(super) enum Mode {
    Plain,
    /// stdout is a pipe that nobody reads.
    BlockedStdout,
    /// stdout is read slowly: 4 KiB per millisecond.
    SlowStdout,
    /// Under `unshare --pid --fork --mount-proc`, so it is PID 1 of a new namespace.
    Unshare,
    /// With this (soft, hard) open-file limit, as `prlimit --nofile=SOFT:HARD` would.
    Nofile(u64, u64),
    /// With this scheduling policy, as `chrt` would.
    Policy(i32),
}

pub(super) struct Running {
    pub(super) child: Child,
    mode: Mode,
    /// The never-read stdout of `Mode::BlockedStdout`, kept open.
    pub(super) held_stdout: Option<ChildStdout>,
    pub(super) status: Option<ExitStatus>,
    /// How many reader threads were started (stdout and stderr, or stderr only).
    readers: usize,
}

pub struct Harness {
    pub(super) dir: tempfile::TempDir,
    pub pid_dir: PathBuf,
    pub(super) files: Vec<PathBuf>,
    pub(super) output: Arc<Output>,
    pub(super) running: Option<Running>,
    /// Extra environment of supervise itself (`NOTIFY_SOCKET` from a test).
    pub(super) env: Vec<(String, String)>,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::Builder::new()
            .prefix("supervise-it-")
            .tempdir()
            .expect("tempdir");
        let pid_dir = dir.path().join("pids");
        fs::create_dir(&pid_dir).unwrap();
        Harness {
            dir,
            pid_dir,
            files: Vec::new(),
            output: Arc::new(Output::default()),
            running: None,
            env: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The pid directory as a string, for `--pid-dir`.
    pub fn pids(&self) -> &str {
        self.pid_dir.to_str().unwrap()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Write any file under the test directory (parents created).
    pub fn write_file(&mut self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, text).unwrap();
        path
    }

    /// Write an ecosystem file; it is shown when the test fails.
    pub fn write_config(&mut self, name: &str, text: &str) -> PathBuf {
        let path = self.write_file(name, text);
        self.files.push(path.clone());
        path
    }

    /// Set a variable in supervise's own environment (before `start`).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    pub fn start(&mut self, config: &Path) {
        self.launch(config, Mode::Plain)
    }

    /// Start supervise with its stdout connected to a pipe that the test never reads.
    pub fn start_blocked_stdout(&mut self, config: &Path) {
        self.launch(config, Mode::BlockedStdout)
    }

    /// Start supervise with its stdout read slowly (4 KiB per millisecond), as by a slow
    /// log shipper.
    pub fn start_slow_stdout(&mut self, config: &Path) {
        self.launch(config, Mode::SlowStdout)
    }

    /// Start supervise with the open-file limit (soft, hard), e.g. systemd's 1024:524288.
    pub fn start_with_nofile(&mut self, config: &Path, soft: u64, hard: u64) {
        self.launch(config, Mode::Nofile(soft, hard))
    }

    /// Start supervise with the scheduling policy `policy` (priority 0), e.g. SCHED_IDLE.
    pub fn start_with_policy(&mut self, config: &Path, policy: i32) {
        self.launch(config, Mode::Policy(policy))
    }

    /// Start `unshare --pid --fork --mount-proc supervise CONFIG`. Returns false (and
    /// prints a note) when `unshare` cannot make a pid namespace here.
    pub fn start_unshare(&mut self, config: &Path) -> bool {
        let probe = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output();
        match probe {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                eprintln!(
                    "note: skipping the PID 1 test, `unshare --pid --fork --mount-proc` failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                return false;
            }
            Err(e) => {
                eprintln!("note: skipping the PID 1 test, cannot run `unshare`: {e}");
                return false;
            }
        }
        self.launch(config, Mode::Unshare);
        true
    }

    fn launch(&mut self, config: &Path, mode: Mode) {
        assert!(self.running.is_none(), "supervise already started");
        let mut command = match mode {
            Mode::Unshare => {
                let mut c = Command::new("unshare");
                c.args(["--pid", "--fork", "--mount-proc", supervise_bin()]);
                c
            }
            Mode::Nofile(soft, hard) => {
                use std::os::unix::process::CommandExt;
                let mut c = Command::new(supervise_bin());
                // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
                unsafe {
                    c.pre_exec(move || {
                        nix::sys::resource::setrlimit(
                            nix::sys::resource::Resource::RLIMIT_NOFILE,
                            soft,
                            hard,
                        )
                        .map_err(std::io::Error::from)
                    });
                }
                c
            }
            Mode::Policy(policy) => {
                use std::os::unix::process::CommandExt;
                let mut c = Command::new(supervise_bin());
                // SAFETY: sched_setscheduler is a plain system call on the child itself.
                unsafe {
                    c.pre_exec(move || {
                        let param: libc::sched_param = std::mem::zeroed();
                        if libc::sched_setscheduler(0, policy, &param) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                c
            }
            _ => Command::new(supervise_bin()),
        };
        command
            .arg(config)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("SUPERVISE_SOCKET", self.path("ctl.sock"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn supervise");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let held_stdout = match mode {
            Mode::BlockedStdout => Some(stdout),
            Mode::SlowStdout => {
                spawn_reader(SlowRead(stdout), false, self.output.clone());
                None
            }
            _ => {
                spawn_reader(stdout, false, self.output.clone());
                None
            }
        };
        spawn_reader(stderr, true, self.output.clone());
        let readers = if held_stdout.is_some() { 1 } else { 2 };
        self.running = Some(Running {
            child,
            mode,
            held_stdout,
            status: None,
            readers,
        });
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("supervise not started")
    }

    /// The pid of the process the harness spawned (`unshare` in PID 1 mode).
    pub fn root_pid(&self) -> i32 {
        self.running().child.id() as i32
    }

    /// The pid of supervise itself (as seen from the test's pid namespace).
    #[track_caller]
    pub fn supervise_pid(&self) -> i32 {
        let root = self.root_pid();
        match self.running().mode {
            Mode::Unshare => {
                // The child of unshare, once it has exec'd supervise (right after the
                // fork it is still a copy of unshare).
                let mut found = None;
                self.wait_for(
                    || {
                        found = children_of(root).into_iter().next();
                        found.is_some_and(|p| {
                            cmdline(p).is_some_and(|a| {
                                a.first().is_some_and(|c| c.ends_with("supervise"))
                            })
                        })
                    },
                    LONG,
                );
                found.unwrap()
            }
            _ => root,
        }
    }

    /// Bytes waiting in the never-read stdout pipe, and the pipe's capacity.
    pub fn blocked_stdout_fill(&self) -> (usize, usize) {
        let fd = self
            .running()
            .held_stdout
            .as_ref()
            .expect("not started with start_blocked_stdout")
            .as_raw_fd();
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int; F_GETPIPE_SZ only reads the fd.
        let capacity = unsafe {
            libc::ioctl(fd, libc::FIONREAD, &mut queued);
            libc::fcntl(fd, libc::F_GETPIPE_SZ)
        };
        (queued.max(0) as usize, capacity.max(0) as usize)
    }

    /// Wait for supervise (or unshare) to exit; panics after `timeout`.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let running = self.running.as_mut().expect("supervise not started");
        if let Some(status) = running.status {
            return status;
        }
        loop {
            if let Some(status) = running.child.try_wait().expect("try_wait") {
                running.status = Some(status);
                let readers = running.readers;
                self.wait_output_closed(readers);
                return status;
            }
            if Instant::now() >= deadline {
                panic!("supervise did not exit within {timeout:?}");
            }
            thread::sleep(POLL);
        }
    }

    /// After supervise exited: let the readers take in the last of its output. Its pipes
    /// close when it exits (unless a leaked descendant still holds them: then give up
    /// after a while, silently).
    fn wait_output_closed(&self, readers: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut closed = self.output.closed.lock().unwrap();
        while *closed < readers {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            closed = self
                .output
                .closed_changed
                .wait_timeout(closed, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Whether supervise has exited (without waiting).
    pub fn has_exited(&mut self) -> bool {
        let running = self.running.as_mut().expect("supervise not started");
        if running.status.is_none() {
            running.status = running.child.try_wait().expect("try_wait");
        }
        running.status.is_some()
    }

    /// Send a signal to supervise.
    pub fn send_signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.supervise_pid()), signal).expect("kill supervise");
    }
}

/// A reader taking at most 4 KiB per call and a millisecond between calls: the pace of a
/// slow consumer (a load shape, not a synchronisation).
struct SlowRead<R>(R);

impl<R: std::io::Read> std::io::Read for SlowRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::thread::sleep(Duration::from_millis(1));
        let n = buf.len().min(4096);
        self.0.read(&mut buf[..n])
    }
}

/// The live (non-zombie) descendants of supervise.
pub fn live_descendants(h: &Harness) -> BTreeSet<i32> {
    descendants(h.supervise_pid())
        .into_iter()
        .filter(|&p| alive(p))
        .collect()
}
