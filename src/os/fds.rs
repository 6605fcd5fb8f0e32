//! File descriptors inherited from whoever started supervise must not leak into the
//! apps: mark every one above stderr close-on-exec before anything else runs.

use std::fs;

pub fn close_inherited_on_exec() {
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: F_GETFD/F_SETFD on a descriptor number; a closed one just fails.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// Descriptors 3..3+RESERVED_FDS are where listening sockets go in a child; also the
/// most `listen` addresses one app may have.
pub const RESERVED_FDS: usize = 32;

/// The fd floor: put /dev/null (close-on-exec) on every free descriptor in
/// 3..3+RESERVED_FDS, so that everything opened later, std's exec-error channel
/// included, lands above the range a child's sockets are moved into. Otherwise a
/// socket dup2'ed onto fd 3 could replace that channel and turn a failed exec into a
/// silent exit. Call before any thread or descriptor is created.
pub fn reserve_low_fds() {
    let Ok(null) = std::fs::File::open("/dev/null") else {
        return;
    };
    let null_fd = std::os::fd::AsRawFd::as_raw_fd(&null);
    for fd in 3..3 + RESERVED_FDS as i32 {
        // SAFETY: F_GETFD probes a descriptor number; dup3 onto a free number only.
        unsafe {
            if fd != null_fd && libc::fcntl(fd, libc::F_GETFD) < 0 {
                libc::dup3(null_fd, fd, libc::O_CLOEXEC);
            }
        }
    }
    // `null` itself sits inside the range; keep it open as one of the placeholders.
    if (null_fd as usize) < 3 + RESERVED_FDS {
        std::mem::forget(null);
    }
}
