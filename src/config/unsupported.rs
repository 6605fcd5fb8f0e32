//! Keys that are parsed and validated today but whose behaviour lands in a later
//! release. Setting one to anything but its default is a located error, so a file never
//! silently means more than supervise does. Remove a line when its feature lands.

use super::model::{AppSpec, Settings};
use super::read::{join, Ctx};

/// `(key path, why)`; `apps.*.KEY` matches the key in every app.
pub(crate) const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "settings.socket",
        "the control socket lands in a later release",
    ),
    ("settings.log_dir", "log files land in a later release"),
    ("apps.*.max_memory", "memory limits land in a later release"),
];

/// Is this key, as converted, at its default value (so it changes nothing)?
fn is_default(settings: &Settings, app: Option<&AppSpec>, key: &str) -> bool {
    match (app, key) {
        (None, "socket") => settings.socket.is_none(),
        (None, "log_dir") => settings.log_dir.is_none(),
        (Some(a), "max_memory") => a.max_memory.is_none(),
        _ => true,
    }
}

pub(crate) fn check(ctx: &mut Ctx, settings: &Settings, apps: &[AppSpec]) {
    let present = std::mem::take(&mut ctx.present);
    for (app_name, key, pos) in &present {
        let (pattern, path, app) = match app_name {
            None => (join("settings", key), join("settings", key), None),
            Some(name) => (
                format!("apps.*.{key}"),
                join(&join("apps", name), key),
                apps.iter().find(|a| &a.name == name),
            ),
        };
        let Some((_, why)) = UNSUPPORTED.iter().find(|(p, _)| *p == pattern) else {
            continue;
        };
        if app_name.is_some() && app.is_none() {
            continue;
        }
        if ctx.sink.has_error_under(&path) || is_default(settings, app, key) {
            continue;
        }
        ctx.error(*pos, &path, format!("not supported yet ({why})"));
    }
    ctx.present = present;
}
