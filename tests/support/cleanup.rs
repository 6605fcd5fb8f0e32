//! Nothing outlives a test: on `Drop` the harness freezes supervise, SIGKILLs its whole
//! tree and every test process that names the test's directory, and, if the test failed,
//! prints supervise's output and the ecosystem files.

use std::collections::BTreeSet;
use std::fs;
use std::thread;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::pids::read_pid_file;
use super::{cmdline, descendants, processes_with_cmdline, Harness};

impl Harness {
    fn cleanup(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        let root = running.child.id() as i32;
        let exited = running.status.is_some() || matches!(running.child.try_wait(), Ok(Some(_)));
        // Freeze the tree first, so nothing respawns or forks while it is being killed.
        let mut victims = BTreeSet::new();
        if !exited {
            let _ = kill(Pid::from_raw(root), Signal::SIGSTOP);
        }
        // Once supervise has been waited for, its pid may belong to someone else: only
        // walk its tree while it is still ours.
        for _ in 0..if exited { 0 } else { 3 } {
            for pid in descendants(root) {
                if victims.insert(pid) {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
                }
            }
        }
        // Test processes that left the tree (orphans of an exited supervise): they all
        // carry the test directory on their command line or are in its pid files.
        let marker = self.dir.path().to_string_lossy().to_string();
        for pid in processes_with_cmdline(|args| args.iter().any(|a| a.contains(&marker))) {
            victims.insert(pid);
        }
        for pid in self.pid_file_pids() {
            if cmdline(pid).is_some_and(|args| {
                args.first()
                    .is_some_and(|a| a.ends_with("supervise-testapp"))
            }) {
                victims.insert(pid);
            }
        }
        victims.remove(&(std::process::id() as i32));
        for &pid in &victims {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        if !exited {
            let _ = kill(Pid::from_raw(root), Signal::SIGKILL);
        }
        let _ = running.child.wait();
        drop(running.held_stdout.take());
    }

    /// Every pid in the pid directory's `*.pid` files and orphan markers.
    fn pid_file_pids(&self) -> Vec<i32> {
        let mut pids = self.orphan_pids();
        if let Ok(entries) = fs::read_dir(&self.pid_dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().ends_with(".pid") {
                    pids.extend(read_pid_file(&entry.path()));
                }
            }
        }
        pids
    }

    fn report_failure(&self) {
        let mut report =
            String::from("\n======== supervise output (stderr lines tagged) ========\n");
        for line in self.all_lines() {
            let mut text = line.text;
            if text.len() > 300 {
                let mut cut = 300;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text = format!("{}... ({} bytes)", &text[..cut], text.len());
            }
            if line.stderr {
                report.push_str("[stderr] ");
            }
            report.push_str(&text);
            report.push('\n');
        }
        for file in &self.files {
            report.push_str(&format!("======== {} ========\n", file.display()));
            report.push_str(&fs::read_to_string(file).unwrap_or_default());
            report.push('\n');
        }
        report.push_str("========\n");
        eprintln!("{report}");
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let failed = thread::panicking();
        self.cleanup();
        if failed {
            self.report_failure();
        }
    }
}
