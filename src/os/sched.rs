//! supervise runs as SCHED_BATCH: woken, it never preempts the app on its CPU.
//!
//! The same weight and share of the CPU as before (SCHED_BATCH keeps the nice value);
//! the only difference is at a wake-up. A normal thread woken by a pipe or a signal
//! takes the CPU from the task running there at once; a batch thread waits for that
//! task to block or for its slice to end (a few milliseconds at most, and only when
//! every CPU is busy). That task is nearly always one of ours: an instance dying (it
//! closes its pipes, then exits: the loop now runs once, with the pipes' ends and
//! SIGCHLD together, instead of three times in the middle of the exit), a new instance
//! just past its exec (the report of the exec no longer interrupts it), an app writing
//! its output. A respawn went from 1.06x to 1.00x of a C loop that only waits and
//! forks. When a CPU is idle nothing changes.
//!
//! Only when supervise was started as SCHED_OTHER: any other policy was chosen by
//! whoever started it, and is kept for supervise and its apps alike. The apps get
//! SCHED_OTHER back in the child, before their exec.

use std::sync::atomic::{AtomicBool, Ordering};

static BATCH: AtomicBool = AtomicBool::new(false);

/// Make the calling thread SCHED_BATCH if it is SCHED_OTHER; threads it starts after
/// inherit the policy. Call first, on the loop thread.
pub fn become_batch() {
    // SAFETY: a query and a change of the calling thread's own policy.
    let batch = unsafe {
        // Priority 0, and zero in what musl adds to the struct.
        let param: libc::sched_param = std::mem::zeroed();
        libc::sched_getscheduler(0) == libc::SCHED_OTHER
            && libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) == 0
    };
    BATCH.store(batch, Ordering::Relaxed);
}

/// Whether children set SCHED_OTHER back before their exec.
pub fn children_reset() -> bool {
    BATCH.load(Ordering::Relaxed)
}
