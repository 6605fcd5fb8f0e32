//! Splitting the bytes read from an instance's pipe into lines (pure, no I/O).
//!
//! Rules (SPEC §5):
//! - a line ends at `\n`; a `\r` right before the `\n` is stripped (CRLF);
//! - a line longer than [`MAX_LINE`] bytes is emitted in pieces of at most `MAX_LINE` bytes,
//!   every piece but the last flagged `cut = true`. When the cut would fall inside a valid
//!   UTF-8 sequence, the piece is shortened to end before that character;
//! - when the pipe closes, [`LineSplitter::finish`] emits the partial last line (end of
//!   file counts as a line end, so a trailing `\r` is stripped there too).
//!
//! Runs of plain lines (see [`is_plain`]) are handed over whole ([`LineOut::plain`]): a
//! chunk finds their ends and copies them all at once.
//!
//! The result does not depend on how the input is chunked: feeding a byte at a time gives
//! the same lines as feeding everything at once.

use super::chunk::Chunk;

/// The longest line emitted in one piece, in bytes (without the newline).
pub const MAX_LINE: usize = 64 * 1024;

/// Where a splitter's lines go.
pub trait LineOut {
    /// One line, without its newline; `cut` for a piece of a longer line.
    fn line(&mut self, line: &[u8], cut: bool);

    /// Takes the plain lines at the start of `buf` (each ending in `\n`, see [`is_plain`]),
    /// up to the first line that is not plain or not complete; returns the bytes taken.
    fn plain(&mut self, buf: &[u8]) -> usize {
        let mut start = 0;
        for end in plain_ends(buf, 0) {
            self.line(&buf[start..end - 1], false);
            start = end;
        }
        start
    }
}

/// Whether a complete line (without its `\n`) goes out as it is: not too long, no `\r` to
/// strip.
pub fn is_plain(line: &[u8]) -> bool {
    line.len() <= MAX_LINE && line.last() != Some(&b'\r')
}

/// Where each of the plain lines at the start of `buf` ends (after its `\n`), up to the
/// first line that is not plain; `buf[..scan]` is known to hold no `\n`.
pub fn plain_ends(buf: &[u8], scan: usize) -> impl Iterator<Item = usize> + '_ {
    let mut start = 0;
    memchr::memchr_iter(b'\n', &buf[scan..]).map_while(move |i| {
        let nl = scan + i;
        let line = &buf[start..nl];
        start = nl + 1;
        is_plain(line).then_some(start)
    })
}

impl<F: FnMut(&[u8], bool)> LineOut for F {
    fn line(&mut self, line: &[u8], cut: bool) {
        self(line, cut)
    }
}

impl LineOut for Chunk {
    fn line(&mut self, line: &[u8], cut: bool) {
        self.push(line, cut);
    }

    fn plain(&mut self, buf: &[u8]) -> usize {
        self.push_plain(buf)
    }
}

/// Accumulates a pipe's bytes and emits complete lines.
#[derive(Debug, Default)]
pub struct LineSplitter {
    /// Bytes of the current, incomplete line.
    buf: Vec<u8>,
    /// `buf[..scanned]` is known to contain no `\n`.
    scanned: usize,
}

impl LineSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes waiting for the end of their line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feed bytes read from a pipe; every complete line goes to `out`. A line longer than
    /// `MAX_LINE` bytes is emitted in pieces of at most `MAX_LINE` bytes, each piece but the
    /// last with `cut=true`.
    pub fn push(&mut self, data: &[u8], out: &mut dyn LineOut) {
        if self.buf.is_empty() {
            // The usual case: lines straight from `data`, only its tail is kept.
            let (start, scan) = split(data, 0, out);
            self.buf.extend_from_slice(&data[start..]);
            self.scanned = scan - start;
            return;
        }
        self.buf.extend_from_slice(data);
        let (start, scan) = split(&self.buf, self.scanned, out);
        self.buf.drain(..start);
        self.scanned = scan - start;
    }

    /// The bytes of the unfinished line, which a read in place puts before the new ones.
    pub fn pending_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Reading in place: `data` is [`LineSplitter::pending_bytes`] followed by new bytes.
    /// When its complete lines are all plain (see [`is_plain`]) and what follows the last
    /// needs no cut yet: where the last one ends (after its `\n`), and the rest becomes the
    /// unfinished line. Otherwise nothing changes: `None`, push the new bytes.
    ///
    /// The line ends themselves are not looked for (that is the reader's work, see
    /// [`super::chunk::Chunk::of_plain`]): a `\r\n` is found by one fast search, and a
    /// line longer than [`MAX_LINE`] by looking back from [`MAX_LINE`] bytes past a
    /// line's start, a few times per read.
    pub fn take_plain(&mut self, data: &[u8]) -> Option<usize> {
        let held = self.buf.len();
        debug_assert!(data.starts_with(&self.buf));
        let start = memchr::memrchr(b'\n', &data[held..])? + held + 1;
        let crlf = memchr::memchr_iter(b'\r', &data[..start]).any(|i| data[i + 1] == b'\n');
        if crlf || data.len() - start > MAX_LINE || !lines_fit(&data[..start]) {
            return None;
        }
        self.buf.clear();
        self.buf.extend_from_slice(&data[start..]);
        self.scanned = self.buf.len();
        Some(start)
    }

    /// The process exited / the pipe closed: emit the partial last line, if any (`cut=false`),
    /// after any `cut=true` pieces it still needs.
    pub fn finish(&mut self, out: &mut dyn LineOut) {
        if self.buf.is_empty() {
            return;
        }
        let mut end = self.buf.len();
        if self.buf[end - 1] == b'\r' {
            end -= 1;
        }
        let start = cut_pieces(&self.buf, 0, end, true, out);
        out.line(&self.buf[start..end], false);
        self.buf.clear();
        self.scanned = 0;
    }
}

/// Whether no line of `buf` (whole lines) is longer than [`MAX_LINE`]: from each
/// line's start, the last `\n` within reach is the next start.
fn lines_fit(buf: &[u8]) -> bool {
    let mut start = 0;
    while start < buf.len() {
        let reach = buf.len().min(start + MAX_LINE + 1);
        match memchr::memrchr(b'\n', &buf[start..reach]) {
            Some(i) => start += i + 1,
            None => return false,
        }
    }
    true
}

/// Emits the complete lines of `buf` (known to hold no `\n` before `scan`) and the pieces
/// of a too long last line; returns where the rest starts and how far it was scanned.
/// Consecutive plain lines go out as one run.
fn split(buf: &[u8], scan: usize, out: &mut dyn LineOut) -> (usize, usize) {
    let mut start = 0;
    let mut from = scan;
    while let Some(nl) = memchr::memchr(b'\n', &buf[from..]).map(|i| from + i) {
        if is_plain(&buf[start..nl]) {
            // This line and the plain ones after it.
            start += out.plain(&buf[start..]);
            debug_assert!(start > nl);
        } else {
            let end = if nl > start && buf[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            let rest = cut_pieces(buf, start, end, true, out);
            out.line(&buf[rest..end], false);
            start = nl + 1;
        }
        from = start;
    }
    // No line end yet: cut off pieces while the line is too long. A trailing '\r' may be
    // the first half of a CRLF, so it does not count yet.
    let mut end = buf.len();
    if end > start && buf[end - 1] == b'\r' {
        end -= 1;
    }
    let start = cut_pieces(buf, start, end, false, out);
    (start, buf.len())
}

/// Emits `cut=true` pieces of `buf[start..end]` while what is left is longer than
/// `MAX_LINE`; returns where the rest starts. `complete` says whether `end` is the true end
/// of the line (otherwise a character straddling a cut may still be arriving: then wait).
fn cut_pieces(
    buf: &[u8],
    mut start: usize,
    end: usize,
    complete: bool,
    out: &mut dyn LineOut,
) -> usize {
    while end - start > MAX_LINE {
        match cut_at(&buf[start..end], complete) {
            Some(n) => {
                out.line(&buf[start..start + n], true);
                start += n;
            }
            None => break,
        }
    }
    start
}

/// Where to cut `line` (longer than `MAX_LINE`): at `MAX_LINE`, or just before a valid
/// UTF-8 character that straddles that position. `None`: that character is not complete
/// yet and more bytes may follow.
fn cut_at(line: &[u8], complete: bool) -> Option<usize> {
    debug_assert!(line.len() > MAX_LINE);
    let is_cont = |b: u8| b & 0xC0 == 0x80;
    if !is_cont(line[MAX_LINE]) {
        return Some(MAX_LINE);
    }
    let mut lead = MAX_LINE - 1;
    while is_cont(line[lead]) && lead > MAX_LINE - 3 {
        lead -= 1;
    }
    let width = match line[lead] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return Some(MAX_LINE),
    };
    if lead + width <= MAX_LINE {
        // The sequence ends before the cut: the byte at the cut is a stray continuation.
        return Some(MAX_LINE);
    }
    if lead + width > line.len() {
        return if complete { Some(MAX_LINE) } else { None };
    }
    if std::str::from_utf8(&line[lead..lead + width]).is_ok() {
        Some(lead)
    } else {
        Some(MAX_LINE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Lines = Vec<(Vec<u8>, bool)>;

    fn feed(chunks: &[&[u8]], finish: bool) -> Lines {
        let mut s = LineSplitter::new();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut |l: &[u8], cut| out.push((l.to_vec(), cut)));
        }
        if finish {
            s.finish(&mut |l: &[u8], cut| out.push((l.to_vec(), cut)));
        }
        out
    }

    fn bytewise(data: &[u8], finish: bool) -> Lines {
        let chunks: Vec<&[u8]> = data.chunks(1).collect();
        feed(&chunks, finish)
    }

    fn whole(data: &[u8], finish: bool) -> Lines {
        feed(&[data], finish)
    }

    fn l(s: &str, cut: bool) -> (Vec<u8>, bool) {
        (s.as_bytes().to_vec(), cut)
    }

    /// Re-joining the pieces gives back the input's lines.
    fn rejoin(lines: &Lines) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut cur = Vec::new();
        for (piece, cut) in lines {
            cur.extend_from_slice(piece);
            if !cut {
                out.push(std::mem::take(&mut cur));
            }
        }
        assert!(cur.is_empty(), "last piece flagged cut");
        out
    }

    #[test]
    fn one_line() {
        assert_eq!(whole(b"hello\n", false), vec![l("hello", false)]);
    }

    #[test]
    fn across_chunk_boundaries() {
        let out = feed(&[b"hel", b"lo\nwor", b"", b"ld", b"\n"], false);
        assert_eq!(out, vec![l("hello", false), l("world", false)]);
    }

    #[test]
    fn many_lines_in_one_chunk() {
        let mut data = Vec::new();
        for i in 0..1000 {
            data.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        let out = whole(&data, false);
        assert_eq!(out.len(), 1000);
        for (i, (line, cut)) in out.iter().enumerate() {
            assert_eq!(line, format!("line {i}").as_bytes());
            assert!(!cut);
        }
    }

    #[test]
    fn empty_lines() {
        let out = whole(b"\n\na\n\n", true);
        assert_eq!(
            out,
            vec![l("", false), l("", false), l("a", false), l("", false)]
        );
        assert_eq!(whole(b"", true), vec![]);
    }

    #[test]
    fn crlf() {
        let out = feed(&[b"a\r\nb\r", b"\nc\rd\n\r\n"], false);
        assert_eq!(
            out,
            vec![l("a", false), l("b", false), l("c\rd", false), l("", false)]
        );
        // Only one '\r' is stripped.
        assert_eq!(whole(b"x\r\r\n", false), vec![l("x\r", false)]);
    }

    #[test]
    fn partial_line_waits_then_flushes() {
        let mut s = LineSplitter::new();
        let mut out = Vec::new();
        s.push(b"done\npartial", &mut |l: &[u8], c| {
            out.push((l.to_vec(), c))
        });
        assert_eq!(out, vec![l("done", false)]);
        assert_eq!(s.pending(), 7);
        s.finish(&mut |l: &[u8], c| out.push((l.to_vec(), c)));
        assert_eq!(out, vec![l("done", false), l("partial", false)]);
        assert_eq!(s.pending(), 0);
        // finish again: nothing more.
        s.finish(&mut |l: &[u8], c| out.push((l.to_vec(), c)));
        assert_eq!(out.len(), 2);
        // Reusable after finish.
        s.push(b"again\n", &mut |l: &[u8], c| out.push((l.to_vec(), c)));
        assert_eq!(out[2], l("again", false));
    }

    #[test]
    fn finish_strips_trailing_cr() {
        assert_eq!(whole(b"progress\r", true), vec![l("progress", false)]);
        assert_eq!(whole(b"progress\r", false), vec![]);
    }

    #[test]
    fn exactly_max_line() {
        let mut data = vec![b'a'; MAX_LINE];
        data.push(b'\n');
        let expect = vec![(vec![b'a'; MAX_LINE], false)];
        assert_eq!(whole(&data, false), expect);
        assert_eq!(bytewise(&data, false), expect);
        // With CRLF too.
        let mut crlf = vec![b'a'; MAX_LINE];
        crlf.extend_from_slice(b"\r\n");
        assert_eq!(whole(&crlf, false), expect);
        assert_eq!(bytewise(&crlf, false), expect);
        // Unterminated, flushed at exit.
        assert_eq!(whole(&data[..MAX_LINE], true), expect);
        assert_eq!(bytewise(&data[..MAX_LINE], false), vec![]);
    }

    #[test]
    fn max_line_plus_one() {
        let mut data = vec![b'a'; MAX_LINE + 1];
        data.push(b'\n');
        let expect = vec![(vec![b'a'; MAX_LINE], true), l("a", false)];
        assert_eq!(whole(&data, false), expect);
        assert_eq!(bytewise(&data, false), expect);
        // The first piece goes out as soon as the line is known to be too long.
        assert_eq!(
            whole(&data[..MAX_LINE + 1], false),
            vec![(vec![b'a'; MAX_LINE], true)]
        );
        assert_eq!(whole(&data[..MAX_LINE + 1], true), expect);
    }

    #[test]
    fn long_line_200k() {
        let line: Vec<u8> = (0..200 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
        let mut data = line.clone();
        data.extend_from_slice(b"\nnext\n");
        for out in [
            whole(&data, false),
            bytewise(&data, false),
            feed(&data.chunks(4096).collect::<Vec<_>>(), false),
        ] {
            assert_eq!(out.len(), 5);
            for (piece, cut) in &out[..3] {
                assert_eq!(piece.len(), MAX_LINE);
                assert!(cut);
            }
            assert_eq!(out[3].0.len(), 200 * 1024 - 3 * MAX_LINE);
            assert!(!out[3].1);
            assert_eq!(out[4], l("next", false));
            assert_eq!(rejoin(&out), vec![line.clone(), b"next".to_vec()]);
        }
    }

    #[test]
    fn long_unterminated_line_flushed_at_exit() {
        let data = vec![b'z'; 2 * MAX_LINE + 10];
        let out = whole(&data, true);
        assert_eq!(out.len(), 3);
        assert_eq!((out[0].1, out[1].1, out[2].1), (true, true, false));
        assert_eq!(out[2].0.len(), 10);
        assert_eq!(rejoin(&out), vec![data]);
    }

    #[test]
    fn exactly_twice_max_line() {
        let mut data = vec![b'q'; 2 * MAX_LINE];
        data.push(b'\n');
        let expect = vec![(vec![b'q'; MAX_LINE], true), (vec![b'q'; MAX_LINE], false)];
        assert_eq!(whole(&data, false), expect);
        assert_eq!(bytewise(&data, false), expect);
    }

    #[test]
    fn utf8_at_the_cut() {
        // A multi-byte character starting 1, 2 or 3 bytes before the cut.
        for ch in ["é", "€", "😀"] {
            for before in 1..ch.len() {
                let mut line = "a".repeat(MAX_LINE - before);
                line.push_str(ch);
                line.push_str("tail");
                let data = format!("{line}\n");
                let w = whole(data.as_bytes(), false);
                let b = bytewise(data.as_bytes(), false);
                assert_eq!(w, b, "{ch} {before}");
                assert_eq!(w.len(), 2);
                assert_eq!(w[0].0.len(), MAX_LINE - before, "{ch} {before}");
                assert!(w[0].1);
                assert!(std::str::from_utf8(&w[0].0).is_ok());
                assert!(std::str::from_utf8(&w[1].0).is_ok());
                assert!(w[1].0.starts_with(ch.as_bytes()));
                assert_eq!(rejoin(&w), vec![line.into_bytes()]);
            }
        }
    }

    #[test]
    fn utf8_ending_exactly_at_the_cut() {
        let mut line = "a".repeat(MAX_LINE - 3);
        line.push('€'); // ends exactly at MAX_LINE
        line.push('é');
        let data = format!("{line}\n");
        let w = whole(data.as_bytes(), false);
        assert_eq!(w[0].0.len(), MAX_LINE);
        assert_eq!(w[1], l("é", false));
        assert_eq!(bytewise(data.as_bytes(), false), w);
    }

    #[test]
    fn invalid_utf8_at_the_cut_is_cut_at_max() {
        // Continuation bytes without a lead: cut at exactly MAX_LINE.
        let mut data = vec![b'a'; MAX_LINE - 1];
        data.extend_from_slice(&[0x80, 0x80, 0x80, 0x80]);
        data.push(b'\n');
        let w = whole(&data, false);
        assert_eq!(w[0].0.len(), MAX_LINE);
        assert_eq!(bytewise(&data, false), w);
        // A lead byte whose sequence is truncated by the line end.
        let mut data = vec![b'a'; MAX_LINE - 1];
        data.extend_from_slice(&[0xE2, 0x82]);
        data.push(b'\n');
        let w = whole(&data, false);
        assert_eq!(w[0].0.len(), MAX_LINE);
        assert_eq!(w[1].0, vec![0x82]);
        assert_eq!(bytewise(&data, false), w);
        // Same, truncated by the end of the stream.
        let w = whole(&data[..data.len() - 1], true);
        assert_eq!(w[0].0.len(), MAX_LINE);
        assert_eq!(w[1], (vec![0x82], false));
        // An invalid 3-byte sequence (surrogate) straddling the cut.
        let mut data = vec![b'a'; MAX_LINE - 1];
        data.extend_from_slice(&[0xED, 0xA0, 0x80]);
        data.push(b'\n');
        let w = whole(&data, false);
        assert_eq!(w[0].0.len(), MAX_LINE);
        assert_eq!(bytewise(&data, false), w);
    }

    #[test]
    fn byte_at_a_time_matches_whole() {
        let mut data = Vec::new();
        data.extend_from_slice(b"first\r\n\nsecond\n");
        data.extend(std::iter::repeat_n(b'x', MAX_LINE + 5));
        data.extend_from_slice("ü\r\n".as_bytes());
        data.extend_from_slice(b"last no newline");
        assert_eq!(bytewise(&data, true), whole(&data, true));
        assert_eq!(bytewise(&data, false), whole(&data, false));
        let out = whole(&data, true);
        assert_eq!(out[0], l("first", false));
        assert_eq!(out[1], l("", false));
        assert_eq!(out[2], l("second", false));
        assert!(out[3].1);
        assert_eq!(out[4].0, "xxxxxü".as_bytes());
        assert_eq!(out.last().unwrap(), &l("last no newline", false));
    }

    #[test]
    fn buffer_is_bounded_without_newlines() {
        let mut s = LineSplitter::new();
        let mut n = 0;
        let chunk = vec![b'y'; 10_000];
        for _ in 0..100 {
            s.push(&chunk, &mut |piece: &[u8], cut: bool| {
                assert!(cut);
                assert_eq!(piece.len(), MAX_LINE);
                n += 1;
            });
            assert!(s.pending() <= MAX_LINE + 3);
        }
        assert_eq!(n, 1_000_000 / MAX_LINE);
    }

    #[test]
    fn a_chunk_gets_the_same_lines_as_one_by_one() {
        use crate::logs::Stream;
        // Short lines, CRLF, empty lines, lines just under, at and over MAX_LINE.
        let mut data = Vec::new();
        let mut seed = 7u32;
        for i in 0..400 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let len = match i % 50 {
                0 => MAX_LINE - 1 + (seed as usize % 3),
                1 => MAX_LINE + 1 + (seed as usize % 2000),
                _ => seed as usize % 120,
            };
            data.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, len));
            data.extend_from_slice(if seed.is_multiple_of(5) {
                b"\r\n"
            } else {
                b"\n"
            });
        }
        data.extend_from_slice(b"tail\r");
        let expect = whole(&data, true);
        for size in [1, 7, 100, 4096, 65_536, data.len()] {
            let mut s = LineSplitter::new();
            let mut c = Chunk::new(
                "web".into(),
                0,
                Stream::Stdout,
                std::time::SystemTime::now(),
            );
            for piece in data.chunks(size) {
                s.push(piece, &mut c);
            }
            s.finish(&mut c);
            let got: Lines = c
                .lines()
                .map(|(l, cut)| (l[..l.len() - 1].to_vec(), cut))
                .collect();
            assert!(got == expect, "chunks of {size}");
            let joined: Vec<u8> = expect
                .iter()
                .flat_map(|(l, _)| [l, &b"\n"[..]].concat())
                .collect();
            assert!(c.data() == joined, "data, chunks of {size}");
        }
    }

    #[test]
    fn plain_lines_read_in_place_are_taken_whole() {
        let mut s = LineSplitter::new();
        let mut out = Vec::new();
        s.push(b"held", &mut |l: &[u8], c| out.push((l.to_vec(), c)));
        let mut data = s.pending_bytes().to_vec();
        data.extend_from_slice(b" over\n\nnext\ntail");
        assert_eq!(s.take_plain(&data), Some(16));
        assert_eq!(s.pending_bytes(), b"tail");
        // Not plain: nothing changes, the bytes are pushed as usual.
        for bad in [&b"\r\nx\n"[..], b"x\r\n", b"no line end"] {
            let mut data = s.pending_bytes().to_vec();
            data.extend_from_slice(bad);
            assert_eq!(s.take_plain(&data), None, "{bad:?}");
            assert_eq!(s.pending_bytes(), b"tail");
        }
        let mut long = b"x\n".to_vec();
        long.extend(std::iter::repeat_n(b'y', MAX_LINE + 1));
        assert_eq!(s.take_plain(&[b"tail", &long[..]].concat()), None);
        let mut long = vec![b'y'; MAX_LINE];
        long.push(b'\n');
        assert_eq!(s.take_plain(&[b"tail", &long[..]].concat()), None);
        s.push(b"\n", &mut |l: &[u8], c| out.push((l.to_vec(), c)));
        assert_eq!(out, [(b"tail".to_vec(), false)]);
        // A `\r` that ends no line is plain; a CRLF across the held bytes is not.
        let mut s = LineSplitter::new();
        assert_eq!(s.take_plain(b"10%\r20%\rdone\nheld\r"), Some(13));
        assert_eq!(s.take_plain(b"held\r\nx\n"), None);
        // Lines of exactly MAX_LINE bytes, among short ones, are plain.
        let mut s = LineSplitter::new();
        let mut data = b"a\n".to_vec();
        for _ in 0..3 {
            data.extend(std::iter::repeat_n(b'y', MAX_LINE));
            data.extend_from_slice(b"\nb\n");
        }
        assert_eq!(s.take_plain(&data), Some(data.len()));
        data.insert(2, b'y');
        assert_eq!(s.take_plain(&data), None);
    }

    /// As `runtime::pipes` reads: each read is taken whole when `take_plain` says so
    /// (the chunk then finds its own line ends), else pushed.
    fn read_in_place(data: &[u8], reads: &[usize]) -> Lines {
        let mut s = LineSplitter::new();
        let mut out = Lines::new();
        let mut at = 0;
        for &n in reads.iter().cycle() {
            let new = &data[at..data.len().min(at + n)];
            at += new.len();
            let mut chunk = Chunk::new(
                "web".into(),
                0,
                crate::logs::Stream::Stdout,
                std::time::SystemTime::UNIX_EPOCH,
            );
            let mut buf = s.pending_bytes().to_vec();
            buf.extend_from_slice(new);
            match s.take_plain(&buf) {
                Some(end) => chunk = chunk.of_plain(buf, end),
                None => s.push(new, &mut chunk),
            }
            out.extend(
                chunk
                    .lines()
                    .map(|(l, cut)| (l[..l.len() - 1].to_vec(), cut)),
            );
            if at == data.len() {
                break;
            }
        }
        s.finish(&mut |l: &[u8], cut| out.push((l.to_vec(), cut)));
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn reads_taken_whole_give_the_lines_one_push_gives(
            parts in proptest::collection::vec(
                (proptest::sample::select(vec![&b"a"[..], b"\n", b"\r", b"\r\n", "\u{e9}".as_bytes()]),
                 proptest::prop_oneof![9 => 1usize..40, 1 => 30_000usize..70_000]),
                1..60),
            reads in proptest::collection::vec(1usize..150_000, 1..8),
        ) {
            let data: Vec<u8> = parts.iter().flat_map(|(p, n)| p.repeat(*n)).collect();
            proptest::prop_assert!(read_in_place(&data, &reads) == whole(&data, true));
        }
    }
}
