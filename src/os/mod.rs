//! The edges to the operating system, one job per module and no policy: the decisions
//! are made in `plan`, the loop in `runtime` calls these.

pub mod fds;
pub mod folder_watch;
pub mod heap;
mod image;
pub mod limits;
pub mod notify_parent;
pub mod own_process;
pub mod procfs;
pub mod procs;
pub mod reap;
pub mod sched;
pub mod sd_notify;
pub mod sockets;
pub mod spawn;
mod starting;
pub mod users;

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Send `signal` to every process of the group `pgid`.
pub fn signal_group(pgid: i32, signal: Signal) -> std::io::Result<()> {
    Ok(kill(Pid::from_raw(-pgid), signal)?)
}

/// Send `signal` to one process.
pub fn signal_process(pid: i32, signal: Signal) -> std::io::Result<()> {
    Ok(kill(Pid::from_raw(pid), signal)?)
}

/// Whether any process (zombies included) is still in the group `pgid`. EPERM means
/// a member exists but changed its credentials.
pub fn group_exists(pgid: i32) -> bool {
    matches!(kill(Pid::from_raw(-pgid), None), Ok(()) | Err(Errno::EPERM))
}

/// The process group `pid` is in now, if it still exists.
pub fn group_of(pid: i32) -> Option<i32> {
    let pgid = nix::unistd::getpgid(Some(Pid::from_raw(pid)))
        .ok()?
        .as_raw();
    (pgid > 0).then_some(pgid)
}
