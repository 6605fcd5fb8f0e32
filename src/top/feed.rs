//! Everything that reaches the view, as messages on one channel, each from its own
//! thread so that none waits for another: samples of the running supervisor (about once
//! a second, and at once when the selection changes), key presses and resizes, signals,
//! and the answers to commands. The view's thread blocks on the channel and does not
//! poll.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyEvent};
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::iterator::Signals;

use super::model::Sample;
use crate::control::client;
use crate::control::protocol::{Request, Response, Target};

/// How often the view samples.
pub const PERIOD: Duration = Duration::from_secs(1);
/// How long one status or logs request may take before the sample counts as failed.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);
/// A rolling reload waits for every new instance to be ready; the server answers then.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
/// How many log lines of the selected instance are fetched (more than a screen shows).
const LOG_LINES: usize = 200;

pub enum Msg {
    Sample(Result<Sample, String>),
    Key(KeyEvent),
    Resize,
    /// Reading the terminal failed: it is gone.
    InputEnded(String),
    Signal(i32),
    /// A command's answer: its message, or why it failed.
    Done(Result<String, String>),
}

/// One request's answer, an error answer as `Err`.
fn ask(socket: &Path, request: Request, timeout: Duration) -> Result<Response, String> {
    match client::request(socket, request, timeout) {
        Ok(r) if r.ok => Ok(r),
        Ok(r) => Err(r.error.unwrap_or_else(|| "the request failed".into())),
        Err(e) => Err(e.to_string()),
    }
}

/// `status`, and the last lines of `target`. A `tick` is a periodic sample (it counts
/// in the history); others answer a change of selection or a command.
pub fn sample(socket: &Path, target: Option<&Target>, tick: bool) -> Result<Sample, String> {
    let report = ask(socket, Request::Status, SAMPLE_TIMEOUT)?
        .status
        .unwrap_or_default();
    let logs = match target {
        Some(t) => {
            let request = Request::Logs {
                target: t.clone(),
                lines: LOG_LINES,
                follow: false,
                stream: None,
            };
            // The instance may have gone since the status: no lines, not a failure.
            let lines = ask(socket, request, SAMPLE_TIMEOUT)
                .map(|r| r.lines)
                .unwrap_or_default();
            Some((t.clone(), lines))
        }
        None => None,
    };
    Ok(Sample { report, logs, tick })
}

/// Sample every [`PERIOD`], and at once when `wake` brings a new log target. Ends when
/// the view has gone.
pub fn spawn_sampler(socket: PathBuf, tx: Sender<Msg>, wake: Receiver<Option<Target>>) {
    thread::spawn(move || {
        let mut target: Option<Target> = None;
        let mut next = Instant::now() + PERIOD;
        loop {
            match wake.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Ok(t) => {
                    target = t;
                    if tx
                        .send(Msg::Sample(sample(&socket, target.as_ref(), false)))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    next += PERIOD;
                    // Late (a slow answer, a suspended process): no burst to catch up.
                    next = next.max(Instant::now());
                    if tx
                        .send(Msg::Sample(sample(&socket, target.as_ref(), true)))
                        .is_err()
                    {
                        return;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    });
}

/// Keys and resizes. crossterm's read blocks until there is input.
pub fn spawn_input(tx: Sender<Msg>) {
    thread::spawn(move || loop {
        let msg = match event::read() {
            Ok(Event::Key(key)) => Msg::Key(key),
            Ok(Event::Resize(..)) => Msg::Resize,
            Ok(_) => continue,
            Err(e) => Msg::InputEnded(e.to_string()),
        };
        let ended = matches!(msg, Msg::InputEnded(_));
        if tx.send(msg).is_err() || ended {
            return;
        }
    });
}

/// SIGHUP (the terminal closed), SIGINT, SIGTERM, SIGQUIT: the view restores the
/// terminal and exits instead of dying with it in raw mode.
pub fn spawn_signals(tx: Sender<Msg>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGHUP, SIGINT, SIGTERM, SIGQUIT])?;
    thread::spawn(move || {
        for signal in signals.forever() {
            if tx.send(Msg::Signal(signal)).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// Send a command in the background; its answer comes back as [`Msg::Done`].
pub fn spawn_command(socket: PathBuf, request: Request, tx: Sender<Msg>) {
    thread::spawn(move || {
        let done = ask(&socket, request, COMMAND_TIMEOUT).map(|r| r.message.unwrap_or_default());
        let _ = tx.send(Msg::Done(done));
    });
}
