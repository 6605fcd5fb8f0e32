//! The unit in which lines travel from a pipe to stdout, the log files and the ring: the
//! whole lines one read of one pipe gave, at one time (issue 10 item 7).
//!
//! Handling lines a read at a time, not a line at a time, is what makes logging cheap: one
//! allocation, one clock read and one queue operation per read. A chunk is shared
//! (`Arc<Chunk>`) by the stdout and file writers, so its bytes are never copied between
//! them.
//!
//! A chunk holds the lines as the app wrote them; the prefixes of stdout are added by its
//! writer thread. In a burst the loop is the stage the app waits for (it must empty the
//! pipe), so the loop only reads, finds the line ends and copies the lines out (a big read
//! of plain lines is not even copied: the read buffer becomes the chunk,
//! [`Chunk::of_lines`]), and the formatting goes to the writer, which has time to spare.
//!
//! The big buffers of a burst are reused: a dropped chunk of at least [`POOLED`] bytes
//! leaves its buffer for the next one (at most [`SPARE`] kept), so a burst does not fault
//! in fresh pages for every read.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::lines::plain_ends;
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
    /// Each line followed by `\n` (lines hold no `\n` of their own).
    data: Vec<u8>,
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
            ends: Vec::new(),
            cuts: Vec::new(),
        }
    }

    /// Room for `bytes` more bytes of lines.
    pub fn reserve(&mut self, bytes: usize) {
        if self.data.capacity() == 0 && bytes >= POOLED {
            let spare = SPARES.lock().ok().and_then(|mut s| s.pop());
            if let Some(mut spare) = spare {
                spare.clear();
                self.data = spare;
            }
        }
        self.data.reserve(bytes);
        self.ends.reserve(bytes / 64);
    }

    /// The whole lines of `data` that end where `ends` say (after each `\n`), in `data`
    /// itself: a read buffer becomes the chunk, with no copy (see `runtime::pipes`).
    pub fn of_lines(mut self, mut data: Vec<u8>, ends: Vec<u32>) -> Chunk {
        debug_assert!(self.is_empty());
        data.truncate(ends.last().map_or(0, |&end| end as usize));
        self.data = data;
        self.ends = ends;
        self
    }

    /// A buffer of at least `len` initialized bytes to read into: a kept one when there
    /// is (zeroed only past its old length), else a new one.
    pub fn read_buffer(len: usize) -> Vec<u8> {
        match SPARES.lock().ok().and_then(|mut s| s.pop()) {
            Some(mut buf) => {
                if buf.len() < len {
                    buf.resize(len, 0);
                }
                buf
            }
            None => vec![0; len],
        }
    }

    /// Adds a line (without its newline); `cut` for a piece of a longer line.
    pub fn push(&mut self, line: &[u8], cut: bool) {
        debug_assert!(!line.contains(&b'\n'));
        if cut {
            self.cuts.push(self.ends.len() as u32);
        }
        self.data.extend_from_slice(line);
        self.data.push(b'\n');
        self.ends.push(self.data.len() as u32);
    }

    /// Adds the plain lines at the start of `buf` (see [`super::lines::is_plain`]), up to
    /// the first line that is not plain or not complete; returns the bytes taken. Their
    /// ends are found first, then they are copied at once.
    pub fn push_plain(&mut self, buf: &[u8]) -> usize {
        let base = self.data.len();
        let mut taken = 0;
        for end in plain_ends(buf, 0) {
            self.ends.push((base + end) as u32);
            taken = end;
        }
        self.data.extend_from_slice(&buf[..taken]);
        taken
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// All the lines, each followed by its `\n`.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Whether a line is a cut piece.
    pub fn has_cuts(&self) -> bool {
        !self.cuts.is_empty()
    }

    /// Bytes of the lines, newlines included.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The lines, each with whether it is a cut piece, newline included.
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
                // Its bytes stay: as a read buffer it needs no zeroing (`read_buffer`).
                spares.push(std::mem::take(&mut self.data));
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
        };
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
}
