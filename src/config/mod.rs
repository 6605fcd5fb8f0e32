//! The ecosystem file: read, parse (TOML or YAML), validate, and report every error located.
//!
//! Both formats are first parsed into one located tree (`node`), which the schema
//! (`schema`, `read`, `resolve`) converts by hand into the typed `model`, collecting every
//! error with its line, column and key path instead of stopping at the first. Cross-app
//! checks (`validate`) run last.
pub mod model;
pub use model::*;

mod describe;
pub mod edit;
mod envfile;
mod error;
pub mod file;
mod hints;
mod node;
pub mod per_instance;
pub mod placeholders;
mod read;
mod resolve;
pub mod schedule;
mod schema;
mod structured;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bad;
#[cfg(test)]
mod tests_files;
pub mod units;
mod validate;
mod yaml;

pub use describe::describe;
pub use error::{ConfigError, ConfigErrors, Pos};

use std::path::{Path, PathBuf};

use node::{Node, Syntax};
use read::Ctx;

/// The names tried, in order, when no file is given.
pub const DEFAULT_FILES: &[&str] = &["ecosystem.toml", "ecosystem.yaml", "ecosystem.yml"];

/// Read, parse and validate an ecosystem file.
pub use validate::BindCheck;

pub fn load(path: &Path) -> Result<Ecosystem, ConfigErrors> {
    load_checked(path, None)
}

/// [`load`], also checking that every `listen` address can be bound (`check`, start,
/// and reloads, where addresses supervise already holds count as bindable).
pub fn load_checked(path: &Path, can_bind: Option<BindCheck>) -> Result<Ecosystem, ConfigErrors> {
    let bytes = file::read_bounded(path, file::MAX_ECOSYSTEM_BYTES).map_err(|e| {
        ConfigErrors::whole_file(
            path,
            "",
            format!("cannot read the file: {}", resolve::io_text(&e)),
        )
    })?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => load_with(path, text, can_bind),
        Err(e) => {
            let at = e.valid_up_to();
            let valid = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
            let pos = node::LineIndex::new(valid).pos(at);
            let msg = format!("the file is not valid UTF-8 (bad byte at offset {at})");
            Err(ConfigErrors(vec![ConfigError::new(path, pos, "", msg)]))
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Format {
    Toml,
    Yaml,
}

fn format_of(path: &Path) -> Option<Format> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "toml" => Some(Format::Toml),
        "yaml" | "yml" => Some(Format::Yaml),
        _ => None,
    }
}

fn syntax_errors(path: &Path, errors: Vec<Syntax>) -> ConfigErrors {
    ConfigErrors(
        errors
            .into_iter()
            .map(|s| ConfigError::new(path, s.pos, "", s.message))
            .collect(),
    )
}

/// Parse by the extension; without a known one, by content (TOML first, then YAML).
fn parse(path: &Path, text: &str) -> Result<Node, ConfigErrors> {
    match format_of(path) {
        Some(Format::Toml) => node::parse_toml(text).map_err(|e| syntax_errors(path, e)),
        Some(Format::Yaml) => yaml::parse_yaml(text).map_err(|e| syntax_errors(path, e)),
        None => {
            let toml = node::parse_toml(text);
            if let Ok(n) = toml {
                return Ok(n);
            }
            match yaml::parse_yaml(text) {
                Ok(n) if n.entries().is_some() => Ok(n),
                _ => Err(ConfigErrors::whole_file(
                    path,
                    "",
                    "cannot tell the format: the file is neither valid TOML nor valid YAML \
                     (name it .toml, .yaml or .yml to see its syntax errors)",
                )),
            }
        }
    }
}

/// The same as [`load`], from text already read. `path` names the file in messages, its
/// folder is the base of relative paths, and its extension picks the format.
pub fn load_str(path: &Path, text: &str) -> Result<Ecosystem, ConfigErrors> {
    load_with(path, text, None)
}

pub(crate) fn load_with(
    path: &Path,
    text: &str,
    can_bind: Option<BindCheck>,
) -> Result<Ecosystem, ConfigErrors> {
    let root = parse(path, text)?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let base = absolute
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let mut ctx = Ctx::new(path, base);
    let (settings, drafts) = schema::document(&mut ctx, &root);
    validate::cross_checks(&mut ctx, &drafts, can_bind);
    let apps: Vec<AppSpec> = drafts.into_iter().map(|d| d.spec).collect();
    let errors = ctx.sink.finish();
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(Ecosystem {
        path: absolute,
        settings,
        apps,
    })
}

/// The ecosystem file to use: the one given, else the first of `./ecosystem.toml`,
/// `./ecosystem.yaml`, `./ecosystem.yml` that exists.
pub fn find_default(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => {
                for name in DEFAULT_FILES {
                    let candidate = p.join(name);
                    if candidate.is_file() {
                        return Ok(candidate);
                    }
                }
                Err(format!(
                    "{} is a folder with no {} in it",
                    p.display(),
                    DEFAULT_FILES.join(", ")
                ))
            }
            Ok(_) => Ok(p.to_path_buf()),
            Err(e) => Err(format!("{}: {}", p.display(), resolve::io_text(&e))),
        };
    }
    DEFAULT_FILES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "no ecosystem file: give one as an argument, or create ./{} in this folder",
                DEFAULT_FILES.join(", ./")
            )
        })
}
