//! supervise's own recent events, kept for `supervise logs`: what happened to an
//! instance (started, exited with, restarting, errored) shows beside its output. Bounded
//! by count, so a crash loop cannot grow it.

use std::collections::VecDeque;

/// Events kept, the oldest dropped first.
pub const MAX_EVENTS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentEvent {
    /// Increases by one per event: `since(seq)` gives what came after.
    pub seq: u64,
    /// Unix epoch, milliseconds.
    pub time_ms: u64,
    pub text: String,
}

impl RecentEvent {
    /// The instance an event is about, when its text starts with one: `web.0 started
    /// (pid 12)`, `web.0 (old instance, pid 9) exited with code 0`.
    pub fn about(&self) -> Option<(&str, u32)> {
        let word = self.text.split_whitespace().next()?;
        let (app, index) = word.rsplit_once('.')?;
        Some((app, index.parse().ok()?))
    }
}

#[derive(Debug, Default)]
pub struct RecentEvents {
    seq: u64,
    items: VecDeque<RecentEvent>,
}

impl RecentEvents {
    pub fn push(&mut self, time_ms: u64, text: &str) {
        self.seq += 1;
        if self.items.len() == MAX_EVENTS {
            self.items.pop_front();
        }
        self.items.push_back(RecentEvent {
            seq: self.seq,
            time_ms,
            text: text.to_owned(),
        });
    }

    /// The events after `seq`, oldest first.
    pub fn since(&self, seq: u64) -> Vec<RecentEvent> {
        let skip = self.items.partition_point(|e| e.seq <= seq);
        self.items.range(skip..).cloned().collect()
    }

    /// The sequence number of the last event (0 before any).
    pub fn last_seq(&self) -> u64 {
        self.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_order_and_attributed() {
        let mut r = RecentEvents::default();
        for i in 0..MAX_EVENTS + 5 {
            r.push(i as u64, &format!("web.{} started (pid {i})", i % 3));
        }
        let all = r.since(0);
        assert_eq!(all.len(), MAX_EVENTS);
        assert_eq!(all[0].seq, 6);
        assert_eq!(r.since(r.last_seq() - 2).len(), 2);
        assert_eq!(all[0].about(), Some(("web", 2)));
        let e = |t: &str| RecentEvent {
            seq: 1,
            time_ms: 0,
            text: t.into(),
        };
        assert_eq!(e("my.app.1 exited").about(), Some(("my.app", 1)));
        assert_eq!(e("received SIGHUP, reloading").about(), None);
        assert_eq!(e("web.x is odd").about(), None);
    }
}
