//! File watching. The ecosystem file and its env_files are watched through their
//! folders (non-recursive), never as files: editors that save by rename, `sed -i`, and
//! the Kubernetes ConfigMap `..data` symlink swap all replace the inode, which a watch
//! on the file itself would lose. Those folders are read by the loop itself
//! (`os::folder_watch`), asking the kernel only for finished writes, renames, creations
//! and deletions: apps often write beside their ecosystem file (a database, a pid file,
//! their output), and neither their writes nor their opens may cost supervise a
//! wake-up. Only events naming the file itself (or an env_file), or a `..`-name of a
//! ConfigMap's swap, count. Whether the file really changed is decided later by
//! comparing its bytes.
//!
//! The apps' `watch` paths (recursive, every modification counts) use notify, which
//! runs its own thread, made only while some app has such paths; its callback only
//! raises flags and wakes the loop, so an event storm can neither block that thread
//! nor flood the loop: many events become one flag, and the loop debounces with a
//! deadline of its own.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token, Waker};
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::os::folder_watch::FolderWatch;

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

/// What notify's thread routes: the apps' paths, and what never counts.
#[derive(Default)]
struct Routes {
    apps: Vec<AppWatch>,
    /// supervise's own output files: its writes there are not edits.
    own: Vec<PathBuf>,
}

/// supervise's stdout and stderr when they are files. `supervise eco.toml > out.log`
/// in a watched folder would otherwise have every write of its output restart the
/// app that watches it.
fn own_output_files() -> Vec<PathBuf> {
    [1, 2]
        .iter()
        .filter_map(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok())
        .filter(|path| path.is_absolute() && path.is_file())
        .collect()
}

struct Shared {
    apps_changed: Mutex<BTreeSet<String>>,
    routes: Mutex<Routes>,
    waker: Arc<Waker>,
}

pub struct Watcher {
    /// The folders of the ecosystem file and its env_files, polled by the loop.
    folders: FolderWatch,
    /// The ecosystem file and its env_files.
    config_files: Vec<PathBuf>,
    config_changed: bool,
    /// For the apps' `watch` paths, while any app has some.
    apps: Option<RecommendedWatcher>,
    shared: Arc<Shared>,
    /// What `apps` watches (empty while there is none).
    watched: Vec<PathBuf>,
}

impl Watcher {
    /// A watcher whose folder events come to the loop as `token` on `registry`, and
    /// whose app events wake `waker`.
    pub fn new(waker: Arc<Waker>, registry: &Registry, token: Token) -> io::Result<Watcher> {
        let folders = FolderWatch::new()?;
        registry.register(&mut SourceFd(&folders.fd()), token, Interest::READABLE)?;
        let shared = Arc::new(Shared {
            apps_changed: Mutex::new(BTreeSet::new()),
            routes: Mutex::new(Routes {
                own: own_output_files(),
                ..Routes::default()
            }),
            waker,
        });
        Ok(Watcher {
            folders,
            config_files: Vec::new(),
            config_changed: false,
            apps: None,
            shared,
            watched: Vec::new(),
        })
    }

    /// Watch exactly these files (the ecosystem file and its env_files, each through
    /// its folder) and app paths; called at start and after each reload. Errors are
    /// returned as readable text.
    pub fn set(&mut self, config_files: Vec<PathBuf>, apps: Vec<AppWatch>) -> Vec<String> {
        let mut folders: Vec<PathBuf> = config_files
            .iter()
            .filter_map(|f| f.parent())
            .map(Path::to_path_buf)
            .collect();
        folders.sort();
        folders.dedup();
        let mut errors: Vec<String> = self
            .folders
            .set(&folders)
            .into_iter()
            .map(|(path, e)| describe_error(&path, e))
            .collect();
        self.config_files = config_files;
        let mut wanted: Vec<PathBuf> = apps.iter().flat_map(|a| a.paths.clone()).collect();
        wanted.sort();
        wanted.dedup();
        if wanted.is_empty() {
            self.apps = None;
        } else if self.apps.is_none() {
            let shared = self.shared.clone();
            match notify::recommended_watcher(move |res: notify::Result<Event>| {
                if let Ok(event) = res {
                    route(&shared, &event);
                }
            }) {
                Ok(watcher) => self.apps = Some(watcher),
                Err(e) => errors.push(format!("cannot watch the apps' paths: {e}")),
            }
        }
        if let Some(inner) = &mut self.apps {
            for path in self.watched.iter().filter(|p| !wanted.contains(p)) {
                let _ = inner.unwatch(path);
            }
            let before = std::mem::take(&mut self.watched);
            for path in wanted {
                if !before.contains(&path) {
                    if let Err(e) = inner.watch(&path, RecursiveMode::Recursive) {
                        // Not watched: the next reload tries it again.
                        errors.push(describe_notify_error(&path, e));
                        continue;
                    }
                }
                self.watched.push(path);
            }
        } else {
            self.watched.clear();
        }
        let mut routes = self.shared.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.apps = apps;
        errors
    }

    /// The loop's token for the folders turned readable: note whether the ecosystem
    /// may have changed.
    pub fn read_folders(&mut self) {
        let changes = self.folders.read();
        self.config_changed |= changes.lost
            || changes
                .paths
                .iter()
                .any(|p| concerns_config(&self.config_files, p));
    }

    /// What changed since the last call: the config folder, and which apps' paths.
    pub fn take(&mut self) -> (bool, BTreeSet<String>) {
        let config = std::mem::take(&mut self.config_changed);
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
    // inotify also reports opens and reads; only changes count.
    if let EventKind::Access(kind) = event.kind {
        if kind != AccessKind::Close(AccessMode::Write) {
            return;
        }
    }
    let routes = shared.routes.lock().unwrap_or_else(|e| e.into_inner());
    let mut wake = false;
    for path in event.paths.iter().filter(|p| !routes.own.contains(p)) {
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

/// Whether a change of `path` may change the ecosystem: the file or an env_file
/// itself, or in their folder a name beginning with `..` (a Kubernetes ConfigMap
/// swaps its `..data` symlink; the file is a link through it).
fn concerns_config(config_files: &[PathBuf], path: &Path) -> bool {
    config_files.iter().any(|file| {
        file == path
            || (file.parent() == path.parent()
                && path
                    .file_name()
                    .is_some_and(|n| n.as_encoded_bytes().starts_with(b"..")))
    })
}

fn describe_error(path: &Path, e: io::Error) -> String {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        no_space(path)
    } else {
        format!("cannot watch {}: {e}", path.display())
    }
}

fn describe_notify_error(path: &Path, e: notify::Error) -> String {
    let full = matches!(&e.kind, notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::ENOSPC))
        || matches!(e.kind, notify::ErrorKind::MaxFilesWatch);
    if full {
        no_space(path)
    } else {
        format!("cannot watch {}: {e}", path.display())
    }
}

fn no_space(path: &Path) -> String {
    format!(
        "cannot watch {}: the inotify watch limit is reached; raise it with \
         `sysctl fs.inotify.max_user_watches=524288`",
        path.display()
    )
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
            apps_changed: Mutex::new(BTreeSet::new()),
            routes: Mutex::new(Routes {
                apps: vec![app(&["/srv/conf"], &[])],
                own: vec![PathBuf::from("/srv/conf/supervise.log")],
            }),
            waker,
        };
        let modified = |path: &str| {
            Event::new(EventKind::Modify(notify::event::ModifyKind::Any)).add_path(path.into())
        };
        route(&shared, &modified("/srv/conf/supervise.log"));
        assert!(shared.apps_changed.lock().unwrap().is_empty());
        route(&shared, &modified("/srv/conf/eco.toml"));
        assert!(shared.apps_changed.lock().unwrap().contains("web"));
    }

    #[test]
    fn only_the_file_its_env_files_and_a_configmap_swap_concern_the_config() {
        let files: Vec<PathBuf> = vec!["/srv/conf/eco.toml".into(), "/srv/env/web.env".into()];
        for edit in [
            "/srv/conf/eco.toml",
            "/srv/env/web.env",
            "/srv/conf/..data",
            "/srv/conf/..2026_11_30_12_00_00.123",
        ] {
            assert!(concerns_config(&files, Path::new(edit)), "{edit}");
        }
        for other in [
            "/srv/conf/app.db",
            "/srv/conf/starts",
            "/srv/conf/.eco.toml.swp",
            "/srv/env/eco.toml",
            "/srv/other/..data",
        ] {
            assert!(!concerns_config(&files, Path::new(other)), "{other}");
        }
    }

    #[test]
    fn the_folder_is_read_by_the_loop_and_only_the_file_counts() {
        let dir = std::env::temp_dir().join(format!("supervise-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let eco = dir.join("eco.toml");
        std::fs::write(&eco, "a").unwrap();
        let mut poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let mut watcher = Watcher::new(waker, poll.registry(), mio::Token(1)).unwrap();
        assert!(watcher.set(vec![eco.clone()], vec![]).is_empty());
        assert!(watcher.apps.is_none(), "no thread without app paths");
        std::fs::write(dir.join("app.db"), "x").unwrap();
        let mut events = mio::Events::with_capacity(4);
        poll.poll(&mut events, Some(std::time::Duration::from_secs(5)))
            .unwrap();
        assert!(events.iter().any(|e| e.token() == mio::Token(1)));
        watcher.read_folders();
        assert_eq!(watcher.take(), (false, BTreeSet::new()));
        std::fs::write(&eco, "b").unwrap();
        watcher.read_folders();
        assert_eq!(watcher.take(), (true, BTreeSet::new()));
        assert_eq!(watcher.take(), (false, BTreeSet::new()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_app_path_that_could_not_be_watched_is_tried_again_at_the_next_set() {
        let dir =
            std::env::temp_dir().join(format!("supervise-watch-retry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let eco = dir.join("eco.toml");
        let src = dir.join("src");
        let mut poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let mut watcher = Watcher::new(waker, poll.registry(), mio::Token(1)).unwrap();
        let apps = || vec![app(&[src.to_str().unwrap()], &[])];
        let errors = watcher.set(vec![eco.clone()], apps());
        assert!(
            errors.len() == 1 && errors[0].starts_with("cannot watch"),
            "{errors:?}"
        );
        std::fs::create_dir(&src).unwrap();
        assert_eq!(watcher.set(vec![eco.clone()], apps()), Vec::<String>::new());
        std::fs::write(src.join("main.js"), "x").unwrap();
        // The watcher's thread wakes the waker (token 0) when it has noted the edit.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut events = mio::Events::with_capacity(4);
        while !watcher.take().1.contains("web") {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            assert!(!left.is_zero(), "the edit was not seen");
            poll.poll(&mut events, Some(left)).unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
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
