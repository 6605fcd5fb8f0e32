//! Declarative reload: when the ecosystem file (or an `env_file`) changes, or on
//! SIGHUP, read it again, validate it whole, and swap the desired state; `plan` then
//! converges. An invalid version changes nothing and is reported. File events are
//! recorded as facts and debounced by `plan` (which asks for `Action::Reload`), and a
//! version whose bytes did not change is skipped, so editors that save three times, and
//! ConfigMap swaps, cause one reload at most.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use super::{app_names, Runtime};
use crate::config::{self, Ecosystem};
use crate::plan::diff;
use crate::state::{Fact, Reading};
use crate::watch::AppWatch;

/// Folders and files every `watch` ignores, beside the app's own `ignore` list.
const ALWAYS_IGNORED: &[&str] = &[".git", "node_modules"];

pub(super) struct Reloader {
    path: PathBuf,
    /// Of the last version read, valid or not: the same bytes are not read twice.
    fingerprint: u64,
}

impl Reloader {
    pub(super) fn new(eco: &Ecosystem) -> Reloader {
        Reloader {
            path: eco.path.clone(),
            fingerprint: fingerprint(&eco.path, env_files(eco)),
        }
    }
}

fn env_files(eco: &Ecosystem) -> impl Iterator<Item = &Path> {
    eco.apps.iter().filter_map(|a| a.env_file.as_deref())
}

/// A hash of the file's bytes and of every env_file's bytes (an unreadable file counts
/// as its error, so it still differs from any content). Read bounded and never from a
/// FIFO or device, as the loader does: this runs on the loop.
fn fingerprint<'a>(path: &'a Path, env_files: impl Iterator<Item = &'a Path>) -> u64 {
    use config::file::{read_bounded, MAX_ECOSYSTEM_BYTES, MAX_ENV_FILE_BYTES};
    let mut h = DefaultHasher::new();
    let files = std::iter::once((path, MAX_ECOSYSTEM_BYTES))
        .chain(env_files.map(|p| (p, MAX_ENV_FILE_BYTES)));
    for (p, limit) in files {
        match read_bounded(p, limit) {
            Ok(bytes) => bytes.hash(&mut h),
            Err(e) => e.to_string().hash(&mut h),
        }
    }
    h.finish()
}

/// One line saying what a new version changes, app by app.
pub fn describe_changes(old: &Ecosystem, new: &Ecosystem) -> String {
    let mut parts = Vec::new();
    for app in &new.apps {
        let Some(before) = old.app(&app.name) else {
            parts.push(format!("{} added", app.name));
            continue;
        };
        let change = diff::diff(before, app);
        if !change.replaced.is_empty() {
            parts.push(format!(
                "{} replaced ({} changed, {} update)",
                app.name,
                change.replaced.join(", "),
                match app.update {
                    crate::config::UpdateStrategy::Rolling => "rolling",
                    crate::config::UpdateStrategy::Recreate => "recreate",
                }
            ));
        }
        if let Some((from, to)) = change.scaled {
            parts.push(format!("{} scaled {from} -> {to}", app.name));
        }
        if !change.policy.is_empty() {
            parts.push(format!("{} policy updated in place", app.name));
        }
    }
    for app in &old.apps {
        if new.app(&app.name).is_none() {
            parts.push(format!("{} removed", app.name));
        }
    }
    if parts.is_empty() {
        "no app changed".to_string()
    } else {
        parts.join("; ")
    }
}

impl Runtime {
    /// The watcher woke the loop: record which files changed.
    pub(super) fn on_files_changed(&mut self) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        let (config, apps) = watcher.take();
        if config || !apps.is_empty() {
            let apps = apps.into_iter().collect();
            self.record(Fact::FilesChanged { config, apps });
        }
    }

    /// A version of the file, read and checked as a reload reads it (the addresses
    /// supervise already listens on count as free), without applying anything.
    pub(super) fn read_version(&self, path: &Path) -> Result<Ecosystem, config::ConfigErrors> {
        let sockets = &self.sockets;
        let can_bind =
            |addr: &crate::config::ListenAddr| crate::os::sockets::can_bind(addr, Some(sockets));
        config::load_checked(path, Some(&can_bind))
    }

    /// SIGHUP: the same reload, at once.
    pub(super) fn reload_now(&mut self) {
        self.output.event("received SIGHUP, reloading");
        self.reload_file(true);
    }

    /// Read the file again and apply it if valid; the reading is recorded as a fact.
    pub(super) fn reload_file(&mut self, asked: bool) {
        if self.observed.shutdown.is_some() {
            return;
        }
        let path = self.reload.path.clone();
        let seen = fingerprint(&path, env_files(&self.desired.eco));
        if seen == self.reload.fingerprint {
            if asked {
                self.output
                    .event(&format!("{} has not changed", path.display()));
            }
            self.record(Fact::ConfigRead(Reading::Unchanged));
            return;
        }
        self.reload.fingerprint = seen;
        let loaded = self.read_version(&path).and_then(|eco| {
            // Bind what the new version adds (all or nothing) before touching anything.
            match self.sockets.sync(&super::listen_addrs(&eco)) {
                Ok(()) => Ok(eco),
                Err(errors) => Err(config::ConfigErrors(
                    errors
                        .into_iter()
                        .map(|(_, e)| config::ConfigError {
                            file: path.clone(),
                            line: 1,
                            column: 1,
                            key_path: "listen".into(),
                            message: format!("cannot listen on {e}"),
                        })
                        .collect(),
                )),
            }
        });
        match loaded {
            Err(errors) => {
                for e in &errors.0 {
                    self.output.event(&format!("config error: {e}"));
                }
                self.output
                    .event("the new version is refused; the running apps are left as they are");
                self.record(Fact::ConfigRead(Reading::Refused(errors.to_string())));
            }
            Ok(eco) => {
                let summary = describe_changes(&self.desired.eco, &eco);
                let (old, new) = (&self.desired.eco.settings, &eco.settings);
                if old.socket != new.socket
                    || old.log_format != new.log_format
                    || old.log_timestamps != new.log_timestamps
                    || old.http != new.http
                {
                    self.output.event(
                        "settings.socket, log_format, log_timestamps and http take effect \
                         when supervise is restarted",
                    );
                }
                // Keep the fingerprint of what was read *before* parsing: re-reading now
                // could record a save that landed meanwhile as applied, and lose it.
                self.output.set_apps(&app_names(&eco));
                self.launcher.resolve_users(&eco);
                self.desired.eco = eco;
                self.record(Fact::ConfigRead(Reading::Applied));
                self.update_watches();
                self.ensure_notify_socket();
                self.update_files();
                let apps = &self.desired.eco;
                self.ring.retain_apps(|name| apps.app(name).is_some());
                self.output
                    .event(&format!("reloaded {}: {summary}", path.display()));
            }
        }
    }

    /// Point the watcher at the file's folder, the env files' folders, and the apps'
    /// `watch` paths of the current version.
    pub(super) fn update_watches(&mut self) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        let eco = &self.desired.eco;
        let files: Vec<PathBuf> = std::iter::once(eco.path.as_path())
            .chain(env_files(eco))
            .map(Path::to_path_buf)
            .collect();
        let log_dir = eco.settings.log_dir.clone();
        let apps = eco
            .apps
            .iter()
            .filter(|a| !a.watch.is_empty())
            .map(|a| {
                let ignore = ALWAYS_IGNORED
                    .iter()
                    .copied()
                    .chain(a.ignore.iter().map(String::as_str))
                    .filter_map(|p| glob::Pattern::new(p).ok())
                    .collect();
                AppWatch {
                    app: a.name.clone(),
                    paths: a.watch.clone(),
                    ignore,
                    ignore_dirs: log_dir.iter().cloned().collect(),
                }
            })
            .collect();
        for error in watcher.set(files, apps) {
            self.output.event(&error);
        }
    }
}
