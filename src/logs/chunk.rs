//! The unit in which lines travel from a pipe to stdout, the log files and the ring: the
//! whole lines one read of one pipe gave, at one time (issue 10 item 7).
//!
//! Handling lines a read at a time, not a line at a time, is what makes logging cheap: one
//! allocation, one clock read and one queue operation per read. A chunk is shared
//! (`Arc<Chunk>`) by the stdout and file writers, so its bytes are never copied between
//! them.
//!
//! A chunk may carry the text prefix of supervise's stdout ([`Chunk::with_head`]): each
//! line is then stored behind it, exactly as stdout shows it, so the copy out of the read
//! buffer is also the formatting, done on the loop thread, and the stdout writer only
//! writes (the writer thread is the slowest stage of a burst). The files and the ring read
//! the lines without it.
//!
//! The big buffers of a burst are reused: a dropped chunk of at least [`POOLED`] bytes
//! leaves its buffer for the next one (at most [`SPARE`] kept), so a burst does not fault
//! in fresh pages for every read.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::lines::is_plain;
use super::Stream;

/// A chunk buffer this big is kept for reuse when dropped.
pub const POOLED: usize = 256 * 1024;
/// Buffers kept for reuse at most.
const SPARE: usize = 2;

static SPARES: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Whole lines of one instance's stream, in order.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub app: Arc<str>,
    pub index: u32,
    pub stream: Stream,
    /// When they were read.
    pub time: SystemTime,
    /// Each line, behind `head`, followed by `\n` (lines hold no `\n` of their own).
    data: Vec<u8>,
    /// What stands before each line in `data` (empty: nothing).
    head: Vec<u8>,
    /// Where each line ends in `data` (after its `\n`): lines are found without a scan.
    ends: Vec<u32>,
    /// Positions (line numbers) of the pieces of cut lines, ascending.
    cuts: Vec<u32>,
}

impl Chunk {
    pub fn new(app: Arc<str>, index: u32, stream: Stream, time: SystemTime) -> Chunk {
        Chunk {
            app,
            index,
            stream,
            time,
            data: Vec::new(),
            head: Vec::new(),
            ends: Vec::new(),
            cuts: Vec::new(),
        }
    }

    /// The same, each line stored behind `head` (stdout's prefix).
    pub fn with_head(mut self, head: Vec<u8>) -> Chunk {
        debug_assert!(self.is_empty());
        self.head = head;
        self
    }

    /// Room for `bytes` more bytes of lines.
    pub fn reserve(&mut self, bytes: usize) {
        // Lines of a hundred bytes or so are the common case.
        let want = bytes + bytes / 64 * self.head.len();
        if self.data.capacity() == 0 && want >= POOLED {
            let spare = SPARES.lock().ok().and_then(|mut s| s.pop());
            if let Some(spare) = spare {
                self.data = spare;
            }
        }
        self.data.reserve(want);
        self.ends.reserve(bytes / 64);
    }

    /// Adds a line (without its newline); `cut` for a piece of a longer line.
    pub fn push(&mut self, line: &[u8], cut: bool) {
        debug_assert!(!line.contains(&b'\n'));
        if cut {
            self.cuts.push(self.ends.len() as u32);
        }
        self.data.extend_from_slice(&self.head);
        self.data.extend_from_slice(line);
        self.data.push(b'\n');
        self.ends.push(self.data.len() as u32);
    }

    /// Adds the plain lines at the start of `buf` (see [`is_plain`]), up to the first line
    /// that is not plain or not complete; returns the bytes taken. Each line's end is found
    /// as it is copied: one pass over a burst.
    pub fn push_plain(&mut self, buf: &[u8]) -> usize {
        let mut start = 0;
        if self.head.is_empty() {
            let base = self.data.len();
            for nl in memchr::memchr_iter(b'\n', buf) {
                if !is_plain(&buf[start..nl]) {
                    break;
                }
                start = nl + 1;
                self.ends.push((base + start) as u32);
            }
            self.data.extend_from_slice(&buf[..start]);
            return start;
        }
        for nl in memchr::memchr_iter(b'\n', buf) {
            if !is_plain(&buf[start..nl]) {
                break;
            }
            self.data.extend_from_slice(&self.head);
            self.data.extend_from_slice(&buf[start..=nl]);
            self.ends.push(self.data.len() as u32);
            start = nl + 1;
        }
        start
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// All the lines, each behind the head and followed by its `\n`.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// What stands before each line in [`Chunk::data`].
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Whether a line is a cut piece.
    pub fn has_cuts(&self) -> bool {
        !self.cuts.is_empty()
    }

    /// Bytes of the lines, newlines and heads included.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The lines (without the head), each with whether it is a cut piece, newline included.
    pub fn lines(&self) -> Lines<'_> {
        Lines {
            chunk: self,
            n: 0,
            cuts: 0,
        }
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if self.data.capacity() < POOLED {
            return;
        }
        if let Ok(mut spares) = SPARES.lock() {
            if spares.len() < SPARE {
                let mut data = std::mem::take(&mut self.data);
                data.clear();
                spares.push(data);
            }
        }
    }
}

/// Iterator over a chunk's lines: `(line with its '\n', cut)`. Skipping is free.
pub struct Lines<'a> {
    chunk: &'a Chunk,
    /// The next line.
    n: usize,
    /// The first cut at or after line `n`, in `chunk.cuts`.
    cuts: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (&'a [u8], bool);

    fn next(&mut self) -> Option<Self::Item> {
        let c = self.chunk;
        let end = *c.ends.get(self.n)? as usize;
        let start = match self.n {
            0 => 0,
            n => c.ends[n - 1] as usize,
        } + c.head.len();
        let cut = c.cuts.get(self.cuts) == Some(&(self.n as u32));
        if cut {
            self.cuts += 1;
        }
        self.n += 1;
        Some((&c.data[start..end], cut))
    }

    fn nth(&mut self, skip: usize) -> Option<Self::Item> {
        self.n = self.n.saturating_add(skip).min(self.chunk.ends.len());
        let first = self.n as u32;
        self.cuts = self.chunk.cuts.partition_point(|&c| c < first);
        self.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.chunk.ends.len() - self.n;
        (left, Some(left))
    }
}

/// A line without its trailing newline.
pub fn strip(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_cuts_come_back_in_order() {
        let mut c = Chunk::new("web".into(), 0, Stream::Stdout, SystemTime::UNIX_EPOCH);
        assert!(c.is_empty());
        c.push(b"one", false);
        c.push(b"", false);
        c.push(b"long", true);
        c.push(b"er", false);
        assert_eq!((c.len(), c.bytes()), (4, 13));
        let got: Vec<(&[u8], bool)> = c.lines().collect();
        assert_eq!(
            got,
            [
                (&b"one\n"[..], false),
                (b"\n", false),
                (b"long\n", true),
                (b"er\n", false)
            ]
        );
        assert_eq!(strip(got[0].0), b"one");
        let skipped: Vec<(&[u8], bool)> = c.lines().skip(2).collect();
        assert_eq!(skipped, got[2..]);
        assert_eq!(c.lines().skip(3).collect::<Vec<_>>(), got[3..]);
        assert_eq!(c.lines().nth(9), None);
    }

    #[test]
    fn a_run_of_lines_reads_as_lines_pushed_one_by_one() {
        let mut one = Chunk::new("web".into(), 0, Stream::Stdout, SystemTime::UNIX_EPOCH);
        let mut run = one.clone();
        for c in [&mut one, &mut run] {
            c.push(b"long", true);
        }
        one.push(b"a", false);
        one.push(b"", false);
        one.push(b"bc", false);
        assert_eq!(run.push_plain(b"a\n\nbc\nd\r\ne\n"), 6);
        assert_eq!(
            one.lines().collect::<Vec<_>>(),
            run.lines().collect::<Vec<_>>()
        );
        assert_eq!(
            (run.len(), run.bytes(), run.data()),
            (4, 11, &b"long\na\n\nbc\n"[..])
        );
    }

    #[test]
    fn lines_behind_a_head_read_without_it() {
        let mut c = Chunk::new("web".into(), 0, Stream::Stdout, SystemTime::UNIX_EPOCH)
            .with_head(b"web.0 | ".to_vec());
        c.push(b"one", false);
        assert_eq!(c.push_plain(b"a\n\nbc\ntail"), 6);
        c.push(b"cut", true);
        let got: Vec<(&[u8], bool)> = c.lines().collect();
        let want: [(&[u8], bool); 5] = [
            (b"one\n", false),
            (b"a\n", false),
            (b"\n", false),
            (b"bc\n", false),
            (b"cut\n", true),
        ];
        assert_eq!(got, want);
        assert_eq!(c.lines().nth(3), Some((&b"bc\n"[..], false)));
        assert_eq!(
            c.data(),
            b"web.0 | one\nweb.0 | a\nweb.0 | \nweb.0 | bc\nweb.0 | cut\n"
        );
        assert_eq!(c.head(), b"web.0 | ");
    }
}
