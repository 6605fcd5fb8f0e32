//! Processes as `/proc` shows them: state, parent, group, session, argv, descendants.

use std::fs;
use std::path::{Path, PathBuf};

use nix::sys::signal::kill;
use nix::unistd::Pid;

/// The fields of `/proc/PID/stat` the tests need.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub pid: i32,
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
}

pub fn stat(pid: i32) -> Option<Stat> {
    stat_file(pid, &format!("/proc/{pid}/stat"))
}

fn stat_file(pid: i32, path: &str) -> Option<Stat> {
    let text = fs::read_to_string(path).ok()?;
    // `comm` is in parentheses and may hold spaces or parentheses: split after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    Some(Stat {
        pid,
        state,
        ppid,
        pgrp,
        session,
    })
}

/// Every process now.
pub fn all_stats() -> Vec<Stat> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .collect()
}

/// The process still runs: one of its threads has not finished exiting.
///
/// The leader's own state is not enough. A multi-threaded process killed by a signal
/// shows its leader as a zombie while its other threads are still on their way out,
/// holding the process's files: a thread of the test app blocked in `accept` on the
/// shared listening socket can still take a connection then, and its exit resets it.
/// Once every thread is a zombie or gone, the files are closed (threads close them
/// before they turn zombie).
pub fn alive(pid: i32) -> bool {
    if kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return stat(pid).is_some_and(|s| s.state != 'Z');
    };
    tasks.flatten().any(|task| {
        let path = task.path().join("stat");
        stat_file(pid, &path.to_string_lossy()).is_some_and(|s| !matches!(s.state, 'Z' | 'X'))
    })
}

/// The process is gone entirely (reaped): not even a zombie.
pub fn gone(pid: i32) -> bool {
    stat(pid).is_none()
}

pub fn children_of(ppid: i32) -> Vec<i32> {
    all_stats()
        .into_iter()
        .filter(|s| s.ppid == ppid)
        .map(|s| s.pid)
        .collect()
}

pub fn zombies_with_parent(ppid: i32) -> Vec<i32> {
    all_stats()
        .into_iter()
        .filter(|s| s.ppid == ppid && s.state == 'Z')
        .map(|s| s.pid)
        .collect()
}

/// Every descendant of `root` (not `root` itself), by following ppid links.
pub fn descendants(root: i32) -> Vec<i32> {
    let stats = all_stats();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for s in &stats {
            if s.ppid == parent && !found.contains(&s.pid) {
                found.push(s.pid);
            }
        }
        i += 1;
    }
    found.remove(0);
    found
}

/// argv of a process (None for kernel threads, zombies and vanished processes).
pub fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    if raw.is_empty() {
        return None;
    }
    Some(
        raw.split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

/// Pids of every live process whose argv satisfies `pred`.
pub fn processes_with_cmdline(pred: impl Fn(&[String]) -> bool) -> Vec<i32> {
    all_stats()
        .into_iter()
        .filter(|s| s.state != 'Z')
        .filter(|s| cmdline(s.pid).is_some_and(|args| pred(&args)))
        .map(|s| s.pid)
        .collect()
}

/// Pids of every live process whose `comm` (the kernel's short name) is `name`.
pub fn processes_named(name: &str) -> Vec<i32> {
    all_stats()
        .into_iter()
        .filter(|s| s.state != 'Z')
        .filter(|s| {
            fs::read_to_string(format!("/proc/{}/comm", s.pid)).is_ok_and(|c| c.trim_end() == name)
        })
        .map(|s| s.pid)
        .collect()
}

/// Whether the tests run as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The path of `program` on `PATH`, if it is there.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// `utime + stime` of a process, in clock ticks.
pub fn cpu_ticks(pid: i32) -> u64 {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &text[text.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After `comm`: state is field 3 of the line, utime 14 and stime 15.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// `VmRSS` of a process, in KiB (0 if unknown).
pub fn vm_rss_kib(pid: i32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The value of `name` in a live process's environment.
pub fn environ_var(pid: i32, name: &str) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{name}=");
    raw.split(|&b| b == 0)
        .map(|kv| String::from_utf8_lossy(kv).into_owned())
        .find_map(|kv| kv.strip_prefix(&prefix).map(str::to_string))
}

/// The `/proc/PID/task/TID/NAME` files of every thread of `pid`, as read.
fn per_thread(pid: i32, name: &str) -> Vec<String> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join(name)).ok())
        .collect()
}

/// Context switches (voluntary and not) of all the threads of `pid` so far.
pub fn context_switches(pid: i32) -> u64 {
    per_thread(pid, "status")
        .iter()
        .flat_map(|s| s.lines().filter(|l| l.contains("ctxt_switches")))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// The name (`comm`) of each thread of `pid`.
pub fn thread_names(pid: i32) -> Vec<String> {
    per_thread(pid, "comm")
        .into_iter()
        .map(|n| n.trim_end().to_string())
        .collect()
}

/// The scheduling policy of each thread of `pid` (field 41 of its stat).
pub fn thread_policies(pid: i32) -> Vec<i32> {
    per_thread(pid, "stat")
        .iter()
        .filter_map(|stat| {
            // After `comm`: state is field 3 of the line.
            let rest = &stat[stat.rfind(')')? + 2..];
            rest.split_whitespace().nth(41 - 3)?.parse().ok()
        })
        .collect()
}

/// Open file descriptors of a process (0 if it is gone).
pub fn fd_count(pid: i32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}
