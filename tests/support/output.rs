//! What supervise prints: every line of its stdout and stderr, collected by one reader
//! thread per stream, and the waits on it (a condition variable, never a sleep).

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{poll_until, Harness};

/// One line supervise wrote, on its stdout or (tagged) its stderr.
#[derive(Debug, Clone)]
pub struct Line {
    pub stderr: bool,
    pub text: String,
}

#[derive(Default)]
pub(super) struct Output {
    pub(super) lines: Mutex<Vec<Line>>,
    pub(super) changed: Condvar,
    /// Readers that reached end of file.
    pub(super) closed: Mutex<usize>,
    pub(super) closed_changed: Condvar,
}

/// The text of a supervise event line (`supervise | <text>`), if it is one.
pub fn event_text(line: &str) -> Option<&str> {
    let (left, right) = line.split_once(" | ")?;
    if left.split_whitespace().last() == Some("supervise") {
        Some(right)
    } else {
        None
    }
}

/// `(instance name, text)` of an instance output line (`web.0    | <text>`), if it is one.
pub fn instance_line(line: &str) -> Option<(&str, &str)> {
    let (left, right) = line.split_once(" | ")?;
    let name = left.split_whitespace().last()?;
    if name == "supervise" {
        None
    } else {
        Some((name, right))
    }
}

impl Harness {
    /// Every line so far, stdout and stderr.
    pub fn all_lines(&self) -> Vec<Line> {
        self.output.lines.lock().unwrap().clone()
    }

    /// stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.output
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| !l.stderr)
            .map(|l| l.text.clone())
            .collect()
    }

    /// supervise's stderr lines so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.output
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.stderr)
            .map(|l| l.text.clone())
            .collect()
    }

    /// The texts of supervise's event lines so far, in order.
    pub fn events(&self) -> Vec<String> {
        self.lines()
            .iter()
            .filter_map(|l| event_text(l).map(str::to_string))
            .collect()
    }

    /// The output texts of one instance (`web.0`) so far, in order.
    pub fn instance_output(&self, name: &str) -> Vec<String> {
        self.lines()
            .iter()
            .filter_map(|l| match instance_line(l) {
                Some((n, text)) if n == name => Some(text.to_string()),
                _ => None,
            })
            .collect()
    }

    pub fn count_lines(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.lines().iter().filter(|l| pred(l)).count()
    }

    pub fn count_events(&self, pred: impl Fn(&str) -> bool) -> usize {
        self.events().iter().filter(|l| pred(l)).count()
    }

    /// Wait until `n` stdout lines match; returns the matches.
    #[track_caller]
    pub fn wait_for_lines(
        &self,
        pred: impl Fn(&str) -> bool,
        n: usize,
        timeout: Duration,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.output.lines.lock().unwrap();
        loop {
            let matches: Vec<String> = lines
                .iter()
                .filter(|l| !l.stderr && pred(&l.text))
                .map(|l| l.text.clone())
                .collect();
            if matches.len() >= n {
                return matches;
            }
            let now = Instant::now();
            if now >= deadline {
                drop(lines);
                panic!(
                    "timed out after {timeout:?} waiting for {n} matching line(s), found {}",
                    matches.len()
                );
            }
            lines = self
                .output
                .changed
                .wait_timeout(lines, (deadline - now).min(Duration::from_millis(100)))
                .unwrap()
                .0;
        }
    }

    /// Wait for the first stdout line matching `pred`; returns it.
    #[track_caller]
    pub fn wait_for_line(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        self.wait_for_lines(pred, 1, timeout).remove(0)
    }

    /// Wait for a supervise event whose text matches; returns the text.
    #[track_caller]
    pub fn wait_for_event(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let line = self.wait_for_line(|l| event_text(l).is_some_and(&pred), timeout);
        event_text(&line).unwrap().to_string()
    }

    /// Wait for `n` events matching; returns their texts.
    #[track_caller]
    pub fn wait_for_events(
        &self,
        pred: impl Fn(&str) -> bool,
        n: usize,
        timeout: Duration,
    ) -> Vec<String> {
        self.wait_for_lines(|l| event_text(l).is_some_and(&pred), n, timeout)
            .iter()
            .map(|l| event_text(l).unwrap().to_string())
            .collect()
    }

    /// Wait for an output line of instance `name` whose text matches; returns the text.
    #[track_caller]
    pub fn wait_for_output(
        &self,
        name: &str,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> String {
        let line = self.wait_for_line(
            |l| matches!(instance_line(l), Some((n, text)) if n == name && pred(text)),
            timeout,
        );
        instance_line(&line).unwrap().1.to_string()
    }

    /// Poll `cond` until it holds.
    #[track_caller]
    pub fn wait_for(&self, mut cond: impl FnMut() -> bool, timeout: Duration) {
        if !poll_until(&mut cond, timeout) {
            panic!("timed out after {timeout:?} waiting for a condition");
        }
    }
}

pub(super) fn spawn_reader(stream: impl Read + Send + 'static, stderr: bool, output: Arc<Output>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => {
                    *output.closed.lock().unwrap() += 1;
                    output.closed_changed.notify_all();
                    break;
                }
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                    }
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    output.lines.lock().unwrap().push(Line { stderr, text });
                    output.changed.notify_all();
                }
            }
        }
    });
}
