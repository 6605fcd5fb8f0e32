//! What the listeners that let outsiders in (the control socket, the HTTP endpoint of
//! `settings.http`) share: the descriptors supervise keeps for supervision, the spare
//! descriptor for when there is none, and how refusals are logged.
//!
//! A respawn needs a few descriptors at once (the instance's stdout and stderr pipes,
//! the report pipe of the exec), so no client may take the last [`fd_reserve`] below
//! the open-file limit. Which descriptors are in use is read from the one a listener
//! just got: accept(2) gives the lowest free one, so every one below it is in use,
//! whoever holds it (control clients, HTTP clients, instances' pipes, log files). The
//! listeners therefore count everything supervise holds together, with one number and
//! no bookkeeping between them.
//!
//! When accept(2) itself finds no descriptor (EMFILE, ENFILE), a listener gives up its
//! [`Spare`] (a descriptor kept open for that moment), accepts the newcomer on it,
//! answers and closes it, and takes the spare back: the fix of libuv and nginx. Without
//! it the newcomer would wait unanswered in the backlog, and no new event would come
//! for it (the listeners are edge-triggered).

use std::fs::File;
use std::io::{self, ErrorKind};
use std::os::fd::RawFd;

/// Descriptors below the open-file limit that clients never get: an eighth of the
/// limit, within 8..=64 (a respawn needs a few at once: pipes, the exec-error pipe).
pub fn fd_reserve(limit: u64) -> u64 {
    (limit / 8).clamp(8, 64)
}

/// Whether a client given descriptor `fd` (the lowest free one), with `room` more kept
/// free above the reserve, would take one of the descriptors supervision needs.
pub fn in_reserve(fd: RawFd, room: u64, limit: u64) -> bool {
    u64::try_from(fd).unwrap_or(0) + room + fd_reserve(limit) >= limit
}

/// The soft open-file limit (supervise raised it to the hard one at start).
pub fn soft_nofile() -> u64 {
    use nix::sys::resource::{getrlimit, Resource};
    getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft)
}

/// Whether accept(2) failed for lack of descriptors.
pub fn out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// A descriptor given up when there is no other (close-on-exec, as std opens).
/// (The default holds none.)
#[derive(Debug, Default)]
pub struct Spare(Option<File>);

impl Spare {
    pub fn open() -> Spare {
        Spare(open_null())
    }

    /// Open it again if it could not be taken back last time.
    pub fn restore(&mut self) {
        if self.0.is_none() {
            self.0 = open_null();
        }
    }

    /// Out of descriptors: give up the spare, accept the next newcomer on it with
    /// `accept`, `refuse` it for `why` (answer it; it is closed when dropped, and counted
    /// in `refusals`), then take the spare back. True if that helped: one was refused,
    /// or nobody waits any more; false if there was no spare or accept(2) failed even so.
    pub fn refuse_one<S>(
        &mut self,
        mut accept: impl FnMut() -> io::Result<S>,
        mut refuse: impl FnMut(S, &str),
        refusals: &mut Refusals,
        why: &str,
    ) -> bool {
        let Some(spare) = self.0.take() else {
            return false;
        };
        drop(spare);
        let helped = loop {
            match accept() {
                Ok(stream) => {
                    refuse(stream, why);
                    refusals.refused(why);
                    break true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        self.0 = open_null();
        helped
    }
}

/// Newcomers turned away in a row, logged at the first and when one gets in again (not
/// once per newcomer: a flood would flood the log).
#[derive(Debug)]
pub struct Refusals {
    /// "control socket", "http".
    listener: &'static str,
    count: u64,
}

impl Refusals {
    pub fn new(listener: &'static str) -> Refusals {
        Refusals { listener, count: 0 }
    }

    /// One more turned away, for `message`.
    pub fn refused(&mut self, message: &str) {
        if self.count == 0 {
            log::warn!("{}: turning newcomers away: {message}", self.listener);
        }
        self.count += 1;
    }

    /// How many were turned away since the last one got in.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// One got in.
    pub fn admitted(&mut self) {
        if self.count > 0 {
            log::info!(
                "{}: admitting newcomers again ({} turned away)",
                self.listener,
                self.count
            );
            self.count = 0;
        }
    }
}

fn open_null() -> Option<File> {
    File::open("/dev/null").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_an_eighth_within_bounds() {
        assert_eq!(fd_reserve(12), 8);
        assert_eq!(fd_reserve(96), 12);
        assert_eq!(fd_reserve(1 << 20), 64);
        // Limit 64, reserve 8: descriptor 55 is the last a client may get, 51 with
        // four kept free above the reserve.
        assert!(!in_reserve(55, 0, 64) && in_reserve(56, 0, 64));
        assert!(!in_reserve(51, 4, 64) && in_reserve(52, 4, 64));
    }
}
