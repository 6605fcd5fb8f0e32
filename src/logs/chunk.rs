//! The unit in which lines travel from a pipe to stdout, the log files and the ring: the
//! whole lines one read of one pipe gave, at one time (issue 10 item 7).
//!
//! Handling lines a read at a time, not a line at a time, is what makes logging cheap: one
//! allocation, one clock read and one queue operation per read; the writers format a
//! chunk's lines into one buffer with a prefix computed once. A chunk is shared
//! (`Arc<Chunk>`) by the stdout and file writers, so its bytes are never copied between
//! them.

use std::sync::Arc;
use std::time::SystemTime;

use super::Stream;

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
    /// Positions (line numbers) of the pieces of cut lines, ascending.
    cuts: Vec<u32>,
    lines: u32,
}

impl Chunk {
    pub fn new(app: Arc<str>, index: u32, stream: Stream, time: SystemTime) -> Chunk {
        Chunk {
            app,
            index,
            stream,
            time,
            data: Vec::new(),
            cuts: Vec::new(),
            lines: 0,
        }
    }

    /// Room for `bytes` more bytes of lines.
    pub fn reserve(&mut self, bytes: usize) {
        self.data.reserve(bytes);
    }

    /// Adds a line (without its newline); `cut` for a piece of a longer line.
    pub fn push(&mut self, line: &[u8], cut: bool) {
        debug_assert!(!line.contains(&b'\n'));
        if cut {
            self.cuts.push(self.lines);
        }
        self.data.extend_from_slice(line);
        self.data.push(b'\n');
        self.lines += 1;
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.lines as usize
    }

    pub fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// Bytes of the lines, newlines included.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// The lines, each with whether it is a cut piece, newline included.
    pub fn lines(&self) -> Lines<'_> {
        Lines {
            rest: &self.data,
            cuts: &self.cuts,
            n: 0,
        }
    }
}

/// Iterator over a chunk's lines: `(line with its '\n', cut)`.
pub struct Lines<'a> {
    rest: &'a [u8],
    cuts: &'a [u32],
    n: u32,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (&'a [u8], bool);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let end = memchr::memchr(b'\n', self.rest).map_or(self.rest.len(), |i| i + 1);
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest;
        let cut = self.cuts.first() == Some(&self.n);
        if cut {
            self.cuts = &self.cuts[1..];
        }
        self.n += 1;
        Some((line, cut))
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
    }
}
