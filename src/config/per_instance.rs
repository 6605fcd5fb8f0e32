//! Reading the per-instance keys of an app (SPEC §8): `port`, and the placeholders
//! `{app}`, `{instance}`, `{port}` wherever they may appear, each checked where it is
//! written so an error names its line and column.

use std::path::PathBuf;

use super::model::AppSpec;
use super::node::{Kind, Node};
use super::placeholders::{self, Values};
use super::read::{elem, join, Ctx};

/// The keys whose text may hold placeholders.
pub(crate) const TEMPLATE_KEYS: [&str; 5] = ["command", "env", "cwd", "ready", "health"];

/// `port = 3000`: instance N gets 3000 + N. The last instance's port must exist.
pub(crate) fn port(ctx: &mut Ctx, node: &Node, path: &str, instances: u32) -> Option<u16> {
    let port = ctx.whole(node, path, 65_535)?;
    if port == 0 {
        ctx.error(node.pos, path, "expected a port number (1-65535), found 0");
        return None;
    }
    let last = port + u64::from(instances.max(1)) - 1;
    if last > 65_535 {
        ctx.error(
            node.pos,
            path,
            format!(
                "{instances} instances from port {port} would need port {last} (at most 65535)"
            ),
        );
        return None;
    }
    Some(port as u16)
}

/// Every string under `node` (tables and arrays walked) must name known placeholders.
pub(crate) fn check(ctx: &mut Ctx, node: &Node, path: &str, has_port: bool) {
    match &node.kind {
        Kind::Str(s) => {
            if let Err(why) = placeholders::check(s, has_port) {
                ctx.error(node.pos, path, why);
            }
        }
        Kind::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check(ctx, item, &elem(path, i), has_port);
            }
        }
        Kind::Table(entries) => {
            for e in entries {
                check(ctx, &e.value, &join(path, &e.key), has_port);
            }
        }
        _ => {}
    }
}

/// The `cwd` node's text, when it holds placeholders: such a folder is checked per
/// instance once the count is known ([`check_cwds`]), not as written.
pub(crate) fn cwd_template(node: &Node) -> Option<&str> {
    match &node.kind {
        Kind::Str(s) if placeholders::is_template(s) => Some(s),
        _ => None,
    }
}

/// A templated `cwd` must exist for every instance.
pub(crate) fn check_cwds(ctx: &mut Ctx, node: &Node, path: &str, spec: &AppSpec) {
    for index in 0..spec.instances {
        let dir = instance_cwd(spec, index);
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                let what = format!("`{}` (instance {index}) is not a directory", dir.display());
                return ctx.error(node.pos, path, what);
            }
            Err(e) => {
                let what = format!(
                    "directory `{}` (instance {index}): {}",
                    dir.display(),
                    super::resolve::io_text(&e)
                );
                return ctx.error(node.pos, path, what);
            }
        }
    }
}

/// The values of instance `index` of `spec`.
pub fn values(spec: &AppSpec, index: u32) -> Values<'_> {
    Values {
        app: &spec.name,
        instance: index,
        port: spec.port.map(|p| u32::from(p) + index),
    }
}

/// Instance `index`'s working directory.
pub fn instance_cwd(spec: &AppSpec, index: u32) -> PathBuf {
    match spec.cwd.to_str() {
        Some(text) if placeholders::is_template(text) => {
            PathBuf::from(placeholders::expand(text, &values(spec, index)))
        }
        _ => spec.cwd.clone(),
    }
}

/// `text` for instance `index` of `spec`.
pub fn expand(spec: &AppSpec, index: u32, text: &str) -> String {
    placeholders::expand(text, &values(spec, index))
}
