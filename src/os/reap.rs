//! The only waiter in the process. Everything supervise starts, and every orphan the
//! kernel hands it (as PID 1 or as child subreaper), is collected here with one
//! `waitpid(-1, WNOHANG)` loop; the caller routes each pid through its own table.
//! Nothing else may wait: a second waiter steals exit statuses (see DESIGN.md §B).

use nix::sys::signal::Signal;

use crate::state::ExitStatus;

/// Collect every child that has ended, until none is left to collect now.
pub fn reap_all() -> Vec<(i32, ExitStatus)> {
    let mut reaped = Vec::new();
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: `status` is a valid out-pointer for the duration of the call.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid > 0 {
            let exit = if libc::WIFEXITED(status) {
                ExitStatus::Code(libc::WEXITSTATUS(status))
            } else if libc::WIFSIGNALED(status) {
                let signo = libc::WTERMSIG(status);
                match Signal::try_from(signo) {
                    Ok(sig) => ExitStatus::Signal(sig),
                    // Real-time signals have no `Signal` variant: keep the shell's code.
                    Err(_) => ExitStatus::Code(128 + signo),
                }
            } else {
                continue;
            };
            reaped.push((pid, exit));
            continue;
        }
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        // 0: children exist but none has ended; -1/ECHILD: no children at all.
        return reaped;
    }
}

/// Not PID 1: ask the kernel to hand us the orphans of our descendants, so
/// double-forked daemons are still reaped (and found at shutdown).
pub fn become_subreaper() -> std::io::Result<()> {
    Ok(nix::sys::prctl::set_child_subreaper(true)?)
}
