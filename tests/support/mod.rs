//! The integration-test harness: runs the real `supervise` binary on an ecosystem file in
//! a temporary directory, with `supervise-testapp` children, and watches what it prints.
//!
//! Every wait is a poll (or a condition variable) against a generous deadline, never a
//! sleep: the machine running the tests may be small and busy. On `Drop` the harness
//! freezes supervise, walks `/proc` for every descendant (supervise is a child subreaper,
//! so double-forked processes stay under it) plus every test process that names the test's
//! directory on its command line, and SIGKILLs them all, so nothing outlives a test, even a
//! failed one. A failed test prints supervise's output and the ecosystem file.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The default deadline of every wait: generous, the machine has 2 noisy cores.
pub const LONG: Duration = Duration::from_secs(10);
/// Poll interval inside wait loops (a poll, not a synchronisation sleep).
const POLL: Duration = Duration::from_millis(5);

pub fn supervise_bin() -> &'static str {
    env!("CARGO_BIN_EXE_supervise")
}

pub fn testapp() -> &'static str {
    env!("CARGO_BIN_EXE_supervise-testapp")
}

/// A command line as a TOML (and YAML flow) array of strings, the test app first.
pub fn app_cmd(args: &[&str]) -> String {
    let mut argv = vec![testapp().to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    serde_json::to_string(&argv).unwrap()
}

/// A string as a TOML basic string (also a YAML double-quoted string).
pub fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// One line supervise wrote, on its stdout or (tagged) its stderr.
#[derive(Debug, Clone)]
pub struct Line {
    pub stderr: bool,
    pub text: String,
}

#[derive(Default)]
struct Output {
    lines: Mutex<Vec<Line>>,
    changed: Condvar,
    /// Readers that reached end of file.
    closed: Mutex<usize>,
    closed_changed: Condvar,
}

/// The text of a supervise event line (`supervise | <text>`), if it is one.
pub fn event_text(line: &str) -> Option<&str> {
    let (left, right) = line.split_once(" | ")?;
    if left.split_whitespace().last() == Some("supervise") {
        Some(right)
    } else {
        None
    }
}

/// `(instance name, text)` of an instance output line (`web.0    | <text>`), if it is one.
pub fn instance_line(line: &str) -> Option<(&str, &str)> {
    let (left, right) = line.split_once(" | ")?;
    let name = left.split_whitespace().last()?;
    if name == "supervise" {
        None
    } else {
        Some((name, right))
    }
}

/// How supervise is started.
enum Mode {
    Plain,
    /// stdout is a pipe that nobody reads.
    BlockedStdout,
    /// Under `unshare --pid --fork --mount-proc`, so it is PID 1 of a new namespace.
    Unshare,
}

struct Running {
    child: Child,
    mode: Mode,
    /// The never-read stdout of `Mode::BlockedStdout`, kept open.
    held_stdout: Option<ChildStdout>,
    status: Option<ExitStatus>,
    /// How many reader threads were started (stdout and stderr, or stderr only).
    readers: usize,
}

pub struct Harness {
    dir: tempfile::TempDir,
    pub pid_dir: PathBuf,
    files: Vec<PathBuf>,
    output: Arc<Output>,
    running: Option<Running>,
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

    pub fn start(&mut self, config: &Path) {
        self.launch(config, Mode::Plain)
    }

    /// Start supervise with its stdout connected to a pipe that the test never reads.
    pub fn start_blocked_stdout(&mut self, config: &Path) {
        self.launch(config, Mode::BlockedStdout)
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
            _ => Command::new(supervise_bin()),
        };
        command
            .arg(config)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("SUPERVISE_SOCKET", self.path("ctl.sock"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn supervise");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let held_stdout = match mode {
            Mode::BlockedStdout => Some(stdout),
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

    // ---------------------------------------------------------------- output

    /// Every line so far, stdout and stderr.
    pub fn all_lines(&self) -> Vec<Line> {
        self.output.lines.lock().unwrap().clone()
    }

    /// stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.output
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| !l.stderr)
            .map(|l| l.text.clone())
            .collect()
    }

    /// supervise's stderr lines so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.output
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.stderr)
            .map(|l| l.text.clone())
            .collect()
    }

    /// The texts of supervise's event lines so far, in order.
    pub fn events(&self) -> Vec<String> {
        self.lines()
            .iter()
            .filter_map(|l| event_text(l).map(str::to_string))
            .collect()
    }

    /// The output texts of one instance (`web.0`) so far, in order.
    pub fn instance_output(&self, name: &str) -> Vec<String> {
        self.lines()
            .iter()
            .filter_map(|l| match instance_line(l) {
                Some((n, text)) if n == name => Some(text.to_string()),
                _ => None,
            })
            .collect()
    }

    pub fn count_lines(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.lines().iter().filter(|l| pred(l)).count()
    }

    pub fn count_events(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.events().iter().filter(|l| pred(l)).count()
    }

    /// Wait until `n` stdout lines match; returns the matches.
    #[track_caller]
    pub fn wait_for_lines(
        &self,
        pred: impl Fn(&str) -> bool,
        n: usize,
        timeout: Duration,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.output.lines.lock().unwrap();
        loop {
            let matches: Vec<String> = lines
                .iter()
                .filter(|l| !l.stderr && pred(&l.text))
                .map(|l| l.text.clone())
                .collect();
            if matches.len() >= n {
                return matches;
            }
            let now = Instant::now();
            if now >= deadline {
                drop(lines);
                panic!(
                    "timed out after {timeout:?} waiting for {n} matching line(s), found {}",
                    matches.len()
                );
            }
            lines = self
                .output
                .changed
                .wait_timeout(lines, (deadline - now).min(Duration::from_millis(100)))
                .unwrap()
                .0;
        }
    }

    /// Wait for the first stdout line matching `pred`; returns it.
    #[track_caller]
    pub fn wait_for_line(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        self.wait_for_lines(pred, 1, timeout).remove(0)
    }

    /// Wait for a supervise event whose text matches; returns the text.
    #[track_caller]
    pub fn wait_for_event(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let line = self.wait_for_line(|l| event_text(l).is_some_and(&pred), timeout);
        event_text(&line).unwrap().to_string()
    }

    /// Wait for `n` events matching; returns their texts.
    #[track_caller]
    pub fn wait_for_events(
        &self,
        pred: impl Fn(&str) -> bool,
        n: usize,
        timeout: Duration,
    ) -> Vec<String> {
        self.wait_for_lines(|l| event_text(l).is_some_and(&pred), n, timeout)
            .iter()
            .map(|l| event_text(l).unwrap().to_string())
            .collect()
    }

    /// Wait for an output line of instance `name` whose text matches; returns the text.
    #[track_caller]
    pub fn wait_for_output(
        &self,
        name: &str,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> String {
        let line = self.wait_for_line(
            |l| matches!(instance_line(l), Some((n, text)) if n == name && pred(text)),
            timeout,
        );
        instance_line(&line).unwrap().1.to_string()
    }

    /// Poll `cond` until it holds.
    #[track_caller]
    pub fn wait_for(&self, mut cond: impl FnMut() -> bool, timeout: Duration) {
        if !poll_until(&mut cond, timeout) {
            panic!("timed out after {timeout:?} waiting for a condition");
        }
    }

    // ---------------------------------------------------------------- pid files

    /// The pid the test app wrote to `pids/APP.INST.pid`, if any yet.
    pub fn read_pid(&self, app: &str, instance: u32) -> Option<i32> {
        read_pid_file(&self.pid_dir.join(format!("{app}.{instance}.pid")))
    }

    /// Wait for `pids/APP.INST.pid` and return its pid.
    #[track_caller]
    pub fn wait_pid(&self, app: &str, instance: u32) -> i32 {
        let mut pid = None;
        self.wait_for(
            || {
                pid = self.read_pid(app, instance);
                pid.is_some()
            },
            LONG,
        );
        pid.unwrap()
    }

    /// Wait until `pids/APP.INST.pid` holds a pid other than `old`; return it.
    #[track_caller]
    pub fn wait_pid_change(&self, app: &str, instance: u32, old: i32, timeout: Duration) -> i32 {
        let mut pid = None;
        self.wait_for(
            || {
                pid = self.read_pid(app, instance).filter(|&p| p != old);
                pid.is_some()
            },
            timeout,
        );
        pid.unwrap()
    }

    /// Every pid that `pids/APP.INST.starts` lists (one per start).
    pub fn starts(&self, app: &str, instance: u32) -> Vec<i32> {
        fs::read_to_string(self.pid_dir.join(format!("{app}.{instance}.starts")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Pids of the `--fork` children of APP.INST found so far.
    pub fn child_pids(&self, app: &str, instance: u32) -> Vec<i32> {
        let prefix = format!("{app}.{instance}.child");
        let mut pids = Vec::new();
        for entry in fs::read_dir(&self.pid_dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(&prefix) && name.ends_with(".pid") {
                if let Some(pid) = read_pid_file(&entry.path()) {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    /// Files named `orphan.<pid>` in the pid directory: pids of the orphans.
    pub fn orphan_pids(&self) -> Vec<i32> {
        fs::read_dir(&self.pid_dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.strip_prefix("orphan.")?.parse().ok()
            })
            .collect()
    }

    // ---------------------------------------------------------------- process

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

    fn cleanup(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        let root = running.child.id() as i32;
        let exited = running.status.is_some() || matches!(running.child.try_wait(), Ok(Some(_)));
        // Freeze the tree first, so nothing respawns or forks while it is being killed.
        let mut victims = BTreeSet::new();
        if !exited {
            let _ = kill(Pid::from_raw(root), Signal::SIGSTOP);
        }
        // Once supervise has been waited for, its pid may belong to someone else: only
        // walk its tree while it is still ours.
        for _ in 0..if exited { 0 } else { 3 } {
            for pid in descendants(root) {
                if victims.insert(pid) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
                }
            }
        }
        // Test processes that left the tree (orphans of an exited supervise): they all
        // carry the test directory on their command line or are in its pid files.
        let marker = self.dir.path().to_string_lossy().to_string();
        for pid in processes_with_cmdline(|args| args.iter().any(|a| a.contains(&marker))) {
            victims.insert(pid);
        }
        for pid in self.pid_file_pids() {
            if cmdline(pid).is_some_and(|args| {
                args.first()
                    .is_some_and(|a| a.ends_with("supervise-testapp"))
            }) {
                victims.insert(pid);
            }
        }
        victims.remove(&(std::process::id() as i32));
        for &pid in &victims {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if !exited {
            let _ = kill(Pid::from_raw(root), Signal::SIGKILL);
        }
        let _ = running.child.wait();
        drop(running.held_stdout.take());
    }

    /// Every pid in the pid directory's `*.pid` files and orphan markers.
    fn pid_file_pids(&self) -> Vec<i32> {
        let mut pids = self.orphan_pids();
        if let Ok(entries) = fs::read_dir(&self.pid_dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().ends_with(".pid") {
                    pids.extend(read_pid_file(&entry.path()));
                }
            }
        }
        pids
    }

    fn report_failure(&self) {
        let mut report =
            String::from("\n======== supervise output (stderr lines tagged) ========\n");
        for line in self.all_lines() {
            let mut text = line.text;
            if text.len() > 300 {
                let mut cut = 300;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text = format!("{}... ({} bytes)", &text[..cut], text.len());
            }
            if line.stderr {
                report.push_str("[stderr] ");
            }
            report.push_str(&text);
            report.push('\n');
        }
        for file in &self.files {
            report.push_str(&format!("======== {} ========\n", file.display()));
            report.push_str(&fs::read_to_string(file).unwrap_or_default());
            report.push('\n');
        }
        report.push_str("========\n");
        eprintln!("{report}");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let failed = thread::panicking();
        self.cleanup();
        if failed {
            self.report_failure();
        }
    }
}

fn spawn_reader(stream: impl Read + Send + 'static, stderr: bool, output: Arc<Output>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => {
                    *output.closed.lock().unwrap() += 1;
                    output.closed_changed.notify_all();
                    break;
                }
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                    }
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    output.lines.lock().unwrap().push(Line { stderr, text });
                    output.changed.notify_all();
                }
            }
        }
    });
}

fn read_pid_file(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Poll `cond` until it holds or `timeout` passes; returns whether it held.
pub fn poll_until(mut cond: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

// -------------------------------------------------------------------- /proc

/// The fields of `/proc/PID/stat` the tests need.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub pid: i32,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
}

pub fn stat(pid: i32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `comm` is in parentheses and may hold spaces or parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    Some(Stat {
        pid,
        state,
        ppid,
        pgrp,
        session,
    })
}

/// Every process now.
pub fn all_stats() -> Vec<Stat> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .collect()
}

/// The process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok() && stat(pid).is_some_and(|s| s.state != 'Z')
}

/// The process is gone entirely (reaped): not even a zombie.
pub fn gone(pid: i32) -> bool {
    stat(pid).is_none()
}

pub fn children_of(ppid: i32) -> Vec<i32> {
    all_stats()
        .into_iter()
        .filter(|s| s.ppid == ppid)
        .map(|s| s.pid)
        .collect()
}

pub fn zombies_with_parent(ppid: i32) -> Vec<i32> {
    all_stats()
        .into_iter()
        .filter(|s| s.ppid == ppid && s.state == 'Z')
        .map(|s| s.pid)
        .collect()
}

/// Every descendant of `root` (not `root` itself), by following ppid links.
pub fn descendants(root: i32) -> Vec<i32> {
    let stats = all_stats();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for s in &stats {
            if s.ppid == parent && !found.contains(&s.pid) {
                found.push(s.pid);
            }
        }
        i += 1;
    }
    found.remove(0);
    found
}

/// argv of a process (None for kernel threads, zombies and vanished processes).
pub fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    Some(
        raw.split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// Pids of every live process whose argv satisfies `pred`.
pub fn processes_with_cmdline(pred: impl Fn(&[String]) -> bool) -> Vec<i32> {
    all_stats()
        .into_iter()
        .filter(|s| s.state != 'Z')
        .filter(|s| cmdline(s.pid).is_some_and(|args| pred(&args)))
        .map(|s| s.pid)
        .collect()
}

/// Pids of every live process whose `comm` (the kernel's short name) is `name`.
pub fn processes_named(name: &str) -> Vec<i32> {
    all_stats()
        .into_iter()
        .filter(|s| s.state != 'Z')
        .filter(|s| {
            fs::read_to_string(format!("/proc/{}/comm", s.pid)).is_ok_and(|c| c.trim_end() == name)
        })
        .map(|s| s.pid)
        .collect()
}

/// Parse a delay as supervise prints it ("now", "250ms", "1.5s", "2m").
pub fn parse_delay(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "now" {
        return Some(Duration::ZERO);
    }
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        "us" | "µs" => number / 1e6,
        _ => return None,
    };
    Some(Duration::from_secs_f64(seconds))
}

/// Whether `text` starts with an RFC 3339 date-time (`2024-05-01T12:00:00.123Z` or with
/// an offset, `T` or a space between date and time); returns the rest.
pub fn strip_rfc3339(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        range
            .clone()
            .all(|i| b.get(i).is_some_and(u8::is_ascii_digit))
    };
    if !(digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19))
    {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    match b.get(i) {
        Some(b'Z' | b'z') => Some(&text[i + 1..]),
        Some(b'+' | b'-') => {
            if digits(i + 1..i + 3) && b.get(i + 3) == Some(&b':') && digits(i + 4..i + 6) {
                Some(&text[i + 6..])
            } else {
                None
            }
        }
        _ => None,
    }
}

// -------------------------------------------------------------------- client commands

impl Harness {
    /// A `supervise ARGS` client command that reaches this harness's supervise (same
    /// `SUPERVISE_SOCKET`, run in the test directory, `NO_COLOR`), not yet started.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(supervise_bin());
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("SUPERVISE_SOCKET", self.path("ctl.sock"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Run `supervise ARGS` as a client of this harness's supervise, e.g.
    /// `h.cli(&["status", "--json"])`; panics if it has not finished within [`LONG`] * 3.
    #[track_caller]
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        output_within(self.cli_command(args), LONG * 3)
    }
}

/// Run `command` (stdout and stderr piped) and collect its output; kill it and panic if
/// it has not exited within `timeout`.
#[track_caller]
pub fn output_within(mut command: Command, timeout: Duration) -> std::process::Output {
    let shown = format!("{command:?}");
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
    let collect = |stream: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut s) = stream {
                let _ = s.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = collect(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = collect(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{shown} did not finish within {timeout:?}");
        }
        thread::sleep(POLL);
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}
