//! The listen adapter for Node apps (SPEC §6): an app written for PM2 calls
//! `server.listen(3000)` itself; run as N instances it would fight over the port. For a
//! Node program with `listen`, supervise passes a preload module in `NODE_OPTIONS`
//! (`--require`) that makes such a `listen` take the inherited socket (fd 3...) and drains
//! the app on its stop signal when the app has no handler of its own (see `preload.js`).
//!
//! The module is shipped inside the binary and written once, on first use, to a fresh
//! 0755 directory holding one 0644 file, so that instances running as another `user` can
//! read it; both are removed when supervise exits (the [`Preload`] is dropped).
//!
//! An edge of the runtime: it reads the program's first line (shebang) and writes a file.
//! The runtime calls [`Preload::env`] per spawn and adds what it returns to the
//! instance's environment.

use std::ffi::OsString;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::{AppSpec, ListenAddr};

/// The preload module's source.
pub const MODULE: &str = include_str!("preload.js");
const FILE_NAME: &str = "listen-adapter.js";

/// Program names that are Node itself.
const NODE_NAMES: &[&str] = &["node", "nodejs"];
/// Launchers that run the app in a child process (or are not Node at all) and bind
/// the port there: the adapter cannot reach it.
const LAUNCHERS: &[&str] = &[
    "npm",
    "npx",
    "yarn",
    "pnpm",
    "bun",
    "deno",
    "tsx",
    "nodemon",
    "pm2",
    "pm2-runtime",
];

fn base_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// The interpreter of a `#!` script, by base name (`env node` gives `node`).
fn shebang_interpreter(program: &Path) -> Option<String> {
    let meta = std::fs::metadata(program).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut head = [0u8; 256];
    let n = File::open(program).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    let first = words.next()?;
    let name = base_name(Path::new(first));
    if name != "env" {
        return Some(name.to_string());
    }
    // `#!/usr/bin/env node`, `#!/usr/bin/env -S node --flag`
    words
        .find(|w| !w.starts_with('-'))
        .map(|w| base_name(Path::new(w)).to_string())
}

/// The program as Node sees it: `Some(true)` Node (directly or by shebang),
/// `Some(false)` a known launcher that binds in a child, `None` anything else.
fn node_kind(spec: &AppSpec) -> Option<bool> {
    if spec.shell {
        let first = spec.command.argv.get(2)?.split_whitespace().next()?;
        let name = base_name(Path::new(first));
        return (NODE_NAMES.contains(&name) || LAUNCHERS.contains(&name)).then_some(false);
    }
    let mut name = base_name(&spec.command.program).to_string();
    if !NODE_NAMES.contains(&name.as_str()) && !LAUNCHERS.contains(&name.as_str()) {
        name = shebang_interpreter(&spec.command.program).unwrap_or_default();
    }
    if NODE_NAMES.contains(&name.as_str()) {
        // A launcher script run by node (e.g. `npm` installed as a node script) still
        // binds in its child.
        let launcher = LAUNCHERS.contains(&base_name(&spec.command.program));
        return Some(!launcher);
    }
    LAUNCHERS.contains(&name.as_str()).then_some(false)
}

/// Whether supervise passes the adapter to this app's instances.
pub fn applies(spec: &AppSpec) -> bool {
    spec.listen_adapter && !spec.listen.is_empty() && node_kind(spec) == Some(true)
}

/// `supervise check`'s warning for an app whose instances would each bind the same
/// port: `listen`, more than one instance, a program known to bind by itself, no adapter.
pub fn check_warning(spec: &AppSpec) -> Option<String> {
    if spec.listen.is_empty() || spec.instances < 2 || applies(spec) {
        return None;
    }
    let kind = node_kind(spec)?;
    let why = if kind {
        "listen_adapter = false: unless the app listens on LISTEN_FDS (fd 3) itself, its"
    } else {
        "the program starts your server in a child process (or a shell) the Node listen adapter cannot reach, so its"
    };
    Some(format!(
        "apps.{}: {why} {} instances will each try to bind {} and all but one fail \
         (EADDRINUSE); run node directly (command = [\"node\", \"server.js\"]) or read LISTEN_FDS",
        spec.name,
        spec.instances,
        describe(&spec.listen[0]),
    ))
}

fn describe(addr: &ListenAddr) -> String {
    match addr {
        ListenAddr::Tcp(a) => format!("port {}", a.port()),
        ListenAddr::Unix(p) => p.display().to_string(),
    }
}

/// `SUPERVISE_LISTEN`: the app's addresses in `listen` order (fd 3 + i), as JSON.
fn listen_json(listen: &[ListenAddr]) -> String {
    let texts: Vec<String> = listen
        .iter()
        .map(|a| match a {
            ListenAddr::Tcp(a) => format!("tcp://{a}"),
            ListenAddr::Unix(p) => format!("unix:{}", p.display()),
        })
        .collect();
    serde_json::to_string(&texts).expect("strings serialize")
}

/// ` --require "PATH"` as Node's NODE_OPTIONS parser reads it (the preload removes
/// exactly this text again, built with `JSON.stringify`).
fn require_option(path: &Path) -> Option<String> {
    let path = path.to_str()?;
    Some(format!(
        " --require {}",
        serde_json::to_string(path).expect("strings serialize")
    ))
}

/// The written module: a directory of its own with one file, removed on drop.
pub struct Preload {
    written: Option<Written>,
    /// The last failure to write, reported once.
    failed: bool,
}

struct Written {
    dir: PathBuf,
    file: PathBuf,
}

impl Drop for Written {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

impl Default for Preload {
    fn default() -> Self {
        Self::new()
    }
}

impl Preload {
    pub fn new() -> Preload {
        Preload {
            written: None,
            failed: false,
        }
    }

    /// Add the adapter to the environment `env` of an instance of `spec`, when it
    /// applies: `--require` appended to its NODE_OPTIONS, SUPERVISE_LISTEN and
    /// SUPERVISE_STOP_SIGNAL. `Err` once when the module cannot be written (the
    /// instance then starts without it).
    pub fn apply(
        &mut self,
        spec: &AppSpec,
        env: &mut Vec<(OsString, OsString)>,
    ) -> Result<(), String> {
        for (k, v) in self.env(spec, env)? {
            match env.iter_mut().find(|(key, _)| *key == *k) {
                Some(slot) => slot.1 = v.into(),
                None => env.push((k.into(), v.into())),
            }
        }
        Ok(())
    }

    fn env(
        &mut self,
        spec: &AppSpec,
        env: &[(OsString, OsString)],
    ) -> Result<Vec<(String, String)>, String> {
        if !applies(spec) {
            return Ok(Vec::new());
        }
        // A temp cleaner may have removed it meanwhile: write it again.
        if self.written.as_ref().is_some_and(|w| !w.file.is_file()) {
            self.written = None;
        }
        if self.written.is_none() {
            match write_module_somewhere() {
                Ok(w) => {
                    self.written = Some(w);
                    self.failed = false;
                }
                Err(e) if self.failed => {
                    log::debug!("listen adapter: {e}");
                    return Ok(Vec::new());
                }
                Err(e) => {
                    self.failed = true;
                    return Err(format!("cannot write the Node listen adapter: {e}"));
                }
            }
        }
        let file = &self.written.as_ref().expect("just written").file;
        let Some(require) = require_option(file) else {
            return Ok(Vec::new());
        };
        let theirs = env
            .iter()
            .find(|(k, _)| k == "NODE_OPTIONS")
            .map(|(_, v)| v.to_string_lossy().into_owned())
            .unwrap_or_default();
        let options = format!("{theirs}{require}").trim_start().to_string();
        Ok(vec![
            ("NODE_OPTIONS".into(), options),
            ("SUPERVISE_LISTEN".into(), listen_json(&spec.listen)),
            ("SUPERVISE_STOP_SIGNAL".into(), spec.stop_signal.to_string()),
        ])
    }

    /// Where the module is, once written (tests).
    pub fn path(&self) -> Option<&Path> {
        self.written.as_ref().map(|w| w.file.as_path())
    }
}

/// Where the module may go, best first. As root, a folder every user can traverse (apps
/// may run as another `user`): /run. Otherwise $XDG_RUNTIME_DIR. Then the temp dir (a
/// container's /run may be missing or read-only).
fn runtime_bases() -> Vec<PathBuf> {
    let mut bases = Vec::new();
    if nix::unistd::geteuid().is_root() {
        bases.push(PathBuf::from("/run"));
    } else if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        bases.push(PathBuf::from(dir));
    }
    bases.retain(|p| p.is_absolute() && p.is_dir());
    bases.push(std::env::temp_dir());
    bases
}

/// [`write_module`] in the first base that takes it; the last base's error otherwise.
fn write_module_somewhere() -> io::Result<Written> {
    let mut last = io::Error::other("no folder to write to");
    for base in runtime_bases() {
        match write_module(&base) {
            Ok(written) => return Ok(written),
            Err(e) => last = io::Error::new(e.kind(), format!("{}: {e}", base.display())),
        }
    }
    Err(last)
}

/// A new directory (never an existing one: the name is created exclusively, so nothing
/// planted in a shared /tmp is used), mode 0755 whatever the umask, holding the module
/// as a new 0644 file.
fn write_module(base: &Path) -> io::Result<Written> {
    let pid = std::process::id();
    let mut last = None;
    for attempt in 0..100u32 {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!("supervise-node-{pid}-{:08x}", stamp ^ attempt));
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        }
        let file = dir.join(FILE_NAME);
        // From here on, dropping `written` removes what exists.
        let written = Written { dir, file };
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&written.file)?;
        f.write_all(MODULE.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        File::open(&written.dir)?.set_permissions(std::fs::Permissions::from_mode(0o755))?;
        return Ok(written);
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free directory name")))
}

#[cfg(test)]
mod tests;
