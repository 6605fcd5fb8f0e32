//! A start in flight: the child `spawn::start` cloned without waiting for its exec,
//! and its report pipe. The pipe is close-on-exec, so its end comes at the exec or the
//! exit; an errno written before it says why the exec failed. Only at that end does the
//! child leave supervise's memory, so only then are its image and stack freed.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::unistd::Pid;

use super::spawn::ChildMemory;

/// An instance cloned by [`start`](super::spawn::start), its exec not yet confirmed. The child writes its
/// errno into the report pipe if it fails; the pipe's end (it is close-on-exec, so the
/// end comes at the exec or the exit) says it no longer runs in supervise's memory,
/// and only then are its image and stack freed.
pub struct Starting {
    pid: i32,
    /// Already collected by the reaper.
    reaped: bool,
    report: OwnedFd,
    errno: Vec<u8>,
    child: Option<ChildMemory>,
}

impl Starting {
    pub(super) fn new(pid: i32, report: OwnedFd, child: ChildMemory) -> Starting {
        Starting {
            pid,
            reaped: false,
            report,
            errno: Vec::new(),
            child: Some(child),
        }
    }

    /// The report pipe's read end (non-blocking), to register in the poll.
    pub fn fd(&self) -> RawFd {
        self.report.as_raw_fd()
    }

    /// The outcome once known: Ok once the child has exec'ed (or died before, of a
    /// signal: its exit is reaped as any other), or the error its exec or preparation
    /// met (it then exits with 127). None while it is still preparing.
    pub fn outcome(&mut self) -> Option<io::Result<()>> {
        let mut buf = [0u8; 8];
        loop {
            match nix::unistd::read(&self.report, &mut buf) {
                Ok(0) => break,
                Ok(n) => self.errno.extend(&buf[..n]),
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return None,
            }
        }
        // The end of the report: the child has left supervise's memory.
        self.child = None;
        let result = self.result();
        if result.is_err() && !self.reaped {
            // It wrote its errno and closed its descriptors: it is exiting. Collect it
            // now, as a waiting spawn does, so the reaper never hears of it.
            let _ = nix::sys::wait::waitpid(Pid::from_raw(self.pid), None);
        }
        Some(result)
    }

    /// The child has been reaped: its outcome (what it wrote is all there).
    pub fn finish(mut self) -> io::Result<()> {
        self.reaped = true;
        self.outcome().unwrap_or_else(|| self.result())
    }

    fn result(&self) -> io::Result<()> {
        match <[u8; 4]>::try_from(self.errno.get(..4).unwrap_or_default()) {
            Ok(bytes) => Err(io::Error::from_raw_os_error(i32::from_ne_bytes(bytes))),
            Err(_) => Ok(()),
        }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        // The report never ended: the child may still run on this memory. Keep it.
        if let Some(child) = self.child.take() {
            std::mem::forget(child);
        }
    }
}
