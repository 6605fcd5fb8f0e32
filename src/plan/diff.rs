//! What a new version of an app changes (SPEC §3): the fields that shape the process
//! (a change replaces the instances by the app's `update` strategy), the instance count
//! (new numbers start, the highest stop), and policy (applied in place).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use crate::config::AppSpec;

/// The fields that shape a process, by name, with a comparable rendering.
fn shape(spec: &AppSpec) -> [(&'static str, String); 10] {
    [
        ("command", format!("{:?} {:?}", spec.command, spec.shell)),
        ("cwd", format!("{:?}", spec.cwd)),
        ("env", format!("{:?}", spec.env)),
        ("instance_var", format!("{:?}", spec.instance_var)),
        ("user", format!("{:?}", spec.user)),
        ("group", format!("{:?}", spec.group)),
        ("listen", format!("{:?}", spec.listen)),
        ("limits", format!("{:?}", spec.limits)),
        ("umask", format!("{:?}", spec.umask)),
        ("env_file", format!("{:?}", spec.env_file)),
    ]
}

/// A fingerprint of everything that shapes the app's processes, plus the app's restart
/// epoch (bumped by `watch` and, later, `supervise reload`). Instances whose generation
/// differs from it are replaced.
pub fn generation(spec: &AppSpec, epoch: u64) -> u64 {
    let mut h = DefaultHasher::new();
    for (name, value) in shape(spec) {
        name.hash(&mut h);
        value.hash(&mut h);
    }
    epoch.hash(&mut h);
    h.finish()
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct AppChange {
    /// Process-shaping fields that differ: the instances will be replaced.
    pub replaced: Vec<&'static str>,
    /// `instances` went from .. to ..
    pub scaled: Option<(u32, u32)>,
    /// Some policy field differs (restart, delays, stop_signal, ...).
    pub policy: bool,
}

impl AppChange {
    pub fn is_empty(&self) -> bool {
        *self == AppChange::default()
    }
}

pub fn diff(old: &AppSpec, new: &AppSpec) -> AppChange {
    let replaced = shape(old)
        .into_iter()
        .zip(shape(new))
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, _)| a.0)
        .collect();
    let scaled = (old.instances != new.instances).then_some((old.instances, new.instances));
    // Policy: everything else. Compare with the shape and count made equal.
    let mut policy_old = new.clone();
    policy_old.restart = old.restart;
    policy_old.restart_delay = old.restart_delay;
    policy_old.backoff_max = old.backoff_max;
    policy_old.min_uptime = old.min_uptime;
    policy_old.max_restarts = old.max_restarts;
    policy_old.stop_signal = old.stop_signal;
    policy_old.stop_timeout = old.stop_timeout;
    policy_old.ready = old.ready.clone();
    policy_old.ready_timeout = old.ready_timeout;
    policy_old.health = old.health.clone();
    policy_old.watchdog = old.watchdog;
    policy_old.depends_on = old.depends_on.clone();
    policy_old.max_memory = old.max_memory;
    policy_old.watch = old.watch.clone();
    policy_old.ignore = old.ignore.clone();
    policy_old.update = old.update;
    policy_old.instances_max = old.instances_max;
    AppChange {
        replaced,
        scaled,
        policy: policy_old != *new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RestartPolicy, UpdateStrategy};
    use std::time::Duration;

    fn base() -> AppSpec {
        AppSpec::new("web", "/usr/bin/node", &["node", "server.js"])
    }

    #[test]
    fn field_classes() {
        type Edit = Box<dyn Fn(&mut AppSpec)>;
        let cases: Vec<(&str, Edit, AppChange)> = vec![
            ("nothing", Box::new(|_| {}), AppChange::default()),
            (
                "command",
                Box::new(|s| s.command.argv.push("--port".into())),
                AppChange {
                    replaced: vec!["command"],
                    ..Default::default()
                },
            ),
            (
                "shell",
                Box::new(|s| s.shell = true),
                AppChange {
                    replaced: vec!["command"],
                    ..Default::default()
                },
            ),
            (
                "env",
                Box::new(|s| {
                    s.env.insert("A".into(), "1".into());
                }),
                AppChange {
                    replaced: vec!["env"],
                    ..Default::default()
                },
            ),
            (
                "cwd",
                Box::new(|s| s.cwd = "/srv".into()),
                AppChange {
                    replaced: vec!["cwd"],
                    ..Default::default()
                },
            ),
            (
                "user",
                Box::new(|s| s.user = Some("nobody".into())),
                AppChange {
                    replaced: vec!["user"],
                    ..Default::default()
                },
            ),
            (
                "instances",
                Box::new(|s| s.instances = 5),
                AppChange {
                    scaled: Some((1, 5)),
                    ..Default::default()
                },
            ),
            (
                "restart",
                Box::new(|s| s.restart = RestartPolicy::Never),
                AppChange {
                    policy: true,
                    ..Default::default()
                },
            ),
            (
                "delays",
                Box::new(|s| s.restart_delay = Duration::from_secs(3)),
                AppChange {
                    policy: true,
                    ..Default::default()
                },
            ),
            (
                "update",
                Box::new(|s| s.update = UpdateStrategy::Recreate),
                AppChange {
                    policy: true,
                    ..Default::default()
                },
            ),
            (
                "stop_timeout",
                Box::new(|s| s.stop_timeout = Duration::from_secs(1)),
                AppChange {
                    policy: true,
                    ..Default::default()
                },
            ),
        ];
        for (name, edit, want) in cases {
            let old = base();
            let mut new = base();
            edit(&mut new);
            assert_eq!(diff(&old, &new), want, "{name}");
            let same_generation = generation(&old, 0) == generation(&new, 0);
            assert_eq!(same_generation, want.replaced.is_empty(), "{name}");
        }
    }

    #[test]
    fn epoch_changes_the_generation() {
        assert_ne!(generation(&base(), 0), generation(&base(), 1));
    }

    #[test]
    fn several_fields_at_once() {
        let old = base();
        let mut new = base();
        new.env.insert("X".into(), "y".into());
        new.instances = 3;
        new.max_restarts = 2;
        let c = diff(&old, &new);
        assert_eq!(c.replaced, vec!["env"]);
        assert_eq!(c.scaled, Some((1, 3)));
        assert!(c.policy);
    }
}
