//! Reading /proc: the descendants of a process, for the final sweep at exit (PID 1
//! duties: nothing may outlive supervise, including daemons that left their group).

use std::collections::HashMap;
use std::fs;

/// The parent pid of `pid`, from /proc/PID/stat (the field after the command name,
/// which may itself contain spaces and parentheses).
pub fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// Every living descendant of `root`, children before grandchildren.
pub fn descendants(root: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(ppid) = parent_of(pid) {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![root];
    while let Some(p) = queue.pop() {
        if let Some(kids) = children.get(&p) {
            for k in kids {
                found.push(*k);
                queue.push(*k);
            }
        }
    }
    found
}
