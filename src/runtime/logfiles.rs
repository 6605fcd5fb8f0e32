//! The per-instance files of `log_dir`: started with the loop, and followed on reload.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use mio::Waker;

use super::Runtime;
use crate::config::Settings;
use crate::logs::files::{FileSettings, LogFiles};

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
}
