//! The last lines of every instance, kept in memory for `supervise logs`. Bounded per
//! instance by lines and bytes, so memory stays flat however chatty an app is.
//!
//! A line costs no allocation of its own: each instance's lines are kept as bytes, one after
//! the other, in one ring buffer, with a small record per line. The control side turns what
//! [`LogRing::last`] gives into its protocol's type.

use std::collections::{HashMap, VecDeque};

use super::chunk::{strip, Chunk};
use super::Stream;

pub const MAX_LINES: usize = 500;
pub const MAX_BYTES: usize = 128 * 1024;

/// One line as the ring gives it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingLine {
    /// Unix epoch, milliseconds.
    pub time_ms: u64,
    pub app: String,
    pub index: u32,
    pub stream: Stream,
    /// The line's bytes, without its newline.
    pub line: Vec<u8>,
    /// A piece of a longer line (see [`super::lines`]).
    pub cut: bool,
}

struct Record {
    seq: u64,
    time_ms: u64,
    stream: Stream,
    cut: bool,
    len: usize,
}

#[derive(Default)]
struct Buffer {
    bytes: VecDeque<u8>,
    lines: VecDeque<Record>,
}

impl Buffer {
    fn push(&mut self, seq: u64, time_ms: u64, stream: Stream, line: &[u8], cut: bool) {
        self.append(seq, time_ms, stream, line, cut);
        self.trim();
    }

    /// Adds a line without enforcing the bounds: [`Buffer::trim`] follows.
    fn append(&mut self, seq: u64, time_ms: u64, stream: Stream, line: &[u8], cut: bool) {
        self.bytes.extend(line);
        self.lines.push_back(Record {
            seq,
            time_ms,
            stream,
            cut,
            len: line.len(),
        });
    }

    /// Drops the oldest lines past the bounds, their bytes at once.
    fn trim(&mut self) {
        let mut lines = self.lines.len();
        let mut bytes = self.bytes.len();
        let mut drop = 0;
        for old in &self.lines {
            if lines <= MAX_LINES && (bytes <= MAX_BYTES || lines == 1) {
                break;
            }
            lines -= 1;
            bytes -= old.len;
            drop += old.len;
        }
        self.lines.drain(..self.lines.len() - lines);
        self.bytes.drain(..drop);
    }
}

#[derive(Default)]
pub struct LogRing {
    buffers: HashMap<String, HashMap<u32, Buffer>>,
    seq: u64,
}

impl LogRing {
    /// Keeps one line of `app`.`index`, dropping its oldest past the bounds.
    pub fn push(
        &mut self,
        app: &str,
        index: u32,
        stream: Stream,
        time_ms: u64,
        line: &[u8],
        cut: bool,
    ) {
        self.seq += 1;
        let seq = self.seq;
        self.buffer(app, index)
            .push(seq, time_ms, stream, line, cut);
    }

    /// Keeps the lines of a chunk (only those the bounds would keep).
    pub fn push_chunk(&mut self, chunk: &Chunk, time_ms: u64) {
        let mut seq = self.seq;
        let buffer = self.buffer(&chunk.app, chunk.index);
        for (line, cut) in chunk.last_lines(MAX_LINES) {
            seq += 1;
            buffer.append(seq, time_ms, chunk.stream, strip(line), cut);
        }
        buffer.trim();
        self.seq = seq;
    }

    fn buffer(&mut self, app: &str, index: u32) -> &mut Buffer {
        if !self.buffers.contains_key(app) {
            self.buffers.insert(app.to_owned(), HashMap::new());
        }
        let m = self.buffers.get_mut(app).expect("just inserted");
        m.entry(index).or_default()
    }

    /// The last `n` lines of the instances `matches` selects, oldest first, in the order
    /// they arrived across instances.
    pub fn last(&self, matches: impl Fn(&str, u32) -> bool, n: usize) -> Vec<RingLine> {
        let mut found: Vec<(u64, RingLine)> = Vec::new();
        for (app, m) in &self.buffers {
            for (index, b) in m.iter().filter(|(i, _)| matches(app, **i)) {
                let skip = b.lines.len().saturating_sub(n);
                let mut at: usize = b.lines.iter().take(skip).map(|r| r.len).sum();
                for r in b.lines.iter().skip(skip) {
                    let line = b.bytes.range(at..at + r.len).copied().collect();
                    at += r.len;
                    let l = RingLine {
                        time_ms: r.time_ms,
                        app: app.clone(),
                        index: *index,
                        stream: r.stream,
                        line,
                        cut: r.cut,
                    };
                    found.push((r.seq, l));
                }
            }
        }
        found.sort_by_key(|(seq, _)| *seq);
        let skip = found.len().saturating_sub(n);
        found.into_iter().skip(skip).map(|(_, l)| l).collect()
    }

    /// Forget the buffers of apps that are gone.
    pub fn retain_apps(&mut self, keep: impl Fn(&str) -> bool) {
        self.buffers.retain(|app, _| keep(app));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(ring: &mut LogRing, app: &str, index: u32, text: &str) {
        ring.push(app, index, Stream::Stdout, 0, text.as_bytes(), false);
    }

    fn texts(v: Vec<RingLine>) -> Vec<String> {
        v.into_iter()
            .map(|l| String::from_utf8(l.line).unwrap())
            .collect()
    }

    #[test]
    fn last_lines_across_instances_in_arrival_order() {
        let mut ring = LogRing::default();
        push(&mut ring, "web", 0, "a");
        push(&mut ring, "web", 1, "b");
        push(&mut ring, "api", 0, "c");
        push(&mut ring, "web", 0, "d");
        let all = |_: &str, _: u32| true;
        assert_eq!(texts(ring.last(all, 10)), ["a", "b", "c", "d"]);
        assert_eq!(texts(ring.last(all, 2)), ["c", "d"]);
        assert_eq!(texts(ring.last(|a, _| a == "web", 10)), ["a", "b", "d"]);
        assert_eq!(texts(ring.last(|a, i| a == "web" && i == 0, 1)), ["d"]);
        ring.retain_apps(|a| a != "web");
        assert_eq!(texts(ring.last(all, 10)), ["c"]);
    }

    #[test]
    fn bounded_by_lines_and_bytes() {
        let mut ring = LogRing::default();
        for i in 0..(MAX_LINES * 3) {
            push(&mut ring, "web", 0, &i.to_string());
        }
        let all = ring.last(|_, _| true, usize::MAX);
        assert_eq!(all.len(), MAX_LINES);
        assert_eq!(
            all.last().unwrap().line,
            (MAX_LINES * 3 - 1).to_string().as_bytes()
        );
        assert_eq!(all[0].line, (MAX_LINES * 2).to_string().as_bytes());
        let big = "x".repeat(MAX_BYTES / 4);
        for _ in 0..10 {
            push(&mut ring, "web", 1, &big);
        }
        let one = ring.last(|a, i| a == "web" && i == 1, 100);
        assert_eq!(one.len(), 4);
        assert!(one.iter().all(|l| l.line.len() == big.len()));
    }

    #[test]
    fn a_chunk_is_kept_as_its_lines_one_by_one() {
        let (mut one, mut many) = (LogRing::default(), LogRing::default());
        let mut chunk = Chunk::new("web".into(), 0, Stream::Stdout, std::time::UNIX_EPOCH);
        for i in 0..1200 {
            let line = "y".repeat(i % 700);
            push(&mut one, "web", 0, &line);
            chunk.push(line.as_bytes(), i % 3 == 0);
        }
        push(&mut many, "web", 0, "before");
        many.push_chunk(&chunk, 0);
        let all = |_: &str, _: u32| true;
        let want = one.last(all, usize::MAX);
        let got = many.last(all, usize::MAX);
        let lines = |v: &[RingLine]| v.iter().map(|l| l.line.clone()).collect::<Vec<_>>();
        assert!(!got.is_empty());
        assert_eq!(lines(&got), lines(&want));
        let first = 1200 - got.len();
        for (k, l) in got.iter().enumerate() {
            assert_eq!(l.cut, (first + k) % 3 == 0);
        }
    }
}
