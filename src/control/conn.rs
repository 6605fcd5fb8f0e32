//! One control connection: its non-blocking stream, the request lines framed out of
//! what it sent, and the answers queued for it and not yet written.
//!
//! Framing is linear in what the client sends: a line is found by scanning only bytes
//! not scanned before, and consumed lines are dropped by moving the rest once per read,
//! never once per line.

use std::io::{self, ErrorKind, Read, Write};
use std::time::Instant;

use mio::net::UnixStream;

use super::protocol::MAX_REQUEST_LINE;

/// What the input holds next.
#[derive(Debug, PartialEq)]
pub enum Frame {
    /// A complete line, without its newline (and `\r`).
    Line(Vec<u8>),
    /// A line longer than [`MAX_REQUEST_LINE`]: the client is beyond help.
    Overlong,
    /// No complete line yet.
    Partial,
}

/// What one read from the socket gave.
#[derive(Debug, PartialEq)]
pub enum Got {
    Bytes(usize),
    Eof,
    WouldBlock,
    Broken,
}

pub struct Conn {
    pub stream: UnixStream,
    input: Vec<u8>,
    /// `input[..in_pos]` is consumed.
    in_pos: usize,
    /// `input[in_pos..scanned]` holds no newline.
    scanned: usize,
    out: Vec<u8>,
    /// `out[..out_pos]` is written.
    out_pos: usize,
    /// WRITABLE interest is registered.
    pub writable: bool,
    /// Still reading requests (false after EOF or an over-long line).
    pub reading: bool,
    /// Requests handed to the loop and not answered yet.
    pub pending: usize,
    /// The loop has been told (Gone) or decided (reply after EOF) that this client is
    /// finished: nothing more is queued, the rest of `out` is flushed, then it closes.
    pub finished: bool,
    /// It sent at least one complete line.
    pub spoke: bool,
    /// It follows logs: long-lived by design, never idle.
    pub following: bool,
    /// It is in the server's ready queue.
    pub queued: bool,
    /// When it connected, sent its last line or got its last answer.
    pub last_active: Instant,
}

impl Conn {
    pub fn new(stream: UnixStream) -> Conn {
        Conn {
            stream,
            input: Vec::new(),
            in_pos: 0,
            scanned: 0,
            out: Vec::new(),
            out_pos: 0,
            writable: false,
            reading: true,
            pending: 0,
            finished: false,
            spoke: false,
            following: false,
            queued: false,
            last_active: Instant::now(),
        }
    }

    /// Bytes queued and not yet written.
    pub fn unsent(&self) -> usize {
        self.out.len() - self.out_pos
    }

    /// One read from the socket into `scratch`, appended to the input.
    pub fn read(&mut self, scratch: &mut [u8]) -> Got {
        loop {
            match self.stream.read(scratch) {
                Ok(0) => return Got::Eof,
                Ok(n) => {
                    if self.in_pos > 0 {
                        self.input.drain(..self.in_pos);
                        self.scanned -= self.in_pos;
                        self.in_pos = 0;
                    }
                    self.input.extend_from_slice(&scratch[..n]);
                    return Got::Bytes(n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Got::WouldBlock,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Got::Broken,
            }
        }
    }

    /// The next line of the input. Blank lines are skipped.
    pub fn next_line(&mut self) -> Frame {
        loop {
            let Some(i) = self.input[self.scanned..].iter().position(|&b| b == b'\n') else {
                self.scanned = self.input.len();
                if self.scanned - self.in_pos > MAX_REQUEST_LINE {
                    return Frame::Overlong;
                }
                return Frame::Partial;
            };
            let nl = self.scanned + i;
            let start = self.in_pos;
            self.in_pos = nl + 1;
            self.scanned = self.in_pos;
            let mut end = nl;
            if end > start && self.input[end - 1] == b'\r' {
                end -= 1;
            }
            let frame = if end - start > MAX_REQUEST_LINE {
                Some(Frame::Overlong)
            } else if self.input[start..end].iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                Some(Frame::Line(self.input[start..end].to_vec()))
            };
            if self.in_pos == self.input.len() {
                self.input.clear();
                self.in_pos = 0;
                self.scanned = 0;
            }
            if let Some(frame) = frame {
                return frame;
            }
        }
    }

    /// Forget the unread input (after an over-long line).
    pub fn discard_input(&mut self) {
        self.input = Vec::new();
        self.in_pos = 0;
        self.scanned = 0;
    }

    /// Append to the output (the caller checks the bound first).
    pub fn push(&mut self, bytes: &[u8]) {
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        self.out.extend_from_slice(bytes);
    }

    /// Write queued output until done or `WouldBlock`. Err if the socket is broken.
    pub fn flush(&mut self) -> io::Result<()> {
        while self.out_pos < self.out.len() {
            match self.stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > 64 * 1024 && self.out_pos * 2 > self.out.len() {
            // Amortised: at most once per half of the buffer written.
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn_with(input: &[u8]) -> (Conn, std::os::unix::net::UnixStream) {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let mut c = Conn::new(UnixStream::from_std(a));
        let mut b2 = b.try_clone().unwrap();
        b2.write_all(input).unwrap();
        let mut scratch = vec![0; 1 << 20];
        while let Got::Bytes(_) = c.read(&mut scratch) {}
        (c, b)
    }

    #[test]
    fn lines_are_framed_in_order_with_blanks_and_cr_dropped() {
        let (mut c, _peer) = conn_with(b"one\n\n  \ntwo\r\nthr");
        assert_eq!(c.next_line(), Frame::Line(b"one".to_vec()));
        assert_eq!(c.next_line(), Frame::Line(b"two".to_vec()));
        assert_eq!(c.next_line(), Frame::Partial);
    }

    #[test]
    fn many_small_lines_are_linear() {
        // 200,000 lines in one buffer: a drain per line would move ~10^11 bytes.
        let mut input = Vec::new();
        for i in 0..200_000 {
            input.extend_from_slice(format!("{i}\n").as_bytes());
        }
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut c = Conn::new(UnixStream::from_std(a));
        c.input = input;
        let t0 = std::time::Instant::now();
        let mut n = 0;
        while let Frame::Line(_) = c.next_line() {
            n += 1;
        }
        assert_eq!(n, 200_000);
        assert!(t0.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn an_endless_line_is_overlong() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut c = Conn::new(UnixStream::from_std(a));
        c.input = vec![b'x'; MAX_REQUEST_LINE];
        assert_eq!(c.next_line(), Frame::Partial);
        c.input.push(b'x');
        assert_eq!(c.next_line(), Frame::Overlong);
    }
}
