//! File descriptors inherited from whoever started supervise must not leak into the
//! apps: mark every one above stderr close-on-exec before anything else runs.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::sync::OnceLock;

use nix::fcntl::{fcntl, FcntlArg};

pub fn close_inherited_on_exec() {
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    // SAFETY: F_GETFD/F_SETFD on descriptor numbers only (no memory is passed); one
    // that is closed meanwhile (the read_dir's own) just fails.
    unsafe {
        for fd in fds {
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
    // F_DUPFD_CLOEXEC from 0 returns the lowest free number: copy one /dev/null
    // (close-on-exec) until a copy lands above the range, keeping those inside it. One
    // open file shared by all: every clone copies supervise's descriptors and every exec
    // closes these, which costs less when they are one file than 32.
    let Ok(null) = null_reader() else {
        return;
    };
    if null.as_raw_fd() >= 3 + RESERVED_FDS as i32 {
        return;
    }
    for _ in 0..RESERVED_FDS {
        let Ok(copy) = fcntl(&null, FcntlArg::F_DUPFD_CLOEXEC(0)) else {
            break;
        };
        if copy >= 3 + RESERVED_FDS as i32 {
            let _ = nix::unistd::close(copy);
            break;
        }
    }
    let _placeholder = null.into_raw_fd();
}

/// An app's standard input: /dev/null, or in an empty root file system without /dev an
/// empty pipe; both read end of file at once. Opened once (close-on-exec) and shared by
/// every child: nothing is ever read from it, and it saves an open and a close per start.
pub fn null_input() -> std::io::Result<BorrowedFd<'static>> {
    static NULL: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(null) = NULL.get() {
        return Ok(null.as_fd());
    }
    let null = null_reader()?;
    Ok(NULL.get_or_init(|| null).as_fd())
}

/// /dev/null for reading (close-on-exec), or in an empty root file system without /dev
/// an empty pipe's read end (its write end closed): both read end of file at once.
fn null_reader() -> std::io::Result<OwnedFd> {
    match fs::File::open("/dev/null") {
        Ok(file) => Ok(file.into()),
        Err(_) => Ok(std::io::pipe()?.0.into()),
    }
}

/// Where a quiet child's output goes: /dev/null, or without /dev a pipe nobody reads
/// (writes fail with EPIPE, as they would on a closed descriptor).
pub fn null_output() -> std::io::Result<OwnedFd> {
    match fs::OpenOptions::new().write(true).open("/dev/null") {
        Ok(file) => Ok(file.into()),
        Err(_) => Ok(std::io::pipe()?.1.into()),
    }
}
