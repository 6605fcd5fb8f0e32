//! supervise's own open-file limit. Each instance costs supervise a few descriptors
//! (its stdout and stderr pipes, its log files), so the soft `RLIMIT_NOFILE` that
//! systemd and most shells hand out (1024) runs out at a few hundred instances. At
//! start supervise raises its soft limit to the hard one, as systemd and Go do, and
//! remembers the soft limit it was given so that children get that one back: apps
//! (select(2) users among them) see the limit they would have had without supervise.

use std::sync::OnceLock;

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// (soft, hard) as supervise found them, once it has raised its soft limit.
static INHERITED: OnceLock<(u64, u64)> = OnceLock::new();

/// Raise the soft open-file limit to the hard limit. Call once, early.
pub fn raise_nofile() {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        let _ = INHERITED.set((soft, hard));
    }
}

/// The (soft, hard) limit children should get back, when supervise changed its own.
pub fn inherited_nofile() -> Option<(u64, u64)> {
    INHERITED.get().copied()
}

/// The most descriptors supervise can have open: its hard limit (it raises its soft
/// limit to it at start).
pub fn nofile_ceiling() -> u64 {
    getrlimit(Resource::RLIMIT_NOFILE).map_or(u64::MAX, |(_, hard)| hard)
}
