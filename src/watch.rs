//! File watching. notify runs its own thread; its callback only raises flags and wakes
//! the loop, so an event storm can neither block that thread nor flood the loop: many
//! events become one flag, and the loop debounces with a deadline of its own.
//!
//! The ecosystem file is watched through its folder (non-recursive), never as a file:
//! editors that save by rename, `sed -i`, and the Kubernetes ConfigMap `..data` symlink
//! swap all replace the inode, which a watch on the file itself would lose. Only events
//! naming the file itself (or an env_file), or a `..`-name of a ConfigMap's swap, count:
//! apps often write beside their ecosystem file (a database, a pid file, their output),
//! and each such write would otherwise have the loop read the file again. Whether the
//! file really changed is decided later by comparing its bytes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mio::Waker;
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

/// One app's `watch` paths and `ignore` patterns.
#[derive(Debug, Clone, PartialEq)]
pub struct AppWatch {
    pub app: String,
    pub paths: Vec<PathBuf>,
    pub ignore: Vec<glob::Pattern>,
    /// Absolute folders never watched (the log folder).
    pub ignore_dirs: Vec<PathBuf>,
}

impl AppWatch {
    /// Whether a change of `path` concerns this app.
    pub fn matches(&self, path: &Path) -> bool {
        let Some(root) = self.paths.iter().find(|p| path.starts_with(p)) else {
            return false;
        };
        if self.ignore_dirs.iter().any(|d| path.starts_with(d)) {
            return false;
        }
        let rel = path.strip_prefix(root).unwrap_or(path);
        !self.ignore.iter().any(|pat| {
            pat.matches_path(rel)
                || rel
                    .components()
                    .any(|c| pat.matches(&c.as_os_str().to_string_lossy()))
        })
    }
}

#[derive(Default)]
struct Routes {
    /// The ecosystem file and its env_files, each watched through its folder.
    config_files: Vec<PathBuf>,
    apps: Vec<AppWatch>,
    /// supervise's own output files: its writes there are not edits.
    own: Vec<PathBuf>,
}

/// supervise's stdout and stderr when they are files. `supervise eco.toml > out.log`
/// in the file's folder would otherwise have every write of its output wake the loop
/// and read the file again (a crash loop paid a third more CPU per start).
fn own_output_files() -> Vec<PathBuf> {
    [1, 2]
        .iter()
        .filter_map(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok())
        .filter(|path| path.is_absolute() && path.is_file())
        .collect()
}

struct Shared {
    config_changed: AtomicBool,
    apps_changed: Mutex<BTreeSet<String>>,
    routes: Mutex<Routes>,
    waker: Arc<Waker>,
}

pub struct Watcher {
    inner: RecommendedWatcher,
    shared: Arc<Shared>,
    watched: Vec<(PathBuf, RecursiveMode)>,
}

impl Watcher {
    pub fn new(waker: Arc<Waker>) -> notify::Result<Watcher> {
        let shared = Arc::new(Shared {
            config_changed: AtomicBool::new(false),
            apps_changed: Mutex::new(BTreeSet::new()),
            routes: Mutex::new(Routes {
                own: own_output_files(),
                ..Routes::default()
            }),
            waker,
        });
        let handler_shared = shared.clone();
        let inner = notify::recommended_watcher(move |res: notify::Result<Event>| {
            if let Ok(event) = res {
                route(&handler_shared, &event);
            }
        })?;
        Ok(Watcher {
            inner,
            shared,
            watched: Vec::new(),
        })
    }

    /// Watch exactly these files (the ecosystem file and its env_files, each through
    /// its folder) and app paths; called at start and after each reload. Errors are
    /// returned as readable text.
    pub fn set(&mut self, config_files: Vec<PathBuf>, apps: Vec<AppWatch>) -> Vec<String> {
        let mut wanted: Vec<(PathBuf, RecursiveMode)> = config_files
            .iter()
            .filter_map(|f| f.parent())
            .map(|d| (d.to_path_buf(), RecursiveMode::NonRecursive))
            .collect();
        wanted.sort();
        for app in &apps {
            for p in &app.paths {
                wanted.push((p.clone(), RecursiveMode::Recursive));
            }
        }
        wanted.dedup();
        let mut errors = Vec::new();
        for (path, mode) in &self.watched {
            if !wanted.contains(&(path.clone(), *mode)) {
                let _ = self.inner.unwatch(path);
            }
        }
        for (path, mode) in &wanted {
            if self.watched.contains(&(path.clone(), *mode)) {
                continue;
            }
            if let Err(e) = self.inner.watch(path, *mode) {
                errors.push(describe_error(path, e));
            }
        }
        self.watched = wanted;
        let mut routes = self.shared.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.config_files = config_files;
        routes.apps = apps;
        errors
    }

    /// What changed since the last call: the config folder, and which apps' paths.
    pub fn take(&self) -> (bool, BTreeSet<String>) {
        let config = self.shared.config_changed.swap(false, Ordering::AcqRel);
        let apps = std::mem::take(
            &mut *self
                .shared
                .apps_changed
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        (config, apps)
    }
}

fn route(shared: &Shared, event: &Event) {
    // inotify also reports opens and reads (supervise reading its own file would
    // otherwise trigger itself); only changes count.
    if let EventKind::Access(kind) = event.kind {
        if kind != AccessKind::Close(AccessMode::Write) {
            return;
        }
    }
    let routes = shared.routes.lock().unwrap_or_else(|e| e.into_inner());
    let mut wake = false;
    for path in event.paths.iter().filter(|p| !routes.own.contains(p)) {
        if routes.concern_config(path) && !shared.config_changed.swap(true, Ordering::AcqRel) {
            wake = true;
        }
        for app in routes.apps.iter().filter(|a| a.matches(path)) {
            let mut changed = shared
                .apps_changed
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            wake |= changed.insert(app.app.clone());
        }
    }
    drop(routes);
    if wake {
        let _ = shared.waker.wake();
    }
}

impl Routes {
    /// Whether a change of `path` may change the ecosystem: the file or an env_file
    /// itself, or in their folder a name beginning with `..` (a Kubernetes ConfigMap
    /// swaps its `..data` symlink; the file is a link through it).
    fn concern_config(&self, path: &Path) -> bool {
        self.config_files.iter().any(|file| {
            file == path
                || (file.parent() == path.parent()
                    && path
                        .file_name()
                        .is_some_and(|n| n.as_encoded_bytes().starts_with(b"..")))
        })
    }
}

fn describe_error(path: &Path, e: notify::Error) -> String {
    let no_space = matches!(&e.kind, notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::ENOSPC))
        || matches!(e.kind, notify::ErrorKind::MaxFilesWatch);
    if no_space {
        format!(
            "cannot watch {}: the inotify watch limit is reached; raise it with \
             `sysctl fs.inotify.max_user_watches=524288`",
            path.display()
        )
    } else {
        format!("cannot watch {}: {e}", path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(paths: &[&str], ignore: &[&str]) -> AppWatch {
        AppWatch {
            app: "web".into(),
            paths: paths.iter().map(PathBuf::from).collect(),
            ignore: ignore
                .iter()
                .map(|p| glob::Pattern::new(p).unwrap())
                .collect(),
            ignore_dirs: vec![PathBuf::from("/srv/app/src/logs")],
        }
    }

    #[test]
    fn supervises_own_output_file_is_not_an_edit() {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let shared = Shared {
            config_changed: AtomicBool::new(false),
            apps_changed: Mutex::new(BTreeSet::new()),
            routes: Mutex::new(Routes {
                config_files: vec![PathBuf::from("/srv/conf/eco.toml")],
                apps: vec![app(&["/srv/conf"], &[])],
                own: vec![PathBuf::from("/srv/conf/supervise.log")],
            }),
            waker,
        };
        let modified = |path: &str| {
            Event::new(EventKind::Modify(notify::event::ModifyKind::Any)).add_path(path.into())
        };
        route(&shared, &modified("/srv/conf/supervise.log"));
        assert!(!shared.config_changed.load(Ordering::Acquire));
        assert!(shared.apps_changed.lock().unwrap().is_empty());
        route(&shared, &modified("/srv/conf/eco.toml"));
        assert!(shared.config_changed.load(Ordering::Acquire));
        assert!(shared.apps_changed.lock().unwrap().contains("web"));
    }

    #[test]
    fn only_the_file_its_env_files_and_a_configmap_swap_concern_the_config() {
        let routes = Routes {
            config_files: vec!["/srv/conf/eco.toml".into(), "/srv/env/web.env".into()],
            ..Routes::default()
        };
        for edit in [
            "/srv/conf/eco.toml",
            "/srv/env/web.env",
            "/srv/conf/..data",
            "/srv/conf/..2026_11_30_12_00_00.123",
        ] {
            assert!(routes.concern_config(Path::new(edit)), "{edit}");
        }
        for other in [
            "/srv/conf/app.db",
            "/srv/conf/starts",
            "/srv/conf/.eco.toml.swp",
            "/srv/env/eco.toml",
            "/srv/other/..data",
        ] {
            assert!(!routes.concern_config(Path::new(other)), "{other}");
        }
    }

    #[test]
    fn watched_paths_and_ignores() {
        let a = app(&["/srv/app/src"], &[".git", "node_modules", "*.log"]);
        assert!(a.matches(Path::new("/srv/app/src/main.js")));
        assert!(a.matches(Path::new("/srv/app/src/lib/x.js")));
        assert!(!a.matches(Path::new("/srv/app/other.js")));
        assert!(!a.matches(Path::new("/srv/app/src/node_modules/x/index.js")));
        assert!(!a.matches(Path::new("/srv/app/src/.git/HEAD")));
        assert!(!a.matches(Path::new("/srv/app/src/debug.log")));
        assert!(!a.matches(Path::new("/srv/app/src/logs/web.0.out")));
        let b = app(&["/srv/app/src"], &["lib/generated/*"]);
        assert!(!b.matches(Path::new("/srv/app/src/lib/generated/a.js")));
        assert!(b.matches(Path::new("/srv/app/src/lib/a.js")));
    }
}
