//! Instances cloned but not yet known to have exec'ed (issue 14 item 2). `os::spawn`
//! does not wait for a child's exec: it hands back a report pipe, registered here in the
//! loop's poll. Its end means the exec happened; an errno before it means the start
//! failed. Either way the outcome is told the way a waiting spawn told it: "started
//! (pid N)" (and only then are the instance's output pipes read, so its first line
//! never comes before that event), or "failed to start: ..." and the restart policy.
//!
//! Starts are told in the order they were made, as a waiting spawn told them: a
//! dependent's "started" never comes before its dependency's. A child can also end
//! before its report is read (both arrive in one turn): the reaper asks here first
//! (`reaped`), so a failed exec is never reported as an exit, and a quick exit is
//! told after its start (out of order, if an earlier start is still unconfirmed).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::OwnedFd;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use super::Runtime;
use crate::logs::Stream;
use crate::os::spawn::Starting;
use crate::state::{observe, ExitStatus, Fact, InstanceId};

/// One child whose start is not told yet.
pub(super) struct Start {
    pid: i32,
    id: InstanceId,
    /// Its stdout and stderr read ends, watched once it has exec'ed.
    output: [Option<OwnedFd>; 2],
}

/// A start, with its report until its outcome is known.
struct Entry {
    start: Start,
    report: Option<Starting>,
    outcome: Option<io::Result<()>>,
    /// When it was cloned.
    at: Instant,
}

pub(super) struct Starts {
    first: usize,
    next: usize,
    /// In the order of the spawns.
    queue: VecDeque<Token>,
    by_token: HashMap<Token, Entry>,
    by_pid: HashMap<i32, Token>,
}

impl Starts {
    /// Tokens from `first` up, in a range of their own.
    pub(super) fn new(first: usize) -> Starts {
        Starts {
            first,
            next: first,
            queue: VecDeque::new(),
            by_token: HashMap::new(),
            by_pid: HashMap::new(),
        }
    }

    pub(super) fn owns(&self, token: Token) -> bool {
        token.0 >= self.first && token.0 < self.next
    }

    pub(super) fn add(
        &mut self,
        registry: &Registry,
        pid: i32,
        id: InstanceId,
        starting: Starting,
        output: [Option<OwnedFd>; 2],
    ) -> io::Result<()> {
        let token = Token(self.next);
        self.next += 1;
        // Kept even if it cannot be watched: then the outcome is learned when the
        // child is reaped.
        let watched = registry.register(&mut SourceFd(&starting.fd()), token, Interest::READABLE);
        self.by_pid.insert(pid, token);
        self.queue.push_back(token);
        let entry = Entry {
            start: Start { pid, id, output },
            report: Some(starting),
            outcome: None,
            at: Instant::now(),
        };
        self.by_token.insert(token, entry);
        watched
    }

    /// How many starts are not told yet.
    pub(super) fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// When the oldest start not told yet was cloned.
    pub(super) fn oldest_at(&self) -> Option<Instant> {
        let token = self.queue.front()?;
        Some(self.by_token.get(token)?.at)
    }

    /// The report of `token` is readable: the starts that can be told now, in order.
    pub(super) fn readable(
        &mut self,
        registry: &Registry,
        token: Token,
    ) -> Vec<(Start, io::Result<()>)> {
        let entry = self.by_token.get_mut(&token);
        if let Some(outcome) = entry.and_then(|e| e.report.as_mut()?.outcome()) {
            self.resolve(registry, token, Some(outcome));
        }
        self.ready()
    }

    /// The oldest start's outcome, if its report has come (checked after each spawn: in
    /// a burst the loop spawns on without polling, and each start in flight holds its
    /// child's image and stack). The starts that can be told now, in order.
    pub(super) fn oldest(&mut self, registry: &Registry) -> Vec<(Start, io::Result<()>)> {
        match self.queue.front().copied() {
            Some(token) => self.readable(registry, token),
            None => Vec::new(),
        }
    }

    /// `pid` was reaped: when its start was not told yet, the starts to tell now, in
    /// order, ending with its own.
    pub(super) fn reaped(
        &mut self,
        registry: &Registry,
        pid: i32,
    ) -> Option<Vec<(Start, io::Result<()>)>> {
        let token = *self.by_pid.get(&pid)?;
        self.resolve(registry, token, None);
        let mut told = self.ready();
        if !told.iter().any(|(start, _)| start.pid == pid) {
            self.queue.retain(|t| *t != token);
            told.extend(self.tell(token));
        }
        Some(told)
    }

    /// Record the outcome (None: the child was reaped, ask its report) unless known.
    fn resolve(&mut self, registry: &Registry, token: Token, outcome: Option<io::Result<()>>) {
        let Some(entry) = self.by_token.get_mut(&token) else {
            return;
        };
        let Some(starting) = entry.report.take() else {
            return;
        };
        let _ = registry.deregister(&mut SourceFd(&starting.fd()));
        entry.outcome = Some(outcome.unwrap_or_else(|| starting.finish()));
    }

    /// The known outcomes at the front of the queue.
    fn ready(&mut self) -> Vec<(Start, io::Result<()>)> {
        let mut told = Vec::new();
        while let Some(token) = self.queue.front().copied() {
            let Some(start) = self.tell(token) else {
                break;
            };
            self.queue.pop_front();
            told.push(start);
        }
        told
    }

    /// The start of `token`, removed, if its outcome is known.
    fn tell(&mut self, token: Token) -> Option<(Start, io::Result<()>)> {
        self.by_token.get(&token)?.outcome.as_ref()?;
        let entry = self.by_token.remove(&token)?;
        self.by_pid.remove(&entry.start.pid);
        Some((entry.start, entry.outcome?))
    }
}

impl Runtime {
    /// A start's report pipe is readable.
    pub(super) fn on_start_report(&mut self, token: Token) {
        for (start, outcome) in self.starts.readable(self.poll.registry(), token) {
            self.start_known(start, outcome);
        }
    }

    /// After a spawn: tell the oldest start if it is known already.
    pub(super) fn check_oldest_start(&mut self) {
        for (start, outcome) in self.starts.oldest(self.poll.registry()) {
            self.start_known(start, outcome);
        }
    }

    /// Tell what came of a start. On success the instance's output is watched from now.
    /// A failure is a crash like any other: it backs off and counts towards
    /// max_restarts (its child, exiting with 127, has been collected already).
    pub(super) fn start_known(&mut self, start: Start, outcome: io::Result<()>) {
        let Start { pid, id, output } = start;
        match outcome {
            Ok(()) => {
                let registry = self.poll.registry();
                let streams = [Stream::Stdout, Stream::Stderr];
                for (fd, stream) in output.into_iter().zip(streams) {
                    let Some(fd) = fd else { continue };
                    if let Err(e) = self.pipes.add(registry, fd, &id, stream) {
                        log::warn!("cannot watch {id}'s {stream:?}: {e}");
                    }
                }
                self.output.event(&format!("{id} started (pid {pid})"));
            }
            Err(e) => {
                self.leaders.remove(&pid);
                self.output.event(&format!("{id} failed to start: {e}"));
                let Some(who) = self.observed.find_leader(&id, pid) else {
                    return;
                };
                let fact = Fact::Exited {
                    who,
                    status: ExitStatus::SpawnFailed(e.to_string()),
                    group_alive: false,
                    spec: self.desired.app(&id.app),
                };
                observe(&mut self.observed, fact, std::time::Instant::now());
                self.announce_end(&id);
            }
        }
    }

    /// A reaped child: when its start was not told yet, tell it first. Whether its
    /// exit is still to be told (not after a failed start).
    pub(super) fn reaped_start(&mut self, pid: i32) -> bool {
        let Some(told) = self.starts.reaped(self.poll.registry(), pid) else {
            return true;
        };
        let mut exited = true;
        for (start, outcome) in told {
            if start.pid == pid {
                exited = outcome.is_ok();
            }
            self.start_known(start, outcome);
        }
        exited
    }
}
