//! The state a user sees for an instance (SPEC section 4), derived in one place from the
//! observed facts.

use std::time::Instant;

use super::{Instance, Next, Phase};
use crate::config::ReadySpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Starting,
    /// Running and ready.
    Running,
    Stopping,
    Backoff,
    Errored,
    Exited,
    Stopped,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Backoff => "backoff",
            State::Errored => "errored",
            State::Exited => "exited",
            State::Stopped => "stopped",
        }
    }
}

/// The state of a slot's instance (`None`: never started), by its app's readiness kind;
/// `held` when a user stopped it.
pub fn state_of(
    inst: Option<&Instance>,
    ready: Option<&ReadySpec>,
    held: bool,
    now: Instant,
) -> State {
    let Some(inst) = inst else {
        return if held {
            State::Stopped
        } else {
            State::Starting
        };
    };
    match &inst.phase {
        // Being stopped, or the app said STOPPING=1 itself.
        Phase::Running(run) if run.stop.is_some() || run.notify_stopping => State::Stopping,
        Phase::Running(_) if inst.is_ready(ready, now) => State::Running,
        Phase::Running(_) => State::Starting,
        // Leftovers of its group.
        Phase::Ended(ended) if ended.leftovers.is_some() => State::Stopping,
        Phase::Ended(ended) => match ended.next {
            Next::Errored => State::Errored,
            Next::Finished(_) => State::Exited,
            _ if held => State::Stopped,
            Next::Restart(_) => State::Backoff,
            Next::Stopped if ended.stop.is_some() => State::Stopped,
            Next::Stopped => State::Starting,
        },
        Phase::New if held => State::Stopped,
        Phase::New => State::Starting,
    }
}
