//! A builder for ecosystem files, so a test says which apps it runs and with which keys
//! instead of formatting TOML by hand:
//!
//! ```ignore
//! let config = Ecosystem::new()
//!     .app("crash", &["--pid-dir", h.pids(), "--exit-after", "50ms"])
//!     .set("restart_delay", "100ms")
//!     .set("max_restarts", 10)
//!     .write(&mut h);
//! h.start(&config);
//! ```
//!
//! Values are written as TOML: strings quoted, numbers and booleans bare, and [`Raw`] for
//! anything else (arrays, inline tables).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use super::{app_cmd, quote, Harness};

/// A TOML value for [`Ecosystem::set`].
pub trait TomlValue {
    fn toml(&self) -> String;
}

impl TomlValue for &str {
    fn toml(&self) -> String {
        quote(self)
    }
}

impl TomlValue for String {
    fn toml(&self) -> String {
        quote(self)
    }
}

impl TomlValue for bool {
    fn toml(&self) -> String {
        self.to_string()
    }
}

macro_rules! bare {
    ($($t:ty),*) => {$(
        impl TomlValue for $t {
            fn toml(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
bare!(i32, i64, u32, u64, usize, f64);

/// A value written as is (an array, an inline table...).
pub struct Raw<'a>(pub &'a str);

impl TomlValue for Raw<'_> {
    fn toml(&self) -> String {
        self.0.to_string()
    }
}

/// An ecosystem file under construction: top-level keys, then `[apps.NAME]` tables in
/// the order they were added.
#[derive(Default, Clone)]
pub struct Ecosystem {
    top: Vec<String>,
    apps: Vec<(String, Vec<String>)>,
}

impl Ecosystem {
    pub fn new() -> Ecosystem {
        Ecosystem::default()
    }

    /// An app running the test app with `args`.
    pub fn app(self, name: &str, args: &[&str]) -> Ecosystem {
        self.command(name, &app_cmd(args))
    }

    /// An app with `command = COMMAND` (COMMAND is TOML: a quoted string or an array).
    pub fn command(mut self, name: &str, command: &str) -> Ecosystem {
        self.apps
            .push((name.to_string(), vec![format!("command = {command}")]));
        self
    }

    /// `key = value` in the last app added (at the top level before any app).
    pub fn set(self, key: &str, value: impl TomlValue) -> Ecosystem {
        let line = format!("{key} = {}", value.toml());
        self.line(&line)
    }

    /// A raw TOML line in the last app added (at the top level before any app).
    pub fn line(mut self, text: &str) -> Ecosystem {
        match self.apps.last_mut() {
            Some((_, lines)) => lines.push(text.to_string()),
            None => self.top.push(text.to_string()),
        }
        self
    }

    /// The ecosystem file's text.
    pub fn toml(&self) -> String {
        let mut text = String::new();
        for line in &self.top {
            let _ = writeln!(text, "{line}");
        }
        for (name, lines) in &self.apps {
            let _ = writeln!(text, "\n[apps.{name}]");
            for line in lines {
                let _ = writeln!(text, "{line}");
            }
        }
        text
    }

    /// Write it as `eco.toml` in the harness's directory (shown if the test fails).
    pub fn write(&self, h: &mut Harness) -> PathBuf {
        h.write_config("eco.toml", &self.toml())
    }
}

impl Harness {
    /// Write `ecosystem` as `eco.toml` and start supervise on it; returns the file.
    pub fn start_ecosystem(&mut self, ecosystem: &Ecosystem) -> PathBuf {
        let config = ecosystem.write(self);
        self.start(&config);
        config
    }
}

/// A write-to-temp-then-rename save, as vim, VS Code or `sed -i`.
pub fn write_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}
