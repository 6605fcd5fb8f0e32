//! The pid files `supervise-testapp --pid-dir` writes: `APP.INST.pid` (the current run),
//! `APP.INST.starts` (one line per start), `APP.INST.childN.pid` and `orphan.<pid>`.

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::{Harness, LONG};

impl Harness {
    /// The pid the test app wrote to `pids/APP.INST.pid`, if any yet.
    pub fn read_pid(&self, app: &str, instance: u32) -> Option<i32> {
        read_pid_file(&self.pid_dir.join(format!("{app}.{instance}.pid")))
    }

    /// Wait for `pids/APP.INST.pid` and return its pid.
    #[track_caller]
    pub fn wait_pid(&self, app: &str, instance: u32) -> i32 {
        let mut pid = None;
        self.wait_for(
            || {
                pid = self.read_pid(app, instance);
                pid.is_some()
            },
            LONG,
        );
        pid.unwrap()
    }

    /// Wait until `pids/APP.INST.pid` holds a pid other than `old`; return it.
    #[track_caller]
    pub fn wait_pid_change(&self, app: &str, instance: u32, old: i32, timeout: Duration) -> i32 {
        let mut pid = None;
        self.wait_for(
            || {
                pid = self.read_pid(app, instance).filter(|&p| p != old);
                pid.is_some()
            },
            timeout,
        );
        pid.unwrap()
    }

    /// Every pid that `pids/APP.INST.starts` lists (one per start).
    pub fn starts(&self, app: &str, instance: u32) -> Vec<i32> {
        fs::read_to_string(self.pid_dir.join(format!("{app}.{instance}.starts")))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Pids of the `--fork` children of APP.INST found so far.
    pub fn child_pids(&self, app: &str, instance: u32) -> Vec<i32> {
        let prefix = format!("{app}.{instance}.child");
        let mut pids = Vec::new();
        for entry in fs::read_dir(&self.pid_dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(&prefix) && name.ends_with(".pid") {
                if let Some(pid) = read_pid_file(&entry.path()) {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    /// Files named `orphan.<pid>` in the pid directory: pids of the orphans.
    pub fn orphan_pids(&self) -> Vec<i32> {
        fs::read_dir(&self.pid_dir)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                name.strip_prefix("orphan.")?.parse().ok()
            })
            .collect()
    }
}

pub(super) fn read_pid_file(path: &Path) -> Option<i32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}
