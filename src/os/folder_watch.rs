//! Watching the folders of the ecosystem file and its env_files, read by the loop.
//!
//! Only what can leave a file with new bytes is asked for: a write finished (the close
//! after writing), a rename into or out of the folder, a creation, a deletion, and the
//! folder itself going away. notify (kept for the apps' `watch` paths) also asks for
//! every open and every write of every file in the folder, and wakes its thread for
//! each: an app writing its database or output beside the ecosystem file, or a script
//! polling a file there, cost supervise a thread wake-up per `write(2)` or `open(2)`,
//! on the CPU the apps needed. Here the kernel drops those events, and the descriptor
//! is polled by the loop itself: no thread.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// What a read found: the paths named, and whether events were lost (the queue
/// overflowed, or a folder went away), in which case any file may have changed.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub paths: Vec<PathBuf>,
    pub lost: bool,
}

pub struct FolderWatch {
    inotify: Inotify,
    folders: HashMap<WatchDescriptor, PathBuf>,
}

fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

impl FolderWatch {
    pub fn new() -> io::Result<FolderWatch> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        Ok(FolderWatch {
            inotify,
            folders: HashMap::new(),
        })
    }

    /// The descriptor to poll for reading (edge-triggered is fine: `read` drains it).
    pub fn fd(&self) -> RawFd {
        self.inotify.as_fd().as_raw_fd()
    }

    /// Watch exactly these folders; the ones that cannot be watched, with why.
    pub fn set(&mut self, wanted: &[PathBuf]) -> Vec<(PathBuf, io::Error)> {
        let gone: Vec<WatchDescriptor> = self
            .folders
            .iter()
            .filter(|(_, folder)| !wanted.contains(folder))
            .map(|(wd, _)| *wd)
            .collect();
        for wd in gone {
            self.folders.remove(&wd);
            let _ = self.inotify.rm_watch(wd);
        }
        let mut errors = Vec::new();
        for folder in wanted {
            if self.folders.values().any(|f| f == folder) {
                continue;
            }
            match self.inotify.add_watch(folder.as_path(), mask()) {
                Ok(wd) => {
                    // The same folder under another name (a symlink) has the same wd.
                    self.folders.entry(wd).or_insert_with(|| folder.clone());
                }
                Err(e) => errors.push((folder.clone(), io::Error::from(e))),
            }
        }
        errors
    }

    /// Everything that happened since the last read.
    pub fn read(&mut self) -> Changes {
        let mut changes = Changes::default();
        loop {
            let events = match self.inotify.read_events() {
                Ok(events) if !events.is_empty() => events,
                Err(Errno::EINTR) => continue,
                // Drained (EAGAIN), or an error no retry would mend.
                _ => return changes,
            };
            for event in events {
                if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    changes.lost = true;
                    continue;
                }
                let gone = AddWatchFlags::IN_DELETE_SELF
                    | AddWatchFlags::IN_MOVE_SELF
                    | AddWatchFlags::IN_IGNORED;
                if event.mask.intersects(gone) {
                    // Watched no more (IN_IGNORED follows): the next `set` adds it again.
                    changes.lost |= self.folders.remove(&event.wd).is_some();
                    continue;
                }
                if let (Some(folder), Some(name)) = (self.folders.get(&event.wd), event.name) {
                    changes.paths.push(folder.join(name));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("supervise-fw-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn finished_writes_and_renames_count_opens_and_reads_do_not() {
        let dir = folder("kinds");
        std::fs::write(dir.join("eco.toml"), "a").unwrap();
        let mut watch = FolderWatch::new().unwrap();
        assert!(watch.set(std::slice::from_ref(&dir)).is_empty());
        // Opens, reads and a write still open are not asked for.
        let _ = std::fs::read(dir.join("eco.toml")).unwrap();
        let mut open = std::fs::File::create(dir.join("app.db")).unwrap();
        let created = watch.read();
        assert_eq!(created.paths, vec![dir.join("app.db")]);
        io::Write::write_all(&mut open, b"more").unwrap();
        assert_eq!(watch.read(), Changes::default());
        drop(open);
        assert_eq!(watch.read().paths, vec![dir.join("app.db")]);
        std::fs::write(dir.join(".eco.tmp"), "b").unwrap();
        std::fs::rename(dir.join(".eco.tmp"), dir.join("eco.toml")).unwrap();
        let saved = watch.read().paths;
        assert!(saved.contains(&dir.join("eco.toml")), "{saved:?}");
        std::fs::remove_dir_all(&dir).unwrap();
        let gone = watch.read();
        assert!(gone.lost, "{gone:?}");
        // Watched no more: set adds it again when it is back.
        std::fs::create_dir_all(&dir).unwrap();
        assert!(watch.set(std::slice::from_ref(&dir)).is_empty());
        std::fs::write(dir.join("eco.toml"), "c").unwrap();
        assert!(watch.read().paths.contains(&dir.join("eco.toml")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn set_drops_folders_no_longer_wanted_and_reports_missing_ones() {
        let (a, b) = (folder("a"), folder("b"));
        let mut watch = FolderWatch::new().unwrap();
        assert!(watch.set(&[a.clone(), b.clone()]).is_empty());
        assert!(watch.set(std::slice::from_ref(&b)).is_empty());
        std::fs::write(a.join("x"), "1").unwrap();
        std::fs::write(b.join("y"), "1").unwrap();
        assert_eq!(watch.read().paths, vec![b.join("y"), b.join("y")]);
        let missing = a.join("nope");
        let errors = watch.set(std::slice::from_ref(&missing));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, missing);
        for d in [a, b] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}
