//! `supervise logs` and `signal`, answered by the loop: the last lines of a target from
//! the ring, with supervise's own events about it (started, exited with, restarting,
//! errored) in time order; then, for `--follow`, every new line and event as it comes.

use nix::sys::signal::Signal;

use super::Runtime;
use crate::control::protocol::{LogLine, LogStream, Response, Target};
use crate::control::server::ClientId;
use crate::logs::recent::RecentEvent;
use crate::os;

/// A `logs --follow` client and what it asked for.
pub(super) struct Follower {
    pub client: ClientId,
    pub target: Target,
    pub stream: Option<LogStream>,
    /// The last event it has been sent (or that its answer covered).
    pub seen: u64,
}

impl Follower {
    fn wants(&self, l: &LogLine) -> bool {
        self.target.matches(&l.app, l.index) && self.stream.is_none_or(|s| s.as_str() == l.stream)
    }
}

/// supervise's events about an instance of `target`, as log lines of stream
/// `supervise`.
fn event_lines(events: Vec<RecentEvent>, target: &Target) -> Vec<LogLine> {
    events
        .into_iter()
        .filter_map(|e| {
            let (app, index) = e.about()?;
            target.matches(app, index).then(|| LogLine {
                time_ms: e.time_ms,
                app: app.to_string(),
                index,
                stream: "supervise".into(),
                line: e.text.clone(),
            })
        })
        .collect()
}

impl Runtime {
    pub(super) fn answer_logs(
        &mut self,
        client: ClientId,
        target: Target,
        lines: usize,
        follow: bool,
        stream: Option<LogStream>,
    ) {
        if let Err(e) = self.resolve(&target) {
            self.reply(client, Response::error(e));
            return;
        }
        // The ring is bounded per instance: asking for all of it is bounded too.
        let mut answer: Vec<LogLine> = self
            .ring
            .last(|app, index| target.matches(app, index), usize::MAX)
            .into_iter()
            .map(super::sinks::log_line)
            .filter(|l| stream.is_none_or(|s| s.as_str() == l.stream))
            .collect();
        let (events, seen) = self.output.recent_events(0);
        if stream.is_none() {
            answer.extend(event_lines(events, &target));
            answer.sort_by_key(|l| l.time_ms);
        }
        let answer = answer.split_off(answer.len().saturating_sub(lines));
        let answered = self.reply(
            client,
            Response {
                ok: true,
                lines: answer,
                ..Default::default()
            },
        );
        if follow && answered {
            self.control.followers.push(Follower {
                client,
                target,
                stream,
                seen,
            });
        }
    }

    /// Send what `logs --follow` clients asked for: new lines, then new events.
    pub(super) fn flush_followers(&mut self) {
        if self.control.followers.is_empty() {
            self.control.outbox.clear();
            return;
        }
        let lines = std::mem::take(&mut self.control.outbox);
        let oldest = self.control.followers.iter().map(|f| f.seen).min();
        let (events, last) = self.output.recent_events(oldest.unwrap_or(0));
        let Some(server) = &mut self.control.server else {
            return;
        };
        let registry = self.poll.registry();
        self.control.followers.retain_mut(|f| {
            let mut new_events = Vec::new();
            if f.stream.is_none() {
                let unseen = events.iter().filter(|e| e.seq > f.seen).cloned().collect();
                new_events = event_lines(unseen, &f.target);
            }
            f.seen = last;
            lines
                .iter()
                .chain(&new_events)
                .filter(|l| f.wants(l))
                .all(|l| server.send_line(registry, f.client, l))
        });
    }

    pub(super) fn signal_target(&mut self, signal: Signal, target: &Target) -> Response {
        let ids = match self.resolve(target) {
            Ok(ids) => ids,
            Err(e) => return Response::error(e),
        };
        let mut sent = Vec::new();
        for id in ids {
            if let Some(pgid) = self
                .observed
                .instances
                .get(&id)
                .and_then(crate::state::Instance::pid)
            {
                if os::signal_group(pgid, signal).is_ok() {
                    sent.push(format!("{id} (pid {pgid})"));
                }
            }
        }
        if sent.is_empty() {
            return Response::error(format!("{target}: nothing is running to signal"));
        }
        let text = format!("sent {} to {}", signal.as_str(), sent.join(", "));
        self.output.event(&text);
        Response::message(text)
    }
}
