//! Keys whose checks reach outside the text: programs on `PATH`, folders, env files,
//! users and groups.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::envfile;
use super::model::CommandLine;
use super::node::{Kind, Node};
use super::read::{join, Ctx};

/// An existing directory, relative to the file's folder; returned canonical.
pub(crate) fn directory(ctx: &mut Ctx, node: &Node, path: &str) -> Option<PathBuf> {
    let dir = ctx.path(node, path, &ctx.base.clone())?;
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => Some(dir.canonicalize().unwrap_or(dir)),
        Ok(_) => {
            ctx.error(
                node.pos,
                path,
                format!("`{}` is not a directory", dir.display()),
            );
            None
        }
        Err(e) => {
            ctx.error(
                node.pos,
                path,
                format!("directory `{}`: {}", dir.display(), io_text(&e)),
            );
            None
        }
    }
}

/// An `std::io::Error` without the "(os error 2)" tail.
pub(crate) fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}

/// `command`: an argv array, or a string split like a shell (no shell runs), or with
/// `shell = true` a string run by `/bin/sh -c`. The program is resolved to an absolute path.
pub(crate) fn command(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
    shell: bool,
    cwd: &Path,
    cwd_ok: bool,
) -> Option<CommandLine> {
    if shell {
        let Kind::Str(_) = node.kind else {
            ctx.expected(
                node,
                path,
                "a string (with `shell = true` the command is one shell line)",
            );
            return None;
        };
        let line = ctx.string(node, path)?;
        if line.trim().is_empty() {
            ctx.error(node.pos, path, "the command is empty");
            return None;
        }
        return Some(CommandLine {
            program: PathBuf::from("/bin/sh"),
            argv: vec!["sh".into(), "-c".into(), line],
        });
    }
    let argv: Vec<String> = match &node.kind {
        Kind::Str(s) => match shell_words::split(s) {
            Ok(words) => words,
            Err(e) => {
                ctx.error(
                    node.pos,
                    path,
                    format!("cannot split the command into words: {e}"),
                );
                return None;
            }
        },
        Kind::Array(_) => ctx
            .strings(node, path, false)?
            .into_iter()
            .map(|(s, _)| s)
            .collect(),
        _ => {
            ctx.expected(node, path, "an array of strings or a string");
            return None;
        }
    };
    if argv.iter().any(|a| a.contains('\0')) {
        ctx.error(
            node.pos,
            path,
            "the command must not contain a NUL character",
        );
        return None;
    }
    let Some(first) = argv.first().filter(|a| !a.is_empty()) else {
        ctx.error(node.pos, path, "the command is empty");
        return None;
    };
    if first.contains('/') && !cwd_ok && !first.starts_with('/') {
        return None; // relative to a cwd that is already reported missing
    }
    match find_program(first, cwd) {
        Ok(program) => Some(CommandLine { program, argv }),
        Err(why) => {
            ctx.error(node.pos, path, why);
            None
        }
    }
}

fn executable(p: &Path) -> bool {
    p.is_file() && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// argv[0] with a `/` is taken relative to `cwd`; otherwise it is searched in `PATH`.
pub(crate) fn find_program(name: &str, cwd: &Path) -> Result<PathBuf, String> {
    if name.contains('/') {
        let p: PathBuf = cwd.join(name).components().collect();
        return match std::fs::metadata(&p) {
            Err(e) => Err(format!(
                "program `{name}` not found ({}: {})",
                p.display(),
                io_text(&e)
            )),
            Ok(m) if m.is_dir() => Err(format!("program `{name}` is a directory")),
            Ok(_) if !executable(&p) => Err(format!(
                "program `{name}` is not executable ({}; try chmod +x)",
                p.display()
            )),
            Ok(_) => Ok(p),
        };
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&search) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = std::path::absolute(dir.join(name)).unwrap_or_else(|_| dir.join(name));
        if executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(format!("program `{name}` not found in PATH"))
}

/// An env variable name as `env` accepts it: non-empty, no `=` and no NUL.
fn env_name(k: &str) -> bool {
    !k.is_empty() && !k.contains('=') && !k.contains('\0')
}

/// A portable variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn strict_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(crate) fn env_table(ctx: &mut Ctx, node: &Node, path: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(entries) = node.entries() else {
        ctx.expected(node, path, "a table of variables");
        return out;
    };
    for e in entries {
        let p = join(path, &e.key);
        if !env_name(&e.key) {
            ctx.error(
                e.key_pos,
                &p,
                "invalid variable name (it must be non-empty, without `=`)",
            );
            continue;
        }
        match e.value.scalar_text() {
            Some(v) if v.contains('\0') => {
                ctx.error(e.value.pos, &p, "a value must not contain a NUL character")
            }
            Some(v) => {
                out.insert(e.key.clone(), v);
            }
            None => ctx.expected(&e.value, &p, "a string, number or boolean"),
        }
    }
    out
}

/// `env_file`: relative to the ecosystem file's folder; returns its canonical path and
/// its variables. A bad line is reported at the key, naming the env file's line.
pub(crate) fn env_file(
    ctx: &mut Ctx,
    node: &Node,
    path: &str,
) -> Option<(PathBuf, BTreeMap<String, String>)> {
    let file = ctx.path(node, path, &ctx.base.clone())?;
    let text = match super::file::read_bounded(&file, super::file::MAX_ENV_FILE_BYTES) {
        Ok(bytes) => bytes,
        Err(e) => {
            ctx.error(
                node.pos,
                path,
                format!("env file `{}`: {}", file.display(), io_text(&e)),
            );
            return None;
        }
    };
    let shown = node.scalar_text().unwrap_or_default();
    let Ok(text) = String::from_utf8(text) else {
        ctx.error(
            node.pos,
            path,
            format!("env file `{shown}` is not valid UTF-8"),
        );
        return None;
    };
    match envfile::parse(&text) {
        Ok(vars) => Some((file.canonicalize().unwrap_or(file), vars)),
        Err(errors) => {
            for (line, why) in errors {
                ctx.error(node.pos, path, format!("{shown}:{line}: {why}"));
            }
            None
        }
    }
}

/// `user` / `group`: a name that exists, or a numeric id.
pub(crate) fn account(ctx: &mut Ctx, node: &Node, path: &str, group: bool) -> Option<String> {
    let name = match &node.kind {
        Kind::Int(i) if *i >= 0 => return Some(i.to_string()),
        _ => ctx.string(node, path)?,
    };
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return Some(name);
    }
    let what = if group { "group" } else { "user" };
    let found = if group {
        nix::unistd::Group::from_name(&name).map(|g| g.is_some())
    } else {
        nix::unistd::User::from_name(&name).map(|u| u.is_some())
    };
    match found {
        Ok(true) => Some(name),
        Ok(false) => {
            ctx.error(node.pos, path, format!("{what} `{name}` does not exist"));
            None
        }
        Err(e) => {
            ctx.error(
                node.pos,
                path,
                format!("cannot look up {what} `{name}`: {e}"),
            );
            None
        }
    }
}
