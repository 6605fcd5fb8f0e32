//! The instances' stdout/stderr pipes: read when readable, cut into lines, handed to
//! the output writer.
//!
//! A pipe belongs to an instance name, not to a process: a grandchild may keep it open
//! after the leader died, so a pipe lives until EOF on its own schedule and an instance's
//! life is decided by `waitpid` alone. When the output queue is full, a pipe stops being
//! read (the child blocks on a full pipe, which is the backpressure SPEC §5 allows) and
//! is resumed when the writer thread wakes the loop.
//!
//! A line is never split by a pipe's end: the partial last line is flushed at end of file,
//! or when the leader exited and its pipe is empty while a grandchild still holds it,
//! never while the rest may still wait in the pipe. When supervise leaves, every pipe is
//! read to its end (see `Runtime::drain_pipes`).
//!
//! A chatty pipe rests: when it wakes the loop twice within [`REST`], it is taken out of
//! the poll and read again [`REST`] later, whatever came meanwhile at once, until a read
//! finds it empty and it is watched again. Each write of an app into a watched pipe wakes
//! the loop (and costs the app a cross-CPU wake-up): an app writing a line per `write(2)`
//! would otherwise pay that per line. Lines then come out at most [`REST`] later; a quiet
//! pipe costs no timer, and a pipe that writes now and then is read at once.
//!
//! Pipes of ended runs are kept until their end of file, so that their last lines still
//! come out once stdout moves again; but at most [`MAX_ENDED`] of them: past that (a crash
//! loop behind a stuck stdout), the oldest is emptied, its lines counted as lost and
//! reported, and closed. So supervise's descriptors and memory stay bounded.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};

use crate::logs::chunk::Chunk;
use crate::logs::{LineSplitter, Stream};
use crate::state::InstanceId;

/// Where lines go (stdout, log files, the in-memory ring), a chunk (one read's whole
/// lines) at a time. `delivered` remembers which destinations already took the chunk, so
/// a chunk refused by one is retried there only. Returns false when a destination is
/// full: stop reading for now.
pub trait LineSink {
    /// `lines` lines of `owner`'s ended run were dropped (see [`MAX_ENDED`]).
    fn lost(&mut self, owner: &InstanceId, stream: Stream, lines: u64);

    fn deliver(&mut self, chunk: &Arc<Chunk>, delivered: &mut u8) -> bool;
}

/// Reads per wakeup before a busy pipe yields to the rest of the loop.
const READS_PER_TURN: usize = 16;
/// One read takes at most this much: what a grown pipe holds.
const READ_SIZE: usize = 1024 * 1024;
/// A pipe found full (a read took all of its default 64 KiB) is grown to this, so that a
/// chatty app and supervise hand over bigger batches with fewer wake-ups. Only busy pipes
/// grow: the kernel counts pipe capacity against a per-user budget.
const GROWN_PIPE: usize = 1024 * 1024;
const DEFAULT_PIPE: usize = 64 * 1024;
/// Reads when an instance's leader exited: more than a pipe holds.
const DRAIN_READS: usize = 64;
/// Pipes of ended runs kept open at most.
pub const MAX_ENDED: usize = 64;
/// How long a chatty pipe rests between reads (see the module docs).
pub const REST: Duration = Duration::from_millis(1);
/// A read this big of plain lines becomes its chunk as it is, the read buffer and all
/// (smaller ones are copied out: a chunk holding a whole buffer for a few lines would
/// waste memory while it waits in a queue).
const IN_PLACE: usize = crate::logs::chunk::POOLED;
/// A wake-up that reads this much is a burst, not chatter: resting would only let the
/// pipe fill and block the app, so the pipe stays watched.
const BURST: usize = GROWN_PIPE / 4;
/// A burst's buffers (the read buffer and the pooled chunk buffers, about 3 MiB) are
/// given back this long after its last big read: one wake-up per burst, not a timer.
const TRIM_AFTER: Duration = Duration::from_secs(1);

struct Pipe {
    fd: OwnedFd,
    owner: InstanceId,
    app: Arc<str>,
    stream: Stream,
    splitter: LineSplitter,
    /// Lines not yet taken by every destination (with the mask of those that took
    /// them); sent before anything else is read.
    pending: VecDeque<(Arc<Chunk>, u8)>,
    eof: bool,
    /// The run ended (its leader exited): when, in order of exits.
    ended: Option<u64>,
    /// Its capacity was raised (or that was tried).
    grown: bool,
    /// When a wake-up last found data in it.
    woke: Option<Instant>,
    /// Out of the poll, read again by a timer in `Pipes::resting`.
    resting: bool,
}

pub struct Pipes {
    pipes: HashMap<Token, Pipe>,
    next_token: usize,
    /// Pipes with unread data or refused lines, to visit again.
    again: Vec<Token>,
    buf: Vec<u8>,
    /// Leader exits seen, to order the pipes of ended runs.
    exits: u64,
    /// When each resting pipe is read again, in time order (one entry per resting pipe).
    resting: VecDeque<(Instant, Token)>,
    /// supervise is leaving: pipes are watched, never rest.
    leaving: bool,
    /// When to give a burst's buffers back ([`TRIM_AFTER`]).
    trim_at: Option<Instant>,
}

#[derive(Clone, Copy, PartialEq)]
enum Turn {
    /// Nothing more to read now.
    Idle,
    /// Budget used up or output full: visit again.
    Again,
    Closed,
}

impl Pipes {
    pub fn new(first_token: usize) -> Pipes {
        Pipes {
            pipes: HashMap::new(),
            next_token: first_token,
            again: Vec::new(),
            buf: vec![0; READ_SIZE],
            exits: 0,
            resting: VecDeque::new(),
            leaving: false,
            trim_at: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pipes.is_empty()
    }

    pub fn owns(&self, token: Token) -> bool {
        self.pipes.contains_key(&token)
    }

    /// Work is left over from the last turn and the destinations have room: poll
    /// without sleeping.
    pub fn busy(&self, room: bool) -> bool {
        !self.again.is_empty() && room
    }

    pub fn add(
        &mut self,
        registry: &Registry,
        fd: OwnedFd,
        owner: &InstanceId,
        stream: Stream,
    ) -> io::Result<()> {
        let token = Token(self.next_token);
        self.next_token += 1;
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        self.pipes.insert(
            token,
            Pipe {
                fd,
                owner: owner.clone(),
                app: owner.app.as_str().into(),
                stream,
                splitter: LineSplitter::new(),
                pending: VecDeque::new(),
                eof: false,
                ended: None,
                grown: false,
                woke: None,
                resting: false,
            },
        );
        // Not read now: data already waiting is reported by the next poll (epoll checks
        // a descriptor's readiness when it is added, edge-triggered or not), and a pipe
        // added at its child's exec has nothing yet. Two reads fewer on the path from
        // the exec to the app's first instruction.
        Ok(())
    }

    pub fn readable(&mut self, registry: &Registry, token: Token, sink: &mut dyn LineSink) {
        let (turn, got) = self.turn(registry, token, sink, READS_PER_TURN);
        let now = Instant::now();
        let Some(pipe) = self.pipes.get_mut(&token) else {
            return;
        };
        if got == 0 || got >= BURST || turn != Turn::Idle || pipe.resting || self.leaving {
            return;
        }
        let chatty = pipe.woke.is_some_and(|w| now.duration_since(w) < REST);
        pipe.woke = Some(now);
        if chatty
            && registry
                .deregister(&mut SourceFd(&pipe.fd.as_raw_fd()))
                .is_ok()
        {
            // It must hold what comes while it rests.
            pipe.grow();
            pipe.resting = true;
            self.resting.push_back((now + REST, token));
        }
    }

    /// When the next resting pipe is to be read, or a burst's buffers given back.
    pub fn next_deadline(&self) -> Option<Instant> {
        let rest = self.resting.front().map(|(at, _)| *at);
        rest.into_iter().chain(self.trim_at).min()
    }

    /// Reads the resting pipes whose time has come: one that gave nothing is watched
    /// again, the others rest once more. Those due within half a rest are read along, so
    /// many chatty pipes share wake-ups (two per rest at most).
    pub fn wake_due(&mut self, registry: &Registry, sink: &mut dyn LineSink) {
        let now = Instant::now();
        self.trim_due(now);
        while let Some(&(at, token)) = self.resting.front() {
            if at > now + REST / 2 {
                break;
            }
            self.resting.pop_front();
            let (turn, got) = self.turn(registry, token, sink, READS_PER_TURN);
            if turn == Turn::Closed {
                continue;
            }
            let chatter = got > 0 && got < BURST;
            if turn == Turn::Idle && !chatter && self.watch(registry, token) {
                continue;
            }
            self.resting.push_back((now + REST, token));
        }
    }

    /// A burst ended [`TRIM_AFTER`] ago: its pages go back to the system. Without this,
    /// one 200 MB burst left supervise's RSS at 9.7 MiB instead of 4.9 for good.
    fn trim_due(&mut self, now: Instant) {
        if self.trim_at.is_some_and(|at| at <= now) {
            self.trim_at = None;
            // A fresh buffer: when the allocator maps it anew, its pages are touched only
            // by what is read into it (recycled heap memory is zeroed, so touched).
            self.buf = vec![0; READ_SIZE];
            Chunk::release_spares();
            crate::os::heap::give_back();
        }
    }

    /// Puts a resting pipe back in the poll. False if that failed (it rests on).
    fn watch(&mut self, registry: &Registry, token: Token) -> bool {
        let Some(pipe) = self.pipes.get_mut(&token) else {
            return true;
        };
        let fd = pipe.fd.as_raw_fd();
        // Data that came meanwhile is reported at once: the registration checks.
        if registry
            .register(&mut SourceFd(&fd), token, Interest::READABLE)
            .is_err()
        {
            return false;
        }
        pipe.resting = false;
        pipe.woke = None;
        true
    }

    /// Visit the pipes left with work (after a full budget or a full output queue).
    pub fn resume(&mut self, registry: &Registry, sink: &mut dyn LineSink) {
        let tokens = std::mem::take(&mut self.again);
        for token in tokens {
            self.turn(registry, token, sink, READS_PER_TURN);
        }
    }

    /// The instance's leader exited: take in what its pipes hold now, so its last lines
    /// come before the exit message. The partial last line is flushed if the pipe is empty
    /// now (at its end, or held open by a grandchild); if the destinations are full, the
    /// rest is read later, whole.
    pub fn drain(&mut self, registry: &Registry, owner: &InstanceId, sink: &mut dyn LineSink) {
        let tokens: Vec<Token> = self
            .pipes
            .iter()
            .filter(|(_, p)| &p.owner == owner && p.ended.is_none())
            .map(|(t, _)| *t)
            .collect();
        self.exits += 1;
        for token in tokens {
            if let Some(pipe) = self.pipes.get_mut(&token) {
                pipe.ended = Some(self.exits);
            }
            if let (Turn::Idle, _) = self.turn(registry, token, sink, DRAIN_READS) {
                if let Some(pipe) = self.pipes.get_mut(&token) {
                    let mut chunk = pipe.chunk(0);
                    pipe.splitter.finish(&mut chunk);
                    pipe.queue(chunk);
                    self.turn(registry, token, sink, 0);
                }
            }
        }
        self.limit_ended(registry, sink);
    }

    /// supervise is leaving: every pipe is read to its end from now on, as budgets allow.
    pub fn drain_all(&mut self, registry: &Registry, sink: &mut dyn LineSink) {
        self.leaving = true;
        let tokens: Vec<Token> = self.pipes.keys().copied().collect();
        let mut left = VecDeque::new();
        for (at, token) in std::mem::take(&mut self.resting) {
            if !self.watch(registry, token) {
                left.push_back((at, token));
            }
        }
        self.resting = left;
        for token in tokens {
            self.turn(registry, token, sink, READS_PER_TURN);
        }
    }

    /// Past [`MAX_ENDED`] pipes of ended runs, the oldest is emptied and closed, its lines
    /// counted as lost.
    fn limit_ended(&mut self, registry: &Registry, sink: &mut dyn LineSink) {
        let mut ended: Vec<(u64, Token)> = self
            .pipes
            .iter()
            .filter_map(|(t, p)| p.ended.map(|e| (e, *t)))
            .collect();
        if ended.len() <= MAX_ENDED {
            return;
        }
        ended.sort_unstable();
        for (_, token) in &ended[..ended.len() - MAX_ENDED] {
            let Some(mut pipe) = self.pipes.remove(token) else {
                continue;
            };
            let _ = registry.deregister(&mut SourceFd(&pipe.fd.as_raw_fd()));
            let mut lost: u64 = pipe.pending.iter().map(|(c, _)| c.len() as u64).sum();
            // What the pipe holds now (bounded: a living grandchild may keep writing).
            for _ in 0..DRAIN_READS {
                match nix::unistd::read(&pipe.fd, &mut self.buf) {
                    Ok(n) if n > 0 => {
                        lost += memchr::memchr_iter(b'\n', &self.buf[..n]).count() as u64;
                        pipe.splitter.push(&self.buf[..n], &mut |_: &[u8], _| {});
                    }
                    Err(nix::errno::Errno::EINTR) => {}
                    _ => break,
                }
            }
            if pipe.splitter.pending() > 0 {
                lost += 1;
            }
            self.again.retain(|t| t != token);
            if lost > 0 {
                sink.lost(&pipe.owner, pipe.stream, lost);
            }
        }
    }

    /// Sends what waits and reads at most `reads` times; also says how many bytes it read.
    fn turn(
        &mut self,
        registry: &Registry,
        token: Token,
        sink: &mut dyn LineSink,
        reads: usize,
    ) -> (Turn, usize) {
        let Some(pipe) = self.pipes.get_mut(&token) else {
            return (Turn::Closed, 0);
        };
        let (turn, got) = pump(pipe, sink, &mut self.buf, reads);
        if got >= BURST {
            self.trim_at = Some(Instant::now() + TRIM_AFTER);
        }
        match turn {
            Turn::Idle => {}
            Turn::Again => {
                if !self.again.contains(&token) {
                    self.again.push(token);
                }
            }
            Turn::Closed => {
                let _ = registry.deregister(&mut SourceFd(&pipe.fd.as_raw_fd()));
                self.pipes.remove(&token);
            }
        }
        (turn, got)
    }
}

impl Pipe {
    fn grow(&mut self) {
        if !self.grown {
            self.grown = true;
            // Refused past the user's pipe budget or pipe-max-size: stay as it is.
            let _ = fcntl(&self.fd, FcntlArg::F_SETPIPE_SZ(GROWN_PIPE as i32));
        }
    }

    /// An empty chunk of this pipe, read now, for about `bytes` bytes.
    fn chunk(&self, bytes: usize) -> Chunk {
        let (index, time) = (self.owner.index, SystemTime::now());
        let mut c = Chunk::new(Arc::clone(&self.app), index, self.stream, time);
        c.reserve(bytes);
        c
    }

    fn queue(&mut self, chunk: Chunk) {
        if !chunk.is_empty() {
            self.pending.push_back((Arc::new(chunk), 0));
        }
    }
}

/// Sends what waits, then reads and sends, at most `reads` times. Also says how many
/// bytes were read.
fn pump(
    pipe: &mut Pipe,
    sink: &mut dyn LineSink,
    buf: &mut Vec<u8>,
    reads: usize,
) -> (Turn, usize) {
    let mut reads_left = reads;
    let mut got = 0;
    loop {
        while let Some((chunk, mut delivered)) = pipe.pending.pop_front() {
            if !sink.deliver(&chunk, &mut delivered) {
                pipe.pending.push_front((chunk, delivered));
                return (Turn::Again, got);
            }
        }
        if pipe.eof {
            return (Turn::Closed, got);
        }
        if reads_left == 0 {
            return (Turn::Again, got);
        }
        reads_left -= 1;
        let mut chunk;
        // Read in place: after the unfinished line's bytes, so that a big read of plain
        // lines becomes its chunk as it is (`take_plain`), with no copy.
        let held = pipe.splitter.pending();
        if buf.len() < held + READ_SIZE {
            buf.resize(held + READ_SIZE, 0);
        }
        match nix::unistd::read(&pipe.fd, &mut buf[held..held + READ_SIZE]) {
            Ok(0) => {
                chunk = pipe.chunk(0);
                pipe.splitter.finish(&mut chunk);
                pipe.eof = true;
            }
            Ok(n) => {
                got += n;
                // Full, give or take the page ends that small writes leave unused.
                if n >= DEFAULT_PIPE / 2 {
                    pipe.grow();
                }
                let whole = (n >= IN_PLACE)
                    .then(|| {
                        buf[..held].copy_from_slice(pipe.splitter.pending_bytes());
                        pipe.splitter.take_plain(&buf[..held + n])
                    })
                    .flatten();
                if let Some(end) = whole {
                    let data = std::mem::replace(buf, Chunk::read_buffer(held + READ_SIZE));
                    chunk = pipe.chunk(0).of_plain(data, end);
                } else {
                    chunk = pipe.chunk(n + held);
                    pipe.splitter.push(&buf[held..held + n], &mut chunk);
                }
            }
            Err(Errno::EAGAIN) => return (Turn::Idle, got),
            Err(Errno::EINTR) => continue,
            Err(_) => {
                chunk = pipe.chunk(0);
                pipe.splitter.finish(&mut chunk);
                pipe.eof = true;
            }
        }
        pipe.queue(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_written_before_a_pipe_is_added_is_reported_by_the_poll() {
        let mut poll = mio::Poll::new().unwrap();
        let flags = nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK;
        let (read, write) = nix::unistd::pipe2(flags).unwrap();
        nix::unistd::write(&write, b"early\n").unwrap();
        let mut pipes = Pipes::new(16);
        let id = InstanceId::new("web", 0);
        pipes
            .add(poll.registry(), read, &id, Stream::Stdout)
            .unwrap();
        let mut events = mio::Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_secs(10)))
            .unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.token() == Token(16) && e.is_readable()),
            "no readable event for a pipe added with data in it"
        );
    }

    /// Takes every chunk, refusing nothing.
    struct Taker(usize);

    impl LineSink for Taker {
        fn lost(&mut self, _: &InstanceId, _: Stream, _: u64) {}
        fn deliver(&mut self, chunk: &Arc<Chunk>, _: &mut u8) -> bool {
            self.0 += chunk.bytes();
            true
        }
    }

    #[test]
    fn a_burst_gives_its_buffers_back_once_it_is_over() {
        let poll = mio::Poll::new().unwrap();
        let flags = nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK;
        let (read, write) = nix::unistd::pipe2(flags).unwrap();
        let mut pipes = Pipes::new(16);
        let id = InstanceId::new("web", 0);
        pipes
            .add(poll.registry(), read, &id, Stream::Stdout)
            .unwrap();
        let mut sink = Taker(0);
        // Chatter sets no deadline.
        nix::unistd::write(&write, b"a line\n").unwrap();
        pipes.readable(poll.registry(), Token(16), &mut sink);
        assert_eq!((sink.0, pipes.next_deadline()), (7, None));
        // A burst: more than BURST in one wake-up.
        let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(GROWN_PIPE as i32));
        let line = [b'x'; 99].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        let mut written = 0;
        while written < BURST + 100 {
            written += nix::unistd::write(&write, &line).unwrap();
        }
        let before = Instant::now();
        pipes.readable(poll.registry(), Token(16), &mut sink);
        assert_eq!(sink.0, 7 + written);
        let at = pipes
            .next_deadline()
            .expect("a deadline to give the buffers back");
        assert!(at >= before + TRIM_AFTER && at <= Instant::now() + TRIM_AFTER);
        // Not yet due: kept. Due: a new read buffer, and no deadline left.
        let used = pipes.buf.as_ptr();
        pipes.trim_due(at - Duration::from_millis(1));
        assert_eq!(
            (pipes.buf.as_ptr(), pipes.next_deadline()),
            (used, Some(at))
        );
        pipes.trim_due(at);
        assert_eq!(pipes.next_deadline(), None);
        assert!(pipes.buf.as_ptr() != used && pipes.buf.len() == READ_SIZE);
    }
}
