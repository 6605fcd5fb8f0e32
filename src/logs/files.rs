//! Per-instance log files under `log_dir` (SPEC §5, issue 6 item 5).
//!
//! The event loop hands lines to [`LogFiles`], whose methods only take a short lock and never
//! block; a dedicated thread formats them and appends them to `APP.N.out.log` /
//! `APP.N.err.log` (or `APP.N.log` with `merge`). The queue is bounded in bytes, with the same
//! contract as [`super::output`]: when it is full, [`LogFiles::try_line`] refuses the line and
//! the caller stops reading that pipe until the waker fires, so a slow disk slows the
//! instances down but never the supervision.
//!
//! Format: the line's bytes as they came (no prefix: the file name says whose it is) and a
//! newline; with timestamps, an RFC 3339 UTC time with milliseconds and a space first; a
//! piece of a cut line ends with [`CUT_MARK`].
//!
//! Rotation: before a line that would take a non-empty file past `max_size`, `X.log.(keep-1)`
//! becomes `X.log.keep` ... `X.log` becomes `X.log.1` (with `keep = 0`, `X.log` is removed)
//! and a fresh `X.log` is opened. Rotation happens between lines only: a line is never split
//! across files, and a single line longer than `max_size` still goes whole into a fresh file.
//! If a rename fails (other than the file being gone), the file simply keeps growing until it
//! is reopened.
//!
//! Files are opened `O_APPEND | O_CREAT | O_CLOEXEC`, mode 0640 (less the umask), and kept
//! open, at most [`MAX_OPEN`] of them: beyond that the least recently used is closed and
//! reopened on demand. [`LogFiles::reopen`] (SIGUSR1, logrotate's convention) closes them all.
//!
//! When writing fails (disk full, directory removed...), no line is dropped: the writer keeps
//! them and retries with a growing delay (at most one second), warns once per episode, and
//! the queue fills up until the instances are held back. The writer never wakes while idle.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::output::CUT_MARK;
use super::Stream;

/// Bytes of lines the queue may hold before `try_line` refuses lines.
pub const QUEUE_BOUND: usize = 4 * 1024 * 1024;
/// Files kept open at most.
pub const MAX_OPEN: usize = 256;
/// Counted per queued line on top of its bytes, so that empty lines are bounded too.
const LINE_OVERHEAD: usize = 64;
/// The writer writes its buffer out once it holds this much.
const WRITE_AT: usize = 64 * 1024;
/// First and longest delay between attempts while writing fails.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// Length of `humantime::format_rfc3339_millis` plus its space.
const TIMESTAMP_LEN: usize = "2000-01-01T00:00:00.000Z ".len();

/// Where and how the files are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSettings {
    /// Absolute; created if missing.
    pub dir: PathBuf,
    /// A file is rotated before a line would take it past this many bytes.
    pub max_size: u64,
    /// Old files kept per file (`X.log.1` ... `X.log.keep`).
    pub keep: u32,
    /// One `APP.N.log` per instance instead of `APP.N.out.log` and `APP.N.err.log`.
    pub merge: bool,
    /// Each line starts with an RFC 3339 UTC time with milliseconds.
    pub timestamps: bool,
}

struct Line {
    time: SystemTime,
    app: String,
    index: u32,
    stream: Stream,
    line: Vec<u8>,
    cut: bool,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Line>,
    /// Bytes (plus overhead) in `queue`.
    bytes: usize,
    /// A line was refused (or `has_room` said no): wake the waker when there is room.
    want_wake: bool,
    /// Close every file at the next turn.
    reopen: bool,
    /// New settings, applied at the next turn.
    settings: Option<FileSettings>,
    stop: bool,
    /// Give up on lines that cannot be written and end.
    abandon: bool,
    done: bool,
}

struct Shared {
    state: Mutex<State>,
    /// The writer waits here for lines, settings, `reopen` or `stop`.
    work: Condvar,
    /// `finish` waits here for `done`.
    done: Condvar,
    bound: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Handle to the log files' writer thread, owned by the event loop. Every method is cheap and
/// never blocks on the disk.
pub struct LogFiles {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogFiles {
    /// Creates `settings.dir` if needed, checks that it is writable and spawns the writer
    /// thread. `waker` is woken when the queue has room again after a refusal.
    pub fn start(settings: FileSettings, waker: Option<Arc<mio::Waker>>) -> io::Result<LogFiles> {
        Self::start_with(settings, waker, QUEUE_BOUND, MAX_OPEN)
    }

    /// [`LogFiles::start`] with the queue bound and the open files cap given.
    pub(crate) fn start_with(
        settings: FileSettings,
        waker: Option<Arc<mio::Waker>>,
        bound: usize,
        max_open: usize,
    ) -> io::Result<LogFiles> {
        check_dir(&settings.dir)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            bound,
        });
        let writer = Writer {
            files: Files {
                settings,
                map: HashMap::new(),
                open: 0,
                max_open: max_open.max(1),
                clock: 0,
            },
            out: Vec::with_capacity(2 * WRITE_AT),
            out_key: None,
            pending: VecDeque::new(),
            retry: None,
            warned: false,
        };
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("supervise-logfiles".into())
            .spawn(move || run(&s, writer, waker))?;
        Ok(LogFiles {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues one line (without its newline) of an instance. False when the queue is full:
    /// the caller should then stop reading that pipe until the waker fires.
    pub fn try_line(&self, app: &str, index: u32, stream: Stream, line: &[u8], cut: bool) -> bool {
        let mut st = self.shared.lock();
        if st.bytes >= self.shared.bound {
            st.want_wake = true;
            return false;
        }
        let was_empty = st.queue.is_empty();
        st.queue.push_back(Line {
            time: SystemTime::now(),
            app: app.to_owned(),
            index,
            stream,
            line: line.to_vec(),
            cut,
        });
        st.bytes += line.len() + LINE_OVERHEAD;
        drop(st);
        if was_empty {
            self.shared.work.notify_one();
        }
        true
    }

    /// Whether `try_line` would accept a line now. When it returns false, the waker will
    /// fire once there is room, as after a refusal.
    pub fn has_room(&self) -> bool {
        let mut st = self.shared.lock();
        if st.bytes < self.shared.bound {
            true
        } else {
            st.want_wake = true;
            false
        }
    }

    /// Closes every file at the writer's next turn, so that lines queued from now on go to
    /// files opened anew (after logrotate moved the old ones away).
    pub fn reopen(&self) {
        self.shared.lock().reopen = true;
        self.shared.work.notify_one();
    }

    /// New settings (on reload), applied at the writer's next turn: lines queued from now on
    /// follow them (lines queued just before may too). A new directory is created by the
    /// writer; if that fails, it warns and retries like any write error.
    pub fn set(&self, settings: FileSettings) {
        self.shared.lock().settings = Some(settings);
        self.shared.work.notify_one();
    }

    fn stop(&self, abandon: bool) {
        let mut st = self.shared.lock();
        st.stop = true;
        st.abandon |= abandon;
        drop(st);
        self.shared.work.notify_one();
    }

    /// Writes out what is queued and stops the thread, waiting at most `deadline`: past it,
    /// lines that could not be written are given up and the thread is left to end alone.
    pub fn finish(mut self, deadline: Duration) {
        self.stop(false);
        let st = self.shared.lock();
        let (st, _) = self
            .shared
            .done
            .wait_timeout_while(st, deadline, |s| !s.done)
            .unwrap_or_else(PoisonError::into_inner);
        let done = st.done;
        drop(st);
        if let Some(thread) = self.thread.take() {
            if done {
                let _ = thread.join();
            }
        }
        // `drop` then tells a left-behind thread to give up.
    }
}

impl Drop for LogFiles {
    /// Without `finish`, the thread still writes out what is queued, giving up at the first
    /// error, then ends.
    fn drop(&mut self) {
        self.stop(true);
    }
}

fn check_dir(dir: &Path) -> io::Result<()> {
    let fail = |e: io::Error| io::Error::new(e.kind(), format!("log_dir {}: {e}", dir.display()));
    if !dir.is_absolute() {
        return Err(fail(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an absolute path",
        )));
    }
    fs::create_dir_all(dir).map_err(fail)?;
    nix::unistd::access(
        dir,
        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
    )
    .map_err(|e| fail(e.into()))
}

/// The writer thread.
fn run(shared: &Shared, mut w: Writer, waker: Option<Arc<mio::Waker>>) {
    loop {
        let mut st = shared.lock();
        if let Some(delay) = w.retry {
            // Writing fails: wait, unless something that may help comes.
            st = shared
                .work
                .wait_timeout_while(st, delay, |s| {
                    !s.abandon && !s.reopen && s.settings.is_none()
                })
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if st.abandon {
                break;
            }
        } else {
            // Everything is written: sleep until there is something to do.
            st = shared
                .work
                .wait_while(st, |s| {
                    s.queue.is_empty() && !s.stop && !s.reopen && s.settings.is_none()
                })
                .unwrap_or_else(PoisonError::into_inner);
        }
        let settings = st.settings.take();
        let reopen = std::mem::take(&mut st.reopen);
        let mut wake = false;
        if w.pending.is_empty() && w.out.is_empty() {
            // Take more lines only once everything taken is written.
            std::mem::swap(&mut st.queue, &mut w.pending);
            st.bytes = 0;
            wake = std::mem::take(&mut st.want_wake);
        }
        let finished = st.stop && w.pending.is_empty() && w.out.is_empty();
        drop(st);
        if wake {
            if let Some(waker) = &waker {
                let _ = waker.wake();
            }
        }
        if finished {
            break;
        }
        if let Some(settings) = settings {
            w.set(settings);
        }
        if reopen {
            w.reopen();
        }
        w.turn();
    }
    w.files.close_all();
    shared.lock().done = true;
    shared.done.notify_all();
}

/// Which file of an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Part {
    Out,
    Err,
    Merged,
}

impl Part {
    fn of(stream: Stream, merge: bool) -> Part {
        match stream {
            _ if merge => Part::Merged,
            Stream::Stdout => Part::Out,
            Stream::Stderr => Part::Err,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Part::Out => "out.log",
            Part::Err => "err.log",
            Part::Merged => "log",
        }
    }
}

/// A file name: `APP.N.out.log`, `APP.N.err.log` or `APP.N.log`.
pub fn file_name(app: &str, index: u32, stream: Stream, merge: bool) -> String {
    format!("{app}.{index}.{}", Part::of(stream, merge).suffix())
}

struct OpenFile {
    file: File,
    /// Bytes in the file, as far as we know.
    size: u64,
    /// `Files::clock` at the last use, for the LRU.
    used: u64,
    /// Renaming it failed: let it grow rather than retry at every line.
    no_rotate: bool,
}

/// The open files, by app, then by instance and part.
struct Files {
    settings: FileSettings,
    map: HashMap<String, HashMap<(u32, Part), OpenFile>>,
    /// Number of files in `map`.
    open: usize,
    max_open: usize,
    clock: u64,
}

impl Files {
    fn path(&self, app: &str, index: u32, part: Part) -> PathBuf {
        self.settings
            .dir
            .join(format!("{app}.{index}.{}", part.suffix()))
    }

    /// The open file, opened (and created) if needed.
    fn get(&mut self, app: &str, index: u32, part: Part) -> io::Result<&mut OpenFile> {
        self.clock += 1;
        let clock = self.clock;
        let known = self
            .map
            .get(app)
            .is_some_and(|m| m.contains_key(&(index, part)));
        if !known {
            if self.open >= self.max_open {
                self.evict();
            }
            let file = self.open_file(&self.path(app, index, part))?;
            self.map
                .entry(app.to_owned())
                .or_default()
                .insert((index, part), file);
            self.open += 1;
            debug_assert!(self.open <= self.max_open);
        }
        let f = self
            .map
            .get_mut(app)
            .and_then(|m| m.get_mut(&(index, part)))
            .expect("just opened");
        f.used = clock;
        Ok(f)
    }

    fn open_file(&self, path: &Path) -> io::Result<OpenFile> {
        let open = || {
            OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)
        };
        let file = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The directory went away: make it again.
                fs::create_dir_all(&self.settings.dir)?;
                open()
            }
            r => r,
        }
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let size = file.metadata()?.len();
        Ok(OpenFile {
            file,
            size,
            used: 0,
            no_rotate: false,
        })
    }

    /// Closes the least recently used file.
    fn evict(&mut self) {
        let lru = self
            .map
            .iter()
            .flat_map(|(app, m)| m.iter().map(move |(k, f)| (f.used, app, *k)))
            .min_by_key(|(used, _, _)| *used)
            .map(|(_, app, k)| (app.clone(), k));
        if let Some((app, k)) = lru {
            self.close(&app, k.0, k.1);
        }
    }

    fn close(&mut self, app: &str, index: u32, part: Part) {
        if let Some(m) = self.map.get_mut(app) {
            if m.remove(&(index, part)).is_some() {
                self.open -= 1;
            }
            if m.is_empty() {
                self.map.remove(app);
            }
        }
    }

    fn close_all(&mut self) {
        self.map.clear();
        self.open = 0;
    }

    /// Shifts the old files, moves the current one to `.1` and opens a fresh one. An `Err`
    /// means the fresh file could not be opened (the old one is closed).
    fn rotate(&mut self, app: &str, index: u32, part: Part) -> io::Result<()> {
        let path = self.path(app, index, part);
        let numbered = |i: u32| {
            let mut p = path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        let keep = self.settings.keep;
        // Files beyond `keep` (left by a larger `keep` before a reload).
        let mut i = keep.saturating_add(1);
        while fs::remove_file(numbered(i)).is_ok() {
            i += 1;
        }
        let moved = if keep == 0 {
            gone_ok(fs::remove_file(&path))
        } else {
            (1..keep)
                .rev()
                .map(|i| gone_ok(fs::rename(numbered(i), numbered(i + 1))))
                .find(Result::is_err)
                .unwrap_or(Ok(()))
                .and_then(|()| gone_ok(fs::rename(&path, numbered(1))))
        };
        if let Err(e) = moved {
            log::warn!(
                "log files: cannot rotate {}: {e}; it keeps growing until reopened",
                path.display()
            );
            self.get(app, index, part)?.no_rotate = true;
            return Ok(());
        }
        self.close(app, index, part);
        self.get(app, index, part).map(|_| ())
    }
}

fn gone_ok(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// The writer thread's state.
struct Writer {
    files: Files,
    /// Formatted bytes not yet written, all for `out_key`'s file.
    out: Vec<u8>,
    out_key: Option<(String, u32, Part)>,
    /// Lines taken from the queue, not yet formatted into `out`.
    pending: VecDeque<Line>,
    /// Writing fails: the delay before the next attempt.
    retry: Option<Duration>,
    /// A warning was logged for the current failure.
    warned: bool,
}

impl Writer {
    fn set(&mut self, settings: FileSettings) {
        let old = &self.files.settings;
        if settings.dir != old.dir || settings.merge != old.merge {
            let _ = self.flush_out();
            self.files.close_all();
            if let Err(e) = fs::create_dir_all(&settings.dir) {
                log::warn!("log files: cannot create {}: {e}", settings.dir.display());
            }
        }
        self.files.settings = settings;
    }

    fn reopen(&mut self) {
        let _ = self.flush_out();
        self.files.close_all();
    }

    /// Writes what is pending, noting success or failure.
    fn turn(&mut self) {
        match self.write_pending() {
            Ok(()) => {
                if std::mem::take(&mut self.warned) {
                    log::info!("log files: writing again");
                }
                self.retry = None;
            }
            Err(e) => {
                if !std::mem::replace(&mut self.warned, true) {
                    log::warn!(
                        "log files: cannot write in {}: {e}; keeping the lines and retrying",
                        self.files.settings.dir.display()
                    );
                }
                self.retry = Some(self.retry.map_or(RETRY_FIRST, |d| (d * 2).min(RETRY_MAX)));
            }
        }
    }

    fn write_pending(&mut self) -> io::Result<()> {
        self.flush_out()?;
        while let Some(line) = self.pending.pop_front() {
            if let Err(e) = self.put(&line) {
                self.pending.push_front(line);
                return Err(e);
            }
        }
        self.flush_out()
    }

    /// Formats a line into `out`, writing out and rotating first as needed. On `Err`, the
    /// line was not taken.
    fn put(&mut self, line: &Line) -> io::Result<()> {
        let part = Part::of(line.stream, self.files.settings.merge);
        let same = self
            .out_key
            .as_ref()
            .is_some_and(|(a, i, p)| *a == line.app && *i == line.index && *p == part);
        if !same || self.out.len() >= WRITE_AT {
            self.flush_out()?;
            if !same {
                self.out_key = Some((line.app.clone(), line.index, part));
            }
        }
        let s = &self.files.settings;
        let len = line.line.len()
            + 1
            + if line.cut { CUT_MARK.len() } else { 0 }
            + if s.timestamps { TIMESTAMP_LEN } else { 0 };
        let max = s.max_size;
        let f = self.files.get(&line.app, line.index, part)?;
        let size = f.size + self.out.len() as u64;
        if size > 0 && size + len as u64 > max && !f.no_rotate {
            self.flush_out()?;
            self.files.rotate(&line.app, line.index, part)?;
        }
        let start = self.out.len();
        if self.files.settings.timestamps {
            let _ = write!(self.out, "{} ", humantime::format_rfc3339_millis(line.time));
        }
        self.out.extend_from_slice(&line.line);
        if line.cut {
            self.out.extend_from_slice(CUT_MARK.as_bytes());
        }
        self.out.push(b'\n');
        debug_assert_eq!(self.out.len() - start, len);
        Ok(())
    }

    /// Writes `out` to its file. On `Err`, what was not written stays in `out`.
    fn flush_out(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let Some((app, index, part)) = &self.out_key else {
            self.out.clear();
            return Ok(());
        };
        let f = self.files.get(app, *index, *part)?;
        let mut off = 0;
        let result = loop {
            if off == self.out.len() {
                break Ok(());
            }
            match f.file.write(&self.out[off..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    off += n;
                    f.size += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.out.drain(..off);
        if result.is_err() {
            // Reopen at the next attempt: the path may lead somewhere better by then.
            self.files.close(app, *index, *part);
        }
        result
    }
}

#[cfg(test)]
#[path = "files_tests.rs"]
mod tests;
