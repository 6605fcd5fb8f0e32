//! The last lines of every instance, kept in memory for `supervise logs`. Bounded per
//! instance by lines and bytes, so memory stays flat however chatty an app is.

use std::collections::{HashMap, VecDeque};

use crate::control::protocol::{LogLine, Target};

pub const MAX_LINES: usize = 500;
pub const MAX_BYTES: usize = 128 * 1024;

#[derive(Default)]
struct Buffer {
    lines: VecDeque<(u64, LogLine)>,
    bytes: usize,
}

#[derive(Default)]
pub struct LogRing {
    buffers: HashMap<(String, u32), Buffer>,
    seq: u64,
}

impl LogRing {
    pub fn push(&mut self, line: LogLine) {
        self.seq += 1;
        let buffer = self
            .buffers
            .entry((line.app.clone(), line.index))
            .or_default();
        buffer.bytes += line.line.len();
        buffer.lines.push_back((self.seq, line));
        while buffer.lines.len() > MAX_LINES || (buffer.bytes > MAX_BYTES && buffer.lines.len() > 1)
        {
            if let Some((_, old)) = buffer.lines.pop_front() {
                buffer.bytes -= old.line.len();
            }
        }
    }

    /// The last `n` lines of the instances `target` names, oldest first, in the order
    /// they arrived across instances.
    pub fn last(&self, target: &Target, n: usize) -> Vec<LogLine> {
        let mut found: Vec<&(u64, LogLine)> = self
            .buffers
            .iter()
            .filter(|((app, index), _)| target.matches(app, *index))
            .flat_map(|(_, b)| b.lines.iter().rev().take(n))
            .collect();
        found.sort_by_key(|(seq, _)| *seq);
        let skip = found.len().saturating_sub(n);
        found
            .into_iter()
            .skip(skip)
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Forget the buffers of apps that are gone.
    pub fn retain_apps(&mut self, keep: impl Fn(&str) -> bool) {
        self.buffers.retain(|(app, _), _| keep(app));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(app: &str, index: u32, text: &str) -> LogLine {
        LogLine {
            time_ms: 0,
            app: app.into(),
            index,
            stream: "stdout".into(),
            line: text.into(),
        }
    }

    #[test]
    fn last_lines_across_instances_in_arrival_order() {
        let mut ring = LogRing::default();
        ring.push(line("web", 0, "a"));
        ring.push(line("web", 1, "b"));
        ring.push(line("api", 0, "c"));
        ring.push(line("web", 0, "d"));
        let texts = |v: Vec<LogLine>| v.into_iter().map(|l| l.line).collect::<Vec<_>>();
        assert_eq!(texts(ring.last(&Target::All, 10)), ["a", "b", "c", "d"]);
        assert_eq!(texts(ring.last(&Target::All, 2)), ["c", "d"]);
        assert_eq!(
            texts(ring.last(&Target::App("web".into()), 10)),
            ["a", "b", "d"]
        );
        assert_eq!(
            texts(ring.last(&Target::Instance("web".into(), 0), 1)),
            ["d"]
        );
        ring.retain_apps(|a| a != "web");
        assert_eq!(texts(ring.last(&Target::All, 10)), ["c"]);
    }

    #[test]
    fn bounded_by_lines_and_bytes() {
        let mut ring = LogRing::default();
        for i in 0..(MAX_LINES * 3) {
            ring.push(line("web", 0, &i.to_string()));
        }
        let all = ring.last(&Target::All, usize::MAX);
        assert_eq!(all.len(), MAX_LINES);
        assert_eq!(all.last().unwrap().line, (MAX_LINES * 3 - 1).to_string());
        let big = "x".repeat(MAX_BYTES / 4);
        for _ in 0..10 {
            ring.push(line("web", 1, &big));
        }
        assert_eq!(ring.last(&Target::Instance("web".into(), 1), 100).len(), 4);
    }
}
