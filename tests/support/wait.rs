//! Deadlines: every wait in the tests is a condition polled against one of these, never a
//! sleep that hopes the machine was fast enough.

use std::thread;
use std::time::{Duration, Instant};

/// The default deadline of every wait: generous, the machine has 2 noisy cores.
pub const LONG: Duration = Duration::from_secs(10);
/// Poll interval inside wait loops (a poll, not a synchronisation sleep).
pub(super) const POLL: Duration = Duration::from_millis(5);

/// Poll `cond` until it holds or `timeout` passes; returns whether it held.
pub fn poll_until(mut cond: impl FnMut() -> bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}
