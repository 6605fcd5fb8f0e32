//! The open log files of [`super::files`]: names, the cap on open files (least recently
//! used closed first) and rotation.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::files::FileSettings;
use super::Stream;

/// Which file of an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Part {
    Out,
    Err,
    Merged,
}

impl Part {
    pub(super) fn of(stream: Stream, merge: bool) -> Part {
        match stream {
            _ if merge => Part::Merged,
            Stream::Stdout => Part::Out,
            Stream::Stderr => Part::Err,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Part::Out => "out.log",
            Part::Err => "err.log",
            Part::Merged => "log",
        }
    }
}

/// A file name: `APP.N.out.log`, `APP.N.err.log` or `APP.N.log`.
pub fn file_name(app: &str, index: u32, stream: Stream, merge: bool) -> String {
    format!("{app}.{index}.{}", Part::of(stream, merge).suffix())
}

pub(super) struct OpenFile {
    pub(super) file: File,
    /// Bytes in the file, as far as we know.
    pub(super) size: u64,
    /// `Files::clock` at the last use, for the LRU.
    pub(super) used: u64,
    /// Renaming it failed: let it grow rather than retry at every line.
    pub(super) no_rotate: bool,
}

/// The open files, by app, then by instance and part.
pub(super) struct Files {
    pub(super) settings: FileSettings,
    pub(super) map: HashMap<String, HashMap<(u32, Part), OpenFile>>,
    /// Number of files in `map`.
    pub(super) open: usize,
    pub(super) max_open: usize,
    pub(super) clock: u64,
}

impl Files {
    pub(super) fn path(&self, app: &str, index: u32, part: Part) -> PathBuf {
        self.settings
            .dir
            .join(format!("{app}.{index}.{}", part.suffix()))
    }

    /// The open file, opened (and created) if needed.
    pub(super) fn get(&mut self, app: &str, index: u32, part: Part) -> io::Result<&mut OpenFile> {
        self.clock += 1;
        let clock = self.clock;
        let known = self
            .map
            .get(app)
            .is_some_and(|m| m.contains_key(&(index, part)));
        if !known {
            if self.open >= self.max_open {
                self.evict();
            }
            let file = self.open_file(&self.path(app, index, part))?;
            self.map
                .entry(app.to_owned())
                .or_default()
                .insert((index, part), file);
            self.open += 1;
            debug_assert!(self.open <= self.max_open);
        }
        let f = self
            .map
            .get_mut(app)
            .and_then(|m| m.get_mut(&(index, part)))
            .expect("just opened");
        f.used = clock;
        Ok(f)
    }

    pub(super) fn open_file(&self, path: &Path) -> io::Result<OpenFile> {
        let open = || {
            OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)
        };
        let file = match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The directory went away: make it again.
                fs::create_dir_all(&self.settings.dir)?;
                open()
            }
            r => r,
        }
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let size = file.metadata()?.len();
        Ok(OpenFile {
            file,
            size,
            used: 0,
            no_rotate: false,
        })
    }

    /// Closes the least recently used file.
    pub(super) fn evict(&mut self) {
        let lru = self
            .map
            .iter()
            .flat_map(|(app, m)| m.iter().map(move |(k, f)| (f.used, app, *k)))
            .min_by_key(|(used, _, _)| *used)
            .map(|(_, app, k)| (app.clone(), k));
        if let Some((app, k)) = lru {
            self.close(&app, k.0, k.1);
        }
    }

    pub(super) fn close(&mut self, app: &str, index: u32, part: Part) {
        if let Some(m) = self.map.get_mut(app) {
            if m.remove(&(index, part)).is_some() {
                self.open -= 1;
            }
            if m.is_empty() {
                self.map.remove(app);
            }
        }
    }

    pub(super) fn close_all(&mut self) {
        self.map.clear();
        self.open = 0;
    }

    /// Shifts the old files, moves the current one to `.1` and opens a fresh one. An `Err`
    /// means the fresh file could not be opened (the old one is closed).
    pub(super) fn rotate(&mut self, app: &str, index: u32, part: Part) -> io::Result<()> {
        let path = self.path(app, index, part);
        let numbered = |i: u32| {
            let mut p = path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        let keep = self.settings.keep;
        // Files beyond `keep` (left by a larger `keep` before a reload).
        let mut i = keep.saturating_add(1);
        while fs::remove_file(numbered(i)).is_ok() {
            i += 1;
        }
        let moved = if keep == 0 {
            gone_ok(fs::remove_file(&path))
        } else {
            (1..keep)
                .rev()
                .map(|i| gone_ok(fs::rename(numbered(i), numbered(i + 1))))
                .find(Result::is_err)
                .unwrap_or(Ok(()))
                .and_then(|()| gone_ok(fs::rename(&path, numbered(1))))
        };
        if let Err(e) = moved {
            log::warn!(
                "log files: cannot rotate {}: {e}; it keeps growing until reopened",
                path.display()
            );
            self.get(app, index, part)?.no_rotate = true;
            return Ok(());
        }
        self.close(app, index, part);
        self.get(app, index, part).map(|_| ())
    }
}

fn gone_ok(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}
