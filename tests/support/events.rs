//! Supervise's event lines by position and by the pid they name.

use super::Harness;

/// Position of the first event matching `pred`.
pub fn event_index(h: &Harness, pred: impl Fn(&str) -> bool) -> Option<usize> {
    h.events().iter().position(|t| pred(t))
}

/// Positions of every event matching `pred`.
pub fn event_indices(h: &Harness, pred: impl Fn(&str) -> bool) -> Vec<usize> {
    h.events()
        .iter()
        .enumerate()
        .filter(|(_, t)| pred(t))
        .map(|(i, _)| i)
        .collect()
}

/// The pid in an event `NAME started (pid N)`.
pub fn started_pid(event: &str) -> i32 {
    event
        .rsplit_once("(pid ")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {event:?}"))
}

/// Every pid `NAME started (pid N)` reported, in order.
pub fn started_pids(h: &Harness, instance: &str) -> Vec<i32> {
    let prefix = format!("{instance} started (pid ");
    h.events()
        .iter()
        .filter(|t| t.starts_with(&prefix))
        .map(|t| started_pid(t))
        .collect()
}
