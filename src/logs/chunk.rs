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
//! pipe), so the loop only reads, finds the line ends and copies the lines out, and the
//! formatting goes to the writer. A big read of plain lines is neither copied nor scanned
//! line by line: the read buffer becomes the chunk ([`Chunk::of_plain`]), and the readers
//! find its line ends as they go, each on its own thread. On 2 CPUs the loop shares one
//! with the app (they hand the pipe back and forth) while the writer has the other:
//! finding 2 million line ends moved 17 ms from the loop's CPU to the writer's.
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
    /// Empty when `unscanned`.
    ends: Vec<u32>,
    /// `data` is whole plain lines whose ends were not recorded ([`Chunk::of_plain`]).
    unscanned: bool,
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
            unscanned: false,
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

    /// The whole plain lines in `data[..end]` (see [`super::lines::is_plain`]; `data[end -
    /// 1]` is a `\n`), in `data` itself: a read buffer becomes the chunk, with no copy and
    /// no search for its line ends (see `runtime::pipes`).
    pub fn of_plain(mut self, mut data: Vec<u8>, end: usize) -> Chunk {
        debug_assert!(self.is_empty() && end > 0 && data[end - 1] == b'\n');
        data.truncate(end);
        self.data = data;
        self.unscanned = true;
        self
    }

    /// Drops the kept buffers (a burst is over: their pages go back to the system).
    pub fn release_spares() {
        if let Ok(mut spares) = SPARES.lock() {
            spares.clear();
            spares.shrink_to_fit();
        }
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
        debug_assert!(!line.contains(&b'\n') && !self.unscanned);
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
        debug_assert!(!self.unscanned);
        let base = self.data.len();
        let mut taken = 0;
        for end in plain_ends(buf, 0) {
            self.ends.push((base + end) as u32);
            taken = end;
        }
        self.data.extend_from_slice(&buf[..taken]);
        taken
    }

    /// Number of lines (counted, in a chunk of plain lines).
    pub fn len(&self) -> usize {
        if self.unscanned {
            return memchr::memchr_iter(b'\n', &self.data).count();
        }
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// What the chunk counts for in a queue bounded in bytes: its bytes, plus `per_line`
    /// for each line it records (so that empty lines are bounded too). A chunk of plain
    /// lines records none, but holds a whole read buffer: it counts for all of it. (One
    /// such chunk then fills a queue: a second one queued kept more buffers in flight than
    /// are pooled, and each read faulted in a fresh one.)
    pub fn weight(&self, per_line: usize) -> usize {
        if self.unscanned {
            return self.data.capacity();
        }
        self.data.len() + self.ends.len() * per_line
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
            at: 0,
            cuts: 0,
        }
    }

    /// The lines from the one starting at byte `at` (a [`Lines::offset`]) on.
    pub fn lines_from(&self, at: usize) -> Lines<'_> {
        if !self.unscanned {
            let n = self.ends.partition_point(|&end| (end as usize) <= at);
            return self.lines().skip_to(n);
        }
        let mut lines = self.lines();
        lines.at = at.min(self.data.len());
        lines
    }

    /// The last `n` lines (all when there are fewer), found from the end.
    pub fn last_lines(&self, n: usize) -> Lines<'_> {
        if !self.unscanned {
            return self.lines().skip_to(self.ends.len().saturating_sub(n));
        }
        if n == 0 {
            return self.lines_from(self.data.len());
        }
        // data ends with a `\n`: the n-th one before it ends the line before the last n.
        let body = &self.data[..self.data.len() - 1];
        let at = memchr::memrchr_iter(b'\n', body)
            .nth(n - 1)
            .map_or(0, |i| i + 1);
        self.lines_from(at)
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

/// Iterator over a chunk's lines: `(line with its '\n', cut)`. Skipping is free where
/// the line ends are recorded.
pub struct Lines<'a> {
    chunk: &'a Chunk,
    /// The next line (its number; 0 in a chunk of plain lines) and where it starts.
    n: usize,
    at: usize,
    /// The first cut at or after line `n`, in `chunk.cuts`.
    cuts: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (&'a [u8], bool);

    fn next(&mut self) -> Option<Self::Item> {
        let c = self.chunk;
        let start = self.at;
        if c.unscanned {
            let rest = c.data.get(start..).filter(|rest| !rest.is_empty())?;
            // Every line of the chunk ends with a `\n`.
            let len = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
            self.at += len;
            return Some((&rest[..len], false));
        }
        let end = *c.ends.get(self.n)? as usize;
        let cut = c.cuts.get(self.cuts) == Some(&(self.n as u32));
        if cut {
            self.cuts += 1;
        }
        self.n += 1;
        self.at = end;
        Some((&c.data[start..end], cut))
    }

    fn nth(&mut self, skip: usize) -> Option<Self::Item> {
        if self.chunk.unscanned {
            for _ in 0..skip {
                self.next()?;
            }
            return self.next();
        }
        *self = self.chunk.lines().skip_to(self.n.saturating_add(skip));
        self.next()
    }
}

impl<'a> Lines<'a> {
    /// Where the next line starts in the chunk's bytes (its length when there is none).
    pub fn offset(&self) -> usize {
        self.at
    }

    /// Moves to line `n` of a chunk with recorded line ends.
    fn skip_to(mut self, n: usize) -> Lines<'a> {
        let c = self.chunk;
        self.n = n.min(c.ends.len());
        self.at = match self.n {
            0 => 0,
            n => c.ends[n - 1] as usize,
        };
        let first = self.n as u32;
        self.cuts = c.cuts.partition_point(|&cut| cut < first);
        self
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
    fn plain_lines_taken_as_read_give_what_recorded_ones_give() {
        let data = b"one\n\nthree\nfour four\n";
        let mut recorded = Chunk::new("web".into(), 0, Stream::Stdout, SystemTime::UNIX_EPOCH);
        assert_eq!(recorded.push_plain(data), data.len());
        let mut buf = data.to_vec();
        buf.extend_from_slice(b"unfinished");
        let read = Chunk::new("web".into(), 0, Stream::Stdout, SystemTime::UNIX_EPOCH)
            .of_plain(buf, data.len());
        assert_eq!(read.data(), recorded.data());
        assert_eq!(read.len(), 4);
        assert!(read.weight(64) >= data.len() + b"unfinished".len());
        assert_eq!(recorded.weight(64), data.len() + 4 * 64);
        for c in [&recorded, &read] {
            let all: Vec<_> = c.lines().collect();
            assert_eq!(all.len(), 4);
            assert_eq!(all[3], (&b"four four\n"[..], false));
            let mut lines = c.lines();
            let mut at = vec![lines.offset()];
            while lines.next().is_some() {
                at.push(lines.offset());
            }
            assert_eq!(at, [0, 4, 5, 11, 21]);
            for (i, &at) in at.iter().enumerate() {
                assert_eq!(c.lines_from(at).collect::<Vec<_>>(), all[i..], "from {at}");
                assert_eq!(c.lines().skip(i).collect::<Vec<_>>(), all[i..]);
            }
            for n in 0..6 {
                let last: Vec<_> = c.last_lines(n).collect();
                assert_eq!(last, all[4usize.saturating_sub(n)..], "last {n}");
            }
            assert_eq!(c.lines().nth(2), Some(all[2]));
            assert_eq!(c.lines().nth(4), None);
        }
    }

    #[test]
    fn lines_from_an_offset_keeps_the_cuts_in_step() {
        let mut c = Chunk::new("web".into(), 0, Stream::Stdout, SystemTime::UNIX_EPOCH);
        c.push(b"a", false);
        c.push(b"long", true);
        c.push(b"er", false);
        c.push(b"b", true);
        c.push(b"c", false);
        let all: Vec<_> = c.lines().collect();
        let mut lines = c.lines();
        lines.next();
        lines.next();
        assert_eq!(c.lines_from(lines.offset()).collect::<Vec<_>>(), all[2..]);
        assert_eq!(c.last_lines(2).collect::<Vec<_>>(), all[3..]);
        assert_eq!(all[3], (&b"b\n"[..], true));
    }
}
