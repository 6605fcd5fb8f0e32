//! Located configuration errors, printed in the compiler's shape:
//! `ecosystem.toml:7:13: apps.web.instances: expected a whole number or "max", found -1`.

use std::fmt;
use std::path::{Path, PathBuf};

/// A 1-based line and column (the column counts characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// The start of the file, for whole-file errors.
    pub const START: Pos = Pos { line: 1, column: 1 };
}

/// One located error. `key_path` is empty for errors that belong to no key (syntax,
/// encoding, unreadable file); the key part is then left out of the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub key_path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: &Path, pos: Pos, key_path: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            key_path: key_path.to_string(),
            message: message.into(),
        }
    }

    pub fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        if !self.key_path.is_empty() {
            write!(f, "{}: ", self.key_path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every error of a file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A single error at the start of the file.
    pub fn whole_file(file: &Path, key_path: &str, message: impl Into<String>) -> ConfigErrors {
        ConfigErrors(vec![ConfigError::new(file, Pos::START, key_path, message)])
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Where errors are collected while a file is converted, so that all of them are reported.
pub(crate) struct Sink<'a> {
    pub file: &'a Path,
    pub errors: Vec<ConfigError>,
}

impl<'a> Sink<'a> {
    pub fn new(file: &'a Path) -> Sink<'a> {
        Sink {
            file,
            errors: Vec::new(),
        }
    }

    pub fn push(&mut self, pos: Pos, key_path: &str, message: impl Into<String>) {
        self.errors
            .push(ConfigError::new(self.file, pos, key_path, message));
    }

    /// The errors in file order (stable for errors at the same place), duplicates dropped.
    pub fn finish(mut self) -> Vec<ConfigError> {
        self.errors.sort_by_key(|e| e.pos());
        self.errors.dedup();
        self.errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_shapes() {
        let e = ConfigError::new(
            Path::new("ecosystem.toml"),
            Pos {
                line: 7,
                column: 13,
            },
            "apps.web.instances",
            "expected a whole number or \"max\", found -1",
        );
        assert_eq!(
            e.to_string(),
            "ecosystem.toml:7:13: apps.web.instances: expected a whole number or \"max\", found -1"
        );
        let s = ConfigError::new(Path::new("a.yaml"), Pos::START, "", "syntax error");
        assert_eq!(s.to_string(), "a.yaml:1:1: syntax error");
        let all = ConfigErrors(vec![e, s]);
        assert_eq!(all.to_string().lines().count(), 2);
    }
}
