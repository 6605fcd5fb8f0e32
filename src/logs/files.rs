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
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::chunk::{strip, Chunk};
pub use super::open_files::file_name;
use super::open_files::{Files, Part};
use super::output::CUT_MARK;
use super::writer::{Drain, Retry, Writer};
use super::Stream;

/// Bytes of lines the queue may hold before `try_line` refuses lines.
pub const QUEUE_BOUND: usize = 4 * 1024 * 1024;
/// Files kept open at most.
pub const MAX_OPEN: usize = 256;
/// Counted per queued line on top of its bytes, so that empty lines are bounded too.
const LINE_OVERHEAD: usize = 64;
/// The writer writes its buffer out once it holds this much.
const WRITE_AT: usize = 64 * 1024;
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

/// What the writer thread is handed.
enum Item {
    Lines(Arc<Chunk>),
    /// New settings (urgent).
    Settings(FileSettings),
    /// Close every file (urgent).
    Reopen,
}

/// Handle to the log files' writer thread, owned by the event loop. Every method is cheap and
/// never blocks on the disk.
pub struct LogFiles {
    writer: Writer<Item>,
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
        let drain = FilesDrain {
            files: Files {
                settings,
                map: HashMap::new(),
                open: 0,
                max_open: max_open.max(1),
                clock: 0,
            },
            out: Vec::with_capacity(2 * WRITE_AT),
            out_key: None,
            taken: 0,
            warned: false,
        };
        let writer = Writer::start("supervise-logfiles", drain, bound, 0, waker)?;
        Ok(LogFiles { writer })
    }

    /// Queues one line (without its newline) of an instance. False when the queue is full:
    /// the caller should then stop reading that pipe until the waker fires.
    pub fn try_line(&self, app: &str, index: u32, stream: Stream, line: &[u8], cut: bool) -> bool {
        let mut chunk = Chunk::new(app.into(), index, stream, SystemTime::now());
        chunk.push(line, cut);
        self.try_chunk(Arc::new(chunk))
    }

    /// Queues lines of an instance; false when the queue is full, as `try_line`.
    pub fn try_chunk(&self, chunk: Arc<Chunk>) -> bool {
        let bytes = chunk.weight(LINE_OVERHEAD);
        self.writer.try_push(Item::Lines(chunk), bytes).is_ok()
    }

    /// Whether `try_line` would accept a line now. When it returns false, the waker will
    /// fire once there is room, as after a refusal.
    pub fn has_room(&self) -> bool {
        self.writer.has_room()
    }

    /// Holds (or releases) the writer thread's wake-ups: see [`super::writer::Writer::hold`].
    pub fn hold(&self, held: bool) {
        self.writer.hold(held);
    }

    /// Closes every file at the writer's next turn, so that lines queued from now on go to
    /// files opened anew (after logrotate moved the old ones away).
    pub fn reopen(&self) {
        self.writer.urgent(Item::Reopen);
    }

    /// New settings (on reload), applied at the writer's next turn: lines queued from now on
    /// follow them (lines queued just before may too). A new directory is created by the
    /// writer; if that fails, it warns and retries like any write error.
    pub fn set(&self, settings: FileSettings) {
        self.writer.urgent(Item::Settings(settings));
    }

    /// Writes out what is queued and stops the thread, waiting at most `deadline`: past it,
    /// lines that could not be written are given up and the thread is left to end alone.
    pub fn finish(self, deadline: Duration) {
        self.writer.finish(deadline);
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

/// The drain of the log files' writer.
struct FilesDrain {
    files: Files,
    /// Formatted bytes not yet written, all for `out_key`'s file.
    out: Vec<u8>,
    out_key: Option<(Arc<str>, u32, Part)>,
    /// Bytes of the first queued chunk whose lines are already in `out`.
    taken: usize,
    /// A warning was logged for the current failure.
    warned: bool,
}

impl Drain for FilesDrain {
    type Item = Item;

    /// Writes what is pending, noting success or failure.
    fn write(&mut self, items: &mut VecDeque<Item>) -> Result<(), Retry> {
        match self.write_pending(items) {
            Ok(()) => {
                if std::mem::take(&mut self.warned) {
                    log::info!("log files: writing again");
                }
                Ok(())
            }
            Err(e) => {
                if !std::mem::replace(&mut self.warned, true) {
                    log::warn!(
                        "log files: cannot write in {}: {e}; keeping the lines and retrying",
                        self.files.settings.dir.display()
                    );
                }
                Err(Retry)
            }
        }
    }

    fn urgent(&mut self, item: Item) {
        match item {
            Item::Settings(settings) => self.set(settings),
            Item::Reopen => {
                let _ = self.flush_out();
                self.files.close_all();
            }
            Item::Lines(_) => {}
        }
    }

    fn close(&mut self) {
        self.files.close_all();
    }
}

impl FilesDrain {
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

    fn write_pending(&mut self, items: &mut VecDeque<Item>) -> io::Result<()> {
        self.flush_out()?;
        while let Some(Item::Lines(chunk)) = items.front() {
            let chunk = Arc::clone(chunk);
            let mut lines = chunk.lines_from(self.taken);
            while let Some((line, cut)) = lines.next() {
                self.put(&chunk, line, cut)?;
                self.taken = lines.offset();
            }
            self.taken = 0;
            items.pop_front();
        }
        items.clear(); // only lines are queued
        self.flush_out()
    }

    /// Formats a line (newline included) into `out`, writing out and rotating first as
    /// needed. On `Err`, the line was not taken.
    fn put(&mut self, chunk: &Chunk, line: &[u8], cut: bool) -> io::Result<()> {
        let (app, index) = (&chunk.app, chunk.index);
        let part = Part::of(chunk.stream, self.files.settings.merge);
        let same = self
            .out_key
            .as_ref()
            .is_some_and(|(a, i, p)| a == app && *i == index && *p == part);
        if !same || self.out.len() >= WRITE_AT {
            self.flush_out()?;
            if !same {
                self.out_key = Some((Arc::clone(app), index, part));
            }
        }
        let s = &self.files.settings;
        let len = line.len()
            + if cut { CUT_MARK.len() } else { 0 }
            + if s.timestamps { TIMESTAMP_LEN } else { 0 };
        let max = s.max_size;
        let f = self.files.get(app, index, part)?;
        let size = f.size + self.out.len() as u64;
        if size > 0 && size + len as u64 > max && !f.no_rotate {
            self.flush_out()?;
            self.files.rotate(app, index, part)?;
        }
        let start = self.out.len();
        if self.files.settings.timestamps {
            let _ = write!(
                self.out,
                "{} ",
                humantime::format_rfc3339_millis(chunk.time)
            );
        }
        if cut {
            self.out.extend_from_slice(strip(line));
            self.out.extend_from_slice(CUT_MARK.as_bytes());
            self.out.push(b'\n');
        } else {
            self.out.extend_from_slice(line);
        }
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
