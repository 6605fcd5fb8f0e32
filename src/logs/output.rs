//! The single writer of supervise's stdout (SPEC §5, DESIGN "Output").
//!
//! The event loop hands lines to [`Output`], whose methods only take a short lock and never
//! block; a dedicated thread formats them and writes them to stdout with ordinary blocking
//! writes (stdout is never made non-blocking: that flag belongs to the shared open file
//! description). The queue is bounded in bytes of instance output: when it is full,
//! [`Output::try_line`] gives the line back and the caller stops reading that pipe until the
//! waker fires, so a blocked stdout slows the instances down but never the supervision.
//! supervise's own events bypass the bound.
//!
//! Formats, text:
//! - `web.0     | hello`: `APP.N` padded to the longest known name (and `supervise`);
//! - `supervise | web.0 exited with code 1`;
//! - with colour, the prefix and its `|` take one colour per app, supervise's are bold;
//! - with timestamps, each line starts with an RFC 3339 UTC time with milliseconds and a space;
//! - a piece of a cut line (see [`super::lines`]) ends with [`CUT_MARK`].
//!
//! JSON, one object per line, keys in this order:
//! `{"time":"…","app":"web","instance":0,"stream":"stdout","line":"hello"}`, supervise's own
//! with `"app":"supervise","stream":"event"` and no instance, a cut piece adds `"cut":true`.
//!
//! Text lines carry the app's bytes as it wrote them, invalid UTF-8 included, as the log
//! files do and as PM2, supervisord or a terminal would show them: checking every byte of a
//! burst cost the writer thread a sixth of its time. JSON needs valid strings, so there
//! invalid UTF-8 is replaced (U+FFFD). Lines come in chunks (one per pipe read, see
//! [`super::chunk`]); the prefix is made once per chunk (per 256 KiB piece of a big one,
//! see `WRITE_AT`) and each line is formatted whole
//! into a buffer that is written out when it is large or when the queue is empty, so lines
//! are never split or merged and an idle supervise shows every line promptly. If stdout
//! fails (closed pipe...), lines are dropped silently.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::chunk::{strip, Chunk};
use super::writer::{Drain, Retry, Writer};
use crate::config::LogFormat;

/// Bytes of instance output the queue may hold before `try_line` refuses lines.
pub const QUEUE_BOUND: usize = 1024 * 1024;
/// Counted per queued line on top of its bytes, so that empty lines are bounded too.
const LINE_OVERHEAD: usize = 64;
/// The writer thread writes its buffer out once it holds this much.
const WRITE_AT: usize = 256 * 1024;
/// Suffix of a piece of a line that was cut (text format).
pub const CUT_MARK: &str = " [cut: line continues]";

/// supervise's own events that may wait for a blocked stdout.
pub const EVENT_BOUND: usize = 10_000;
/// The name of supervise's own lines.
const SELF_NAME: &str = "supervise";

const PALETTE: [&str; 6] = [
    "\x1b[36m", // cyan
    "\x1b[33m", // yellow
    "\x1b[32m", // green
    "\x1b[35m", // magenta
    "\x1b[34m", // blue
    "\x1b[91m", // bright red
];
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

/// Which pipe of an instance a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

enum Item {
    Apps(Vec<(String, u32)>),
    Event { time: SystemTime, text: String },
    Lines(Arc<Chunk>),
}

/// Handle to the stdout writer thread, owned by the event loop. Every method is cheap and
/// never blocks on stdout.
pub struct Output {
    writer: Writer<Item>,
    /// The last events, for `supervise logs` (see [`super::recent`]).
    recent: std::sync::Mutex<super::recent::RecentEvents>,
}

impl Output {
    /// Spawns the writer thread writing to the process's stdout (fd 1, blocking writes).
    /// `waker` is woken when the queue has room again after a `try_line` was refused.
    /// Colour: on in text format when stdout is a terminal and `NO_COLOR` is unset or empty.
    pub fn start(format: LogFormat, timestamps: bool, waker: Option<Arc<mio::Waker>>) -> Output {
        // SAFETY: isatty only inspects the descriptor.
        let tty = unsafe { libc::isatty(1) } == 1;
        let no_colour = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self::start_with(Box::new(Fd1), format, timestamps, tty && !no_colour, waker)
    }

    /// Same as [`Output::start`] but writing to any writer, colour given explicitly.
    pub fn start_with(
        writer: Box<dyn Write + Send>,
        format: LogFormat,
        timestamps: bool,
        colour: bool,
        waker: Option<Arc<mio::Waker>>,
    ) -> Output {
        let fmt = Formatter {
            json: format == LogFormat::Json,
            timestamps,
            colour: colour && format == LogFormat::Text,
            width: SELF_NAME.len(),
            colours: HashMap::new(),
            head: Vec::new(),
        };
        let sink = Sink {
            w: writer,
            buf: Vec::with_capacity(2 * WRITE_AT),
            broken: false,
        };
        let drain = Stdout { fmt, sink };
        let writer = Writer::start("supervise-output", drain, QUEUE_BOUND, EVENT_BOUND, waker)
            .expect("cannot spawn the output thread");
        Output {
            writer,
            recent: Default::default(),
        }
    }

    /// Names currently known, to align prefixes and pick colours: (app name, number of
    /// instances), in the ecosystem's order. Lines already queued keep the old layout.
    pub fn set_apps(&self, apps: &[(String, u32)]) {
        self.writer.push(Item::Apps(apps.to_vec()), false);
    }

    /// One line of supervise's own. Never refused, and not counted in the bound of
    /// instance output; but while stdout is blocked at most [`EVENT_BOUND`] wait in
    /// memory, and the rest are counted and reported once stdout moves again (a crash
    /// loop behind a stuck log reader must not grow supervise without limit).
    pub fn event(&self, text: &str) {
        let time = SystemTime::now();
        let ms = time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        if let Ok(mut recent) = self.recent.lock() {
            recent.push(ms, text);
        }
        let item = Item::Event {
            time,
            text: text.to_owned(),
        };
        self.writer.push(item, true);
    }

    /// The events after sequence number `seq` (0: all kept), and the last number.
    pub fn recent_events(&self, seq: u64) -> (Vec<super::recent::RecentEvent>, u64) {
        match self.recent.lock() {
            Ok(r) => (r.since(seq), r.last_seq()),
            Err(_) => (Vec::new(), seq),
        }
    }

    /// Lines from an instance. Refused, given back, when the queue already holds
    /// [`QUEUE_BOUND`] bytes of instance output; the caller should then stop reading that
    /// pipe until the waker fires.
    pub fn try_chunk(&self, chunk: Arc<Chunk>) -> Result<(), Arc<Chunk>> {
        let bytes = chunk.weight(LINE_OVERHEAD);
        self.writer
            .try_push(Item::Lines(chunk), bytes)
            .map_err(|item| match item {
                Item::Lines(chunk) => chunk,
                _ => unreachable!("try_chunk gives back its own chunk"),
            })
    }

    /// One line from an instance (without its newline), as [`Output::try_chunk`]; the
    /// line is given back when refused.
    pub fn try_line(
        &self,
        app: &str,
        index: u32,
        stream: Stream,
        line: Vec<u8>,
        cut: bool,
    ) -> Result<(), Vec<u8>> {
        let mut chunk = Chunk::new(app.into(), index, stream, SystemTime::now());
        chunk.push(&line, cut);
        self.try_chunk(Arc::new(chunk)).map_err(|_| line)
    }

    /// Whether `try_chunk` would accept lines now. When it returns false, the waker will
    /// fire once there is room, as after a refusal.
    pub fn has_room(&self) -> bool {
        self.writer.has_room()
    }

    /// Holds (or releases) the writer thread's wake-ups: see [`super::writer::Writer::hold`].
    pub fn hold(&self, held: bool) {
        self.writer.hold(held);
    }

    /// Writes out what is queued and stops the thread, waiting at most `deadline`: if stdout
    /// is blocked, gives up and returns (the thread is left behind).
    pub fn finish(self, deadline: Duration) {
        self.writer.finish(deadline);
    }
}

/// The drain of the stdout writer.
struct Stdout {
    fmt: Formatter,
    sink: Sink,
}

impl Drain for Stdout {
    type Item = Item;

    fn write(&mut self, items: &mut VecDeque<Item>) -> Result<(), Retry> {
        for item in items.drain(..) {
            match item {
                Item::Apps(apps) => self.fmt.set_apps(&apps),
                _ if self.sink.broken => {}
                Item::Event { time, text } => {
                    self.fmt.event(&mut self.sink.buf, time, &text);
                    if self.sink.buf.len() >= WRITE_AT {
                        self.sink.write_buf();
                    }
                }
                Item::Lines(chunk) => {
                    // A big chunk goes out in pieces: the buffer stays small.
                    let mut next = 0;
                    while next < chunk.bytes() {
                        next = self.fmt.chunk(&mut self.sink.buf, &chunk, next);
                        if self.sink.buf.len() >= WRITE_AT {
                            self.sink.write_buf();
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) {
        self.sink.flush();
    }

    fn dropped(&mut self, n: usize, items: &mut VecDeque<Item>) {
        items.push_back(Item::Event {
            time: SystemTime::now(),
            text: format!("{n} supervise events were dropped while stdout was blocked"),
        });
    }
}

/// Formats items into bytes.
struct Formatter {
    json: bool,
    timestamps: bool,
    colour: bool,
    /// Width of the padded prefix.
    width: usize,
    /// Palette index of each known app.
    colours: HashMap<String, usize>,
    /// Scratch space for a prefix.
    head: Vec<u8>,
}

impl Formatter {
    fn set_apps(&mut self, apps: &[(String, u32)]) {
        self.colours.clear();
        self.width = SELF_NAME.len();
        for (i, (name, n)) in apps.iter().enumerate() {
            self.colours.insert(name.clone(), i % PALETTE.len());
            let last = n.saturating_sub(1);
            self.width = self.width.max(name.chars().count() + 1 + digits(last));
        }
    }

    fn colour_of(&self, app: &str) -> &'static str {
        let i = self.colours.get(app).copied().unwrap_or_else(|| {
            // An app no longer (or not yet) known: a stable colour from its name.
            app.bytes().map(usize::from).sum::<usize>() % PALETTE.len()
        });
        PALETTE[i]
    }

    /// One line of supervise's own.
    fn event(&mut self, out: &mut Vec<u8>, time: SystemTime, text: &str) {
        let mut head = std::mem::take(&mut self.head);
        head.clear();
        self.head(&mut head, time, SELF_NAME, None, None);
        out.extend_from_slice(&head);
        self.body(out, text.as_bytes(), false);
        self.head = head;
    }

    /// The lines of a chunk from the one starting at byte `from` on, with one prefix (or
    /// JSON head) made for all, until `out` holds [`WRITE_AT`] bytes; returns where the
    /// next line to format starts.
    fn chunk(&mut self, out: &mut Vec<u8>, c: &Chunk, from: usize) -> usize {
        let mut head = std::mem::take(&mut self.head);
        head.clear();
        self.head(&mut head, c.time, &c.app, Some(c.index), Some(c.stream));
        let mut lines = c.lines_from(from);
        while out.len() < WRITE_AT {
            let Some((line, cut)) = lines.next() else {
                break;
            };
            out.extend_from_slice(&head);
            if !self.json && !cut {
                out.extend_from_slice(line); // newline included
            } else {
                self.body(out, strip(line), cut);
            }
        }
        self.head = head;
        lines.offset()
    }

    /// What comes before a line's text: the text prefix, or the JSON object up to `"line":`.
    fn head(
        &self,
        out: &mut Vec<u8>,
        time: SystemTime,
        name: &str,
        index: Option<u32>,
        stream: Option<Stream>,
    ) {
        if self.json {
            let time = humantime::format_rfc3339_millis(time);
            let _ = write!(out, "{{\"time\":\"{time}\",\"app\":");
            json_str(out, name);
            if let Some(index) = index {
                let _ = write!(out, ",\"instance\":{index}");
            }
            let stream = stream.map_or("event", Stream::as_str);
            let _ = write!(out, ",\"stream\":\"{stream}\",\"line\":");
            return;
        }
        if self.timestamps {
            let _ = write!(out, "{} ", humantime::format_rfc3339_millis(time));
        }
        if self.colour {
            out.extend_from_slice(
                match index {
                    Some(_) => self.colour_of(name),
                    None => BOLD,
                }
                .as_bytes(),
            );
        }
        out.extend_from_slice(name.as_bytes());
        if let Some(index) = index {
            let _ = write!(out, ".{index}");
        }
        let shown = name.chars().count() + index.map_or(0, |i| 1 + digits(i));
        out.resize(out.len() + self.width.saturating_sub(shown), b' ');
        out.extend_from_slice(b" |");
        if self.colour {
            out.extend_from_slice(RESET.as_bytes());
        }
        out.push(b' ');
    }

    /// A line's text (in JSON, invalid UTF-8 replaced), its cut mark and its end.
    fn body(&self, out: &mut Vec<u8>, text: &[u8], cut: bool) {
        if self.json {
            json_str(out, &String::from_utf8_lossy(text));
            if cut {
                out.extend_from_slice(b",\"cut\":true");
            }
            out.extend_from_slice(b"}\n");
            return;
        }
        out.extend_from_slice(text);
        if cut {
            out.extend_from_slice(CUT_MARK.as_bytes());
        }
        out.push(b'\n');
    }
}

fn digits(mut n: u32) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The buffered, error-tolerant end of the writer thread.
struct Sink {
    w: Box<dyn Write + Send>,
    buf: Vec<u8>,
    /// Writing failed: drop everything from now on.
    broken: bool,
}

impl Sink {
    fn write_buf(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.write_all(&buf);
        self.buf = buf;
        self.buf.clear();
    }

    fn write_all(&mut self, bytes: &[u8]) {
        let mut off = 0;
        while off < bytes.len() && !self.broken {
            match self.w.write(&bytes[off..]) {
                Ok(0) => self.broken = true,
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Someone else made the shared stdout non-blocking: behave as blocking.
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => self.broken = true,
            }
        }
    }

    fn flush(&mut self) {
        self.write_buf();
        if !self.broken {
            if let Err(e) = self.w.flush() {
                if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted {
                    self.broken = true;
                }
            }
        }
    }
}

/// The process's stdout as a raw descriptor: no std buffering, no O_NONBLOCK, never closed.
struct Fd1;

impl Write for Fd1 {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: writing from a valid slice to fd 1.
        let n = unsafe { libc::write(1, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "output_tests.rs"]
mod tests;
