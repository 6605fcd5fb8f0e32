//! sd_notify to supervise's own parent (systemd `Type=notify`, `podman run
//! --sdnotify=container`), when supervise was started with `NOTIFY_SOCKET`. What to say
//! is decided by `plan::readiness::announce`; this sends it, and keeps the one timer
//! the parent may ask for: `WATCHDOG=1` every half `WATCHDOG_USEC`, sent by the loop
//! itself, so a wedged loop misses it.

use std::time::Instant;

use super::Runtime;
use crate::os::notify_parent::{monotonic_usec, ParentNotifier};
use crate::plan::readiness::{announce, readiness, Announced};

pub(super) struct Parent {
    notifier: ParentNotifier,
    told: Announced,
    watchdog_at: Option<Instant>,
}

impl Parent {
    /// From supervise's environment: `None` without `NOTIFY_SOCKET`.
    pub(super) fn from_env() -> Option<Parent> {
        match ParentNotifier::from_env() {
            Ok(notifier) => notifier.map(|notifier| Parent {
                notifier,
                told: Announced::default(),
                watchdog_at: None,
            }),
            Err(e) => {
                log::warn!("NOTIFY_SOCKET is set but unusable ({e}); the parent is not told");
                None
            }
        }
    }

    /// When the next `WATCHDOG=1` is due (only when the parent asked for them).
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.watchdog_at
    }

    fn send(&self, message: &str) {
        if let Err(e) = self.notifier.send(message) {
            log::warn!("cannot notify the parent ({e})");
        }
    }
}

impl Runtime {
    /// Tell the parent what changed since it was last told; `leaving`: supervise is
    /// about to exit (it says STOPPING=1 if no signal did).
    pub(super) fn notify_parent(&mut self, now: Instant, leaving: bool) {
        let Some(parent) = &mut self.parent else {
            return;
        };
        let mut state = readiness(&self.desired, &self.observed, now);
        state.shutting_down |= leaving;
        let reloads = self.observed.reloads;
        for message in announce(&mut parent.told, &state, reloads, monotonic_usec()) {
            parent.send(&message);
        }
        if let Some(every) = parent.notifier.watchdog() {
            if parent.watchdog_at.is_none_or(|at| at <= now) && !leaving {
                parent.send("WATCHDOG=1");
                parent.watchdog_at = Some(now + every / 2);
            }
        }
    }
}
