//! What applying a new version of the file would do, one line per app, for `supervise
//! diff` (SPEC §8): the same [`diff`] the reload acts on, put in words. Env values are
//! never shown, only the names of the variables that changed (they may be secrets).

use super::diff::{self, AppChange};
use crate::config::{AppSpec, Ecosystem, UpdateStrategy};

/// One line per app of `new` in file order (`web: rolling update of 4 instances
/// (env.NODE_ENV changed)`, `worker: scale 2 -> 5`, `cron: added`, `db: unchanged`),
/// then one per app that `new` removes.
pub fn preview(old: &Ecosystem, new: &Ecosystem) -> Vec<String> {
    let mut lines: Vec<String> = new
        .apps
        .iter()
        .map(|app| {
            let what = match old.app(&app.name) {
                None => added(app),
                Some(before) => changed(before, app, &diff::diff(before, app)),
            };
            format!("{}: {what}", app.name)
        })
        .collect();
    for app in &old.apps {
        if new.app(&app.name).is_none() {
            lines.push(format!(
                "{}: removed ({} stop)",
                app.name,
                count(app.instances)
            ));
        }
    }
    lines
}

fn count(n: u32) -> String {
    match n {
        1 => "1 instance".to_string(),
        n => format!("{n} instances"),
    }
}

fn added(app: &AppSpec) -> String {
    match app.instances {
        1 => "added".to_string(),
        n => format!("added ({})", count(n)),
    }
}

fn changed(old: &AppSpec, new: &AppSpec, change: &AppChange) -> String {
    let mut parts = Vec::new();
    // The instances that exist before and after are replaced; the others start or stop.
    let replaced = old.instances.min(new.instances);
    if !change.replaced.is_empty() && replaced > 0 {
        let how = match new.update {
            UpdateStrategy::Rolling => "rolling update of",
            UpdateStrategy::Recreate => "recreate",
        };
        let fields = shaping_names(old, new, &change.replaced).join(", ");
        parts.push(format!("{how} {} ({fields} changed)", count(replaced)));
    }
    if let Some((from, to)) = change.scaled {
        parts.push(format!("scale {from} -> {to}"));
    }
    if !change.policy.is_empty() {
        let names = change.policy.join(", ");
        parts.push(format!("{names} changed (applied in place)"));
    }
    if parts.is_empty() {
        "unchanged".to_string()
    } else {
        parts.join("; ")
    }
}

/// The process-shaping fields that changed, `env` spelled out as `env.NAME` per variable.
fn shaping_names(old: &AppSpec, new: &AppSpec, fields: &[&'static str]) -> Vec<String> {
    let mut names = Vec::new();
    for &field in fields {
        if field != "env" {
            names.push(field.to_string());
            continue;
        }
        let keys = old
            .env
            .keys()
            .chain(new.env.keys().filter(|k| !old.env.contains_key(*k)));
        let mut keys: Vec<&String> = keys
            .filter(|k| old.env.get(*k) != new.env.get(*k))
            .collect();
        keys.sort();
        names.extend(keys.into_iter().map(|k| format!("env.{k}")));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn app(name: &str, instances: u32) -> AppSpec {
        let mut a = AppSpec::new(name, "/usr/bin/node", &["node", "server.js"]);
        a.instances = instances;
        a
    }

    fn eco(apps: Vec<AppSpec>) -> Ecosystem {
        Ecosystem {
            path: "/srv/eco.toml".into(),
            settings: crate::config::Settings::default(),
            apps,
        }
    }

    #[test]
    fn the_lines_of_the_spec() {
        let mut web = app("web", 4);
        web.env.insert("NODE_ENV".into(), "development".into());
        let old = eco(vec![web.clone(), app("worker", 2), app("db", 1)]);
        web.env.insert("NODE_ENV".into(), "production".into());
        let new = eco(vec![web, app("worker", 5), app("cron", 1), app("db", 1)]);
        assert_eq!(
            preview(&old, &new),
            [
                "web: rolling update of 4 instances (env.NODE_ENV changed)",
                "worker: scale 2 -> 5",
                "cron: added",
                "db: unchanged",
            ]
        );
    }

    #[test]
    fn removed_added_recreate_policy_and_several_at_once() {
        let mut api = app("api", 3);
        api.env.insert("A".into(), "1".into());
        api.env.insert("SECRET".into(), "hunter2".into());
        let old = eco(vec![api.clone(), app("gone", 2), app("calm", 1)]);
        api.env.remove("A");
        api.env.insert("B".into(), "2".into());
        api.env.insert("SECRET".into(), "hunter3".into());
        api.command.argv.push("--fast".into());
        api.instances = 2;
        api.update = UpdateStrategy::Recreate;
        api.stop_timeout = Duration::from_secs(1);
        let mut calm = app("calm", 1);
        calm.restart_delay = Duration::from_secs(9);
        calm.max_restarts = 3;
        let new = eco(vec![calm, api, app("new", 3)]);
        let lines = preview(&old, &new);
        assert_eq!(
            lines,
            [
                "calm: restart_delay, max_restarts changed (applied in place)",
                "api: recreate 2 instances (command, env.A, env.B, env.SECRET changed); \
                 scale 3 -> 2; stop_timeout, update changed (applied in place)",
                "new: added (3 instances)",
                "gone: removed (2 instances stop)",
            ]
        );
        assert!(!lines.iter().any(|l| l.contains("hunter")), "no env values");
    }

    #[test]
    fn scaling_from_or_to_zero_replaces_nothing() {
        let mut web = app("web", 0);
        let old = eco(vec![web.clone()]);
        web.instances = 2;
        web.cwd = "/srv".into();
        assert_eq!(preview(&old, &eco(vec![web])), ["web: scale 0 -> 2"]);
        let same = eco(vec![app("web", 1)]);
        assert_eq!(preview(&same, &same), ["web: unchanged"]);
        assert!(preview(&eco(vec![]), &eco(vec![])).is_empty());
    }
}
