//! Typed readers over `Node`: each one either returns the value or reports a located
//! "expected ..., found ..." error and returns `None`, so conversion goes on and every
//! error of the file is collected.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{Pos, Sink};
use super::node::{quote, Entry, Kind, Node};
use super::units;

/// The conversion context: the error sink, the file's folder, and which keys were present
/// (for the "not supported yet" check).
pub(crate) struct Ctx<'a> {
    pub sink: Sink<'a>,
    /// Absolute folder of the ecosystem file: the base of relative paths.
    pub base: PathBuf,
}

/// `parent.key`, quoting keys that are not bare words.
pub(crate) fn join(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare { key.to_string() } else { quote(key) };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
pub(crate) fn elem(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// Levenshtein distance over bytes, for "did you mean": two rows, reused (`rows`).
fn distance(a: &[u8], b: &[u8], rows: &mut (Vec<usize>, Vec<usize>)) -> usize {
    let (prev, cur) = rows;
    prev.clear();
    prev.extend(0..=b.len());
    for (i, ca) in a.iter().enumerate() {
        cur.clear();
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        std::mem::swap(prev, cur);
    }
    prev[b.len()]
}

/// The closest known word, when it is close enough to be a likely typo. A known word
/// whose length differs by more than the distance allowed is skipped without
/// computing anything, so a huge word or a long list stays cheap.
pub(crate) fn suggest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = word.to_ascii_lowercase();
    let mut rows = (Vec::new(), Vec::new());
    known
        .iter()
        .filter(|k| lower.len().abs_diff(k.len()) <= allowed(k))
        .map(|k| (distance(lower.as_bytes(), k.as_bytes(), &mut rows), *k))
        .filter(|(d, k)| *d <= allowed(k) && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// How far a word may be from `known` to be suggested as it.
fn allowed(known: &str) -> usize {
    2.max(known.len() / 3)
}

/// The message for an unknown key.
pub(crate) fn unknown_key(key: &str, known: &[&str]) -> String {
    // Another tool's key, in an app table: say what we call it.
    let app_level = known == super::schema::APP_KEYS;
    if let Some(hint) = super::hints::hint(key).filter(|_| app_level) {
        return format!("unknown key `{key}`; {hint}");
    }
    match suggest(key, known) {
        Some(s) => format!("unknown key `{key}`; did you mean `{s}`?"),
        None => {
            let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
            format!("unknown key `{key}`; expected one of {}", list.join(", "))
        }
    }
}

impl<'a> Ctx<'a> {
    pub fn new(file: &'a Path, base: PathBuf) -> Ctx<'a> {
        Ctx {
            sink: Sink::new(file),
            base,
        }
    }

    pub fn error(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.sink.push(pos, path, message);
    }

    pub fn expected(&mut self, node: &Node, path: &str, what: &str) {
        let msg = format!("expected {what}, found {}", node.found());
        self.error(node.pos, path, msg);
    }

    /// A table whose keys are all in `known`; unknown keys are reported.
    pub fn fields<'n>(&mut self, node: &'n Node, path: &str, known: &[&str]) -> Vec<&'n Entry> {
        let Some(entries) = node.entries() else {
            self.expected(node, path, "a table");
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries {
            if known.contains(&e.key.as_str()) {
                out.push(e);
            } else {
                let msg = unknown_key(&e.key, known);
                self.error(e.key_pos, &join(path, &e.key), msg);
            }
        }
        out
    }

    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.kind {
            Kind::Str(s) if s.contains('\0') => {
                self.error(node.pos, path, "a string must not contain a NUL character");
                None
            }
            Kind::Str(s) => Some(s.clone()),
            _ => {
                self.expected(node, path, "a string");
                None
            }
        }
    }

    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match node.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.expected(node, path, "true or false");
                None
            }
        }
    }

    /// A whole number in `0..=max`.
    pub fn whole(&mut self, node: &Node, path: &str, max: u64) -> Option<u64> {
        match node.kind {
            Kind::Int(i) if i >= 0 && i as u64 <= max => Some(i as u64),
            Kind::Int(i) if i >= 0 => {
                self.error(node.pos, path, format!("expected at most {max}, found {i}"));
                None
            }
            _ => {
                self.expected(node, path, "a whole number");
                None
            }
        }
    }

    /// One of a fixed set of strings; returns its index.
    pub fn choice(&mut self, node: &Node, path: &str, options: &[&str]) -> Option<usize> {
        if let Kind::Str(s) = &node.kind {
            if let Some(i) = options.iter().position(|o| o == s) {
                return Some(i);
            }
        }
        let list: Vec<String> = options.iter().map(|o| quote(o)).collect();
        self.expected(node, path, &format!("one of {}", list.join(", ")));
        None
    }

    pub fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        const WHAT: &str = "a duration such as \"10s\" or \"250ms\"";
        match &node.kind {
            Kind::Str(s) => match units::parse_duration(s) {
                Ok(d) => Some(d),
                Err(why) => {
                    let msg = format!("expected {WHAT}, found {} ({why})", node.found());
                    self.error(node.pos, path, msg);
                    None
                }
            },
            Kind::Int(i) => {
                let msg = format!(
                    "expected {WHAT}, found {i} (a number needs a unit: write \"{i}s\" or \"{i}ms\")"
                );
                self.error(node.pos, path, msg);
                None
            }
            _ => {
                self.expected(node, path, WHAT);
                None
            }
        }
    }

    /// A size: a string with a unit, or a whole number of bytes.
    pub fn size(&mut self, node: &Node, path: &str) -> Option<u64> {
        const WHAT: &str = "a size such as \"512MiB\" or \"1G\"";
        match &node.kind {
            Kind::Int(i) if *i >= 0 => Some(*i as u64),
            Kind::Str(s) => match units::parse_size(s) {
                Ok(n) => Some(n),
                Err(why) => {
                    let msg = format!("expected {WHAT}, found {} ({why})", node.found());
                    self.error(node.pos, path, msg);
                    None
                }
            },
            _ => {
                self.expected(node, path, WHAT);
                None
            }
        }
    }

    /// An array of strings (or, with `single`, one string), each with its position.
    pub fn strings(&mut self, node: &Node, path: &str, single: bool) -> Option<Vec<(String, Pos)>> {
        match &node.kind {
            Kind::Str(_) if single => self.string(node, path).map(|s| vec![(s, node.pos)]),
            Kind::Array(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match self.string(item, &elem(path, i)) {
                        Some(s) => out.push((s, item.pos)),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => {
                let what = if single {
                    "a string or an array of strings"
                } else {
                    "an array of strings"
                };
                self.expected(node, path, what);
                None
            }
        }
    }

    /// A path; relative ones are taken relative to `base`.
    pub fn path(&mut self, node: &Node, path: &str, base: &Path) -> Option<PathBuf> {
        let s = self.string(node, path)?;
        if s.is_empty() {
            self.error(node.pos, path, "expected a path, found an empty string");
            return None;
        }
        Some(clean(&base.join(s)))
    }
}

/// A path with `.` components dropped and `..` applied lexically.
pub(crate) fn clean(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let known = ["command", "instances", "cwd", "env", "env_file", "restart"];
        assert_eq!(suggest("instanses", &known), Some("instances"));
        assert_eq!(suggest("comand", &known), Some("command"));
        assert_eq!(suggest("Restart", &known), Some("restart"));
        assert_eq!(suggest("xyz", &known), None);
        assert_eq!(join("apps", "web"), "apps.web");
        assert_eq!(join("apps", "web.api"), "apps.\"web.api\"");
        assert_eq!(clean(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
