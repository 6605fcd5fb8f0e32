//! Where an instance's lines go: supervise's stdout, the log files (with `log_dir`), and
//! the in-memory ring that `supervise logs` reads (and `--follow` clients). stdout and
//! the files may refuse a line when their writer is behind; the pipe then waits.

use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use mio::Events;

use crate::control::protocol::LogLine;
use crate::logs::chunk::{strip, Chunk};
use crate::logs::files::LogFiles;
use crate::logs::output::CUT_MARK;
use crate::logs::ring::{LogRing, RingLine};
use crate::logs::{Output, Stream};
use crate::state::InstanceId;

use super::pipes::LineSink;
use super::Runtime;

const TO_STDOUT: u8 = 1;
const TO_FILES: u8 = 2;
const TO_RING: u8 = 4;

pub(super) struct Sinks<'a> {
    pub output: &'a Output,
    pub files: Option<&'a LogFiles>,
    pub ring: &'a mut LogRing,
    /// Lines for `logs --follow` clients, when there are any.
    pub outbox: Option<&'a mut Vec<LogLine>>,
}

impl Sinks<'_> {
    /// Both writers have room: reading pipes may go on.
    pub fn room(&self) -> bool {
        self.output.has_room() && self.files.is_none_or(LogFiles::has_room)
    }

    /// Holds the writers' wake-ups during a turn of the loop, or releases them before it
    /// sleeps, so that lines of a respawn wake them after the spawn is done.
    pub fn hold(&self, held: bool) {
        self.output.hold(held);
        if let Some(files) = self.files {
            files.hold(held);
        }
    }
}

impl LineSink for Sinks<'_> {
    fn lost(&mut self, owner: &InstanceId, stream: Stream, lines: u64) {
        self.output.event(&format!(
            "{owner}: {lines} line(s) of an ended run's {} dropped: stdout is blocked and too many ended runs wait",
            stream.as_str()
        ));
    }

    fn deliver(&mut self, chunk: &Arc<Chunk>, delivered: &mut u8) -> bool {
        if *delivered & TO_STDOUT == 0 {
            if self.output.try_chunk(Arc::clone(chunk)).is_err() {
                return false;
            }
            *delivered |= TO_STDOUT;
        }
        if *delivered & TO_FILES == 0 {
            if let Some(files) = self.files {
                if !files.try_chunk(Arc::clone(chunk)) {
                    return false;
                }
            }
            *delivered |= TO_FILES;
        }
        if *delivered & TO_RING == 0 {
            let time_ms = chunk
                .time
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            if let Some(outbox) = self.outbox.as_deref_mut() {
                for (line, cut) in chunk.lines() {
                    outbox.push(log_line(RingLine {
                        time_ms,
                        app: chunk.app.to_string(),
                        index: chunk.index,
                        stream: chunk.stream,
                        line: strip(line).to_vec(),
                        cut,
                    }));
                }
            }
            self.ring.push_chunk(chunk, time_ms);
            *delivered |= TO_RING;
        }
        true
    }
}

/// A line of the ring as the control protocol carries it: text (invalid UTF-8 replaced),
/// a cut piece marked as on stdout.
pub(super) fn log_line(l: RingLine) -> LogLine {
    let mut line = String::from_utf8_lossy(&l.line).into_owned();
    if l.cut {
        line.push_str(CUT_MARK);
    }
    LogLine {
        time_ms: l.time_ms,
        app: l.app,
        index: l.index,
        stream: l.stream.as_str().to_string(),
        line,
    }
}

impl Runtime {
    /// supervise is leaving and every instance has ended: read each pipe to its end, so
    /// that no line is lost, but wait for a slow stdout at most as long as the longest
    /// `stop_timeout` (a stuck one loses what is left). Returns that deadline, which the
    /// writers' last flush shares.
    pub(super) fn drain_pipes(&mut self) -> Instant {
        let longest = self.desired.eco.apps.iter().map(|a| a.stop_timeout).max();
        let deadline = Instant::now() + longest.unwrap_or(self.desired.eco.settings.stop_timeout);
        let mut events = Events::with_capacity(64);
        self.pipes
            .drain_all(self.poll.registry(), &mut sinks!(self));
        while !self.pipes.is_empty() {
            self.flush_followers();
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let room = sinks!(self).room();
            let timeout = if self.pipes.busy(room) {
                Duration::ZERO
            } else {
                deadline - now
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
            for event in events.iter() {
                if self.pipes.owns(event.token()) {
                    self.pipes
                        .readable(self.poll.registry(), event.token(), &mut sinks!(self));
                }
            }
            self.pipes.resume(self.poll.registry(), &mut sinks!(self));
        }
        self.flush_followers();
        deadline
    }
}

/// Time the writers get to write out what they hold at exit: what is left before
/// `deadline`, and at least a moment.
pub(super) fn time_left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(500))
}
