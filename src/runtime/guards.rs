//! Resource guards and log files: `max_memory` (sampled on a timer only while some app
//! sets it) and the per-instance files of `log_dir`.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Waker;

use super::Runtime;
use crate::config::Settings;
use crate::logs::files::{FileSettings, LogFiles};
use crate::os;
use crate::state::Who;

/// How often resident memory is compared with `max_memory`.
const MEMORY_CHECK_INTERVAL: Duration = Duration::from_secs(1);

pub(super) fn file_settings(settings: &Settings) -> Option<FileSettings> {
    Some(FileSettings {
        dir: settings.log_dir.clone()?,
        max_size: settings.log_max_size,
        keep: settings.log_keep,
        merge: settings.merge_logs,
        timestamps: settings.log_timestamps,
    })
}

pub(super) fn start_files(settings: &Settings, waker: &Arc<Waker>) -> io::Result<Option<LogFiles>> {
    match file_settings(settings) {
        Some(fs) => LogFiles::start(fs, Some(waker.clone())).map(Some),
        None => Ok(None),
    }
}

impl Runtime {
    /// After a reload: follow `log_dir` and its companions.
    pub(super) fn update_files(&mut self) {
        match (file_settings(&self.desired.eco.settings), &self.files) {
            (Some(fs), Some(files)) => files.set(fs),
            (Some(fs), None) => match LogFiles::start(fs, Some(self.waker.clone())) {
                Ok(files) => self.files = Some(files),
                Err(e) => self.output.event(&format!("cannot write log files: {e}")),
            },
            (None, Some(_)) => {
                if let Some(files) = self.files.take() {
                    files.finish(Duration::from_secs(1));
                }
            }
            (None, None) => {}
        }
    }

    /// Restart instances whose resident memory (their whole process group) passed their
    /// app's `max_memory`. No app sets it: no timer at all.
    pub(super) fn check_memory(&mut self, now: Instant) {
        let limited = self.desired.eco.apps.iter().any(|a| a.max_memory.is_some());
        if !limited {
            self.memory_check_at = None;
            return;
        }
        if self.memory_check_at.is_some_and(|at| now < at) {
            return;
        }
        self.memory_check_at = Some(now + MEMORY_CHECK_INTERVAL);
        let watched: Vec<(Who, i32, u64)> = self
            .observed
            .instances
            .values()
            .filter(|i| i.up())
            .filter_map(|i| {
                let limit = self.desired.app(&i.id.app)?.max_memory?;
                Some((Who::Slot(i.id.clone()), i.pgid?, limit))
            })
            .collect();
        if watched.is_empty() {
            return;
        }
        let pgids: Vec<i32> = watched.iter().map(|(_, g, _)| *g).collect();
        let usage = os::procfs::groups_usage(&pgids);
        for (who, pgid, limit) in watched {
            let Some(used) = usage.get(&pgid).map(|u| u.rss_bytes) else {
                continue;
            };
            if used > limit {
                let Who::Slot(id) = &who else { continue };
                self.output.event(&format!(
                    "{id} uses {} of memory, more than max_memory {}; restarting it",
                    crate::control::table::human_bytes(used),
                    crate::control::table::human_bytes(limit)
                ));
                self.stop(&who);
            }
        }
    }
}
