//! The edges to the operating system, one job per module and no policy: the decisions
//! are made in `plan`, the loop in `runtime` calls these.

pub mod fds;
pub mod procfs;
pub mod procs;
pub mod reap;
pub mod sd_notify;
pub mod sockets;
pub mod spawn;

use nix::sys::signal::Signal;

/// Send `signal` to every process of the group `pgid`.
pub fn signal_group(pgid: i32, signal: Signal) -> std::io::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(-pgid, signal as libc::c_int) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Send `signal` to one process.
pub fn signal_process(pid: i32, signal: Signal) -> std::io::Result<()> {
    // SAFETY: as above.
    if unsafe { libc::kill(pid, signal as libc::c_int) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether any process (zombies included) is still in the group `pgid`. EPERM means
/// a member exists but changed its credentials.
pub fn group_exists(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(-pgid, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

/// The process group `pid` is in now, if it still exists.
pub fn group_of(pid: i32) -> Option<i32> {
    // SAFETY: getpgid(2) has no memory-safety preconditions.
    let pgid = unsafe { libc::getpgid(pid) };
    (pgid > 0).then_some(pgid)
}
