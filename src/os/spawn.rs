//! Starting one instance: fork/exec in a session of its own, output on fresh pipes.
//!
//! Runs on the loop thread, which is also the only waiter (`reap`): std's `spawn`
//! waits for a child whose exec failed, and that must not race another waiter. We keep
//! std's `Child` only to take its pipes; dropping it neither waits nor kills.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::config::AppSpec;

pub struct Spawned {
    pub pid: i32,
    /// Read ends, non-blocking.
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// The environment an instance gets beside supervise's own: the app's `env`, then
/// `SUPERVISE_APP`, `SUPERVISE_INSTANCE` and `instance_var`.
pub fn instance_env(spec: &AppSpec, index: u32) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.push(("SUPERVISE_APP".into(), spec.name.clone()));
    env.push(("SUPERVISE_INSTANCE".into(), index.to_string()));
    if let Some(var) = &spec.instance_var {
        env.push((var.clone(), index.to_string()));
    }
    env
}

pub fn spawn(spec: &AppSpec, index: u32) -> io::Result<Spawned> {
    let argv = &spec.command.argv;
    let mut cmd = Command::new(&spec.command.program);
    if let Some(arg0) = argv.first() {
        cmd.arg0(arg0);
    }
    cmd.args(argv.iter().skip(1))
        .current_dir(&spec.cwd)
        .envs(instance_env(spec, index))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs in the forked child of a multi-threaded process, so it
    // may only make async-signal-safe calls: no allocation, no locks, no logging.
    // setsid(2) and sigprocmask(2) are such calls and touch only stack data.
    unsafe {
        cmd.pre_exec(|| {
            // A session of its own: the instance is one process group, stopped as one,
            // and detached from supervise's terminal (Ctrl-C reaches supervise only).
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            // std keeps the parent's signal mask in the child; start from an empty one.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let pid = child.id() as i32;
    let stdout: OwnedFd = child.stdout.take().expect("stdout was piped").into();
    let stderr: OwnedFd = child.stderr.take().expect("stderr was piped").into();
    set_nonblocking(&stdout)?;
    set_nonblocking(&stderr)?;
    Ok(Spawned {
        pid,
        stdout,
        stderr,
    })
}

/// Only ever on our own pipe ends: never on an inherited descriptor such as stdout,
/// whose open file description is shared with the terminal or the container runtime.
fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
