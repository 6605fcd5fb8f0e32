//! The instances' stdout/stderr pipes: read when readable, cut into lines, handed to
//! the output writer.
//!
//! A pipe belongs to an instance name, not to a process: a grandchild may keep it open
//! after the leader died, so a pipe lives until EOF on its own schedule and an instance's
//! life is decided by `waitpid` alone. When the output queue is full, a pipe stops being
//! read (the child blocks on a full pipe, which is the backpressure SPEC §5 allows) and
//! is resumed when the writer thread wakes the loop.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::logs::{LineSplitter, Output, Stream};
use crate::state::InstanceId;

/// Reads per wakeup before a busy pipe yields to the rest of the loop.
const READS_PER_TURN: usize = 16;
const READ_SIZE: usize = 64 * 1024;

struct Pipe {
    fd: OwnedFd,
    owner: InstanceId,
    stream: Stream,
    splitter: LineSplitter,
    /// Lines the output refused; sent before anything else is read.
    pending: VecDeque<(Vec<u8>, bool)>,
    eof: bool,
}

pub struct Pipes {
    pipes: HashMap<Token, Pipe>,
    next_token: usize,
    /// Pipes with unread data or refused lines, to visit again.
    again: Vec<Token>,
    buf: Vec<u8>,
}

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
        }
    }

    pub fn owns(&self, token: Token) -> bool {
        self.pipes.contains_key(&token)
    }

    /// Work is left over from the last turn: poll without sleeping.
    pub fn busy(&self, output: &Output) -> bool {
        !self.again.is_empty() && output.has_room()
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
                stream,
                splitter: LineSplitter::new(),
                pending: VecDeque::new(),
                eof: false,
            },
        );
        // Data may already be waiting; edge-triggered registration would not say so.
        self.again.push(token);
        Ok(())
    }

    pub fn readable(&mut self, registry: &Registry, token: Token, output: &Output) {
        self.turn(registry, token, output, READS_PER_TURN);
    }

    /// Visit the pipes left with work (after a full budget or a full output queue).
    pub fn resume(&mut self, registry: &Registry, output: &Output) {
        let tokens = std::mem::take(&mut self.again);
        for token in tokens {
            self.turn(registry, token, output, READS_PER_TURN);
        }
    }

    /// The instance's leader exited: take in what its pipes hold now, so its last lines
    /// come before the exit message, and flush the partial last line.
    pub fn drain(&mut self, registry: &Registry, owner: &InstanceId, output: &Output) {
        let tokens: Vec<Token> = self
            .pipes
            .iter()
            .filter(|(_, p)| &p.owner == owner)
            .map(|(t, _)| *t)
            .collect();
        for token in tokens {
            self.turn(registry, token, output, READS_PER_TURN);
            if let Some(pipe) = self.pipes.get_mut(&token) {
                let pending = &mut pipe.pending;
                pipe.splitter
                    .finish(&mut |line, cut| pending.push_back((line, cut)));
                self.turn(registry, token, output, 0);
            }
        }
    }

    fn turn(&mut self, registry: &Registry, token: Token, output: &Output, reads: usize) {
        let Some(pipe) = self.pipes.get_mut(&token) else {
            return;
        };
        match pump(pipe, output, &mut self.buf, reads) {
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
    }
}

fn pump(pipe: &mut Pipe, output: &Output, buf: &mut [u8], reads: usize) -> Turn {
    let mut reads_left = reads;
    loop {
        while let Some((line, cut)) = pipe.pending.pop_front() {
            let owner = &pipe.owner;
            if let Err(line) = output.try_line(&owner.app, owner.index, pipe.stream, line, cut) {
                pipe.pending.push_front((line, cut));
                return Turn::Again;
            }
        }
        if pipe.eof {
            return Turn::Closed;
        }
        if reads_left == 0 {
            return Turn::Again;
        }
        reads_left -= 1;
        // SAFETY: reading into a buffer we own, of the length we pass.
        let n = unsafe { libc::read(pipe.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let pending = &mut pipe.pending;
        let mut emit = |line: Vec<u8>, cut: bool| pending.push_back((line, cut));
        match n {
            0 => {
                pipe.splitter.finish(&mut emit);
                pipe.eof = true;
            }
            n if n > 0 => pipe.splitter.push(&buf[..n as usize], &mut emit),
            _ => match io::Error::last_os_error().kind() {
                io::ErrorKind::WouldBlock => return Turn::Idle,
                io::ErrorKind::Interrupted => {}
                _ => {
                    pipe.splitter.finish(&mut emit);
                    pipe.eof = true;
                }
            },
        }
    }
}
