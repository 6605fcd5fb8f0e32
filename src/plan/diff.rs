//! What a new version of an app changes (SPEC §3): the fields that shape the process
//! (a change replaces the instances by the app's `update` strategy), the instance count
//! (new numbers start, the highest stop), and policy (applied in place).
//!
//! [`classes`] names every `AppSpec` field in one destructuring without `..`: a field
//! added to `AppSpec` does not compile until it is sorted into a class here, so a reload
//! cannot silently ignore it.

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::config::{
    AppSpec, CommandLine, CronTimes, Dependency, HealthSpec, Limit, ListenAddr, ReadySpec,
    RestartPolicy, UpdateStrategy,
};

/// The value of one process-shaping field, borrowed from a spec.
#[derive(PartialEq, Hash)]
enum Shaping<'a> {
    Command(&'a CommandLine, bool),
    Path(&'a Path),
    File(Option<&'a PathBuf>),
    Env(&'a BTreeMap<String, String>),
    Name(Option<&'a String>),
    Listen(&'a [ListenAddr]),
    Limits(&'a [Limit]),
    Umask(Option<u32>),
    Flag(bool),
    Port(Option<u16>),
}

/// The value of one policy field, borrowed from a spec: applied in place to running
/// instances.
#[derive(PartialEq)]
enum Policy<'a> {
    Restart(RestartPolicy),
    Time(Duration),
    MaybeTime(Option<Duration>),
    Count(u32),
    Signal(Signal),
    Ready(&'a ReadySpec),
    Health(Option<&'a HealthSpec>),
    Names(&'a [String]),
    Dependencies(&'a [Dependency]),
    Bytes(Option<u64>),
    Paths(&'a [PathBuf]),
    Update(UpdateStrategy),
    Flag(bool),
    Cron(Option<&'a CronTimes>),
    Codes(&'a [i32]),
}

/// One spec's fields by class: the process shape (by name), the count, the policy.
struct Classes<'a> {
    shape: [(&'static str, Shaping<'a>); 12],
    instances: u32,
    policy: [(&'static str, Policy<'a>); 23],
}

/// Every field of `AppSpec`, sorted into its class. No `..`: see the module doc.
fn classes(spec: &AppSpec) -> Classes<'_> {
    let AppSpec {
        // Identity: an app with another name is another app.
        name: _,
        // Process-shaping.
        command,
        shell,
        cwd,
        env,
        env_file,
        instance_var,
        user,
        group,
        listen,
        listen_adapter,
        limits,
        umask,
        port,
        // The count.
        instances,
        // Policy.
        instances_max,
        restart,
        restart_delay,
        backoff_max,
        min_uptime,
        max_restarts,
        stop_signal,
        stop_timeout,
        ready,
        ready_timeout,
        health,
        watchdog,
        depends_on,
        max_memory,
        watch,
        ignore,
        update,
        schedule,
        cron_restart,
        min_ready,
        max_surge,
        critical,
        success_exit_codes,
    } = spec;
    Classes {
        shape: [
            ("command", Shaping::Command(command, *shell)),
            ("cwd", Shaping::Path(cwd)),
            ("env", Shaping::Env(env)),
            ("instance_var", Shaping::Name(instance_var.as_ref())),
            ("user", Shaping::Name(user.as_ref())),
            ("group", Shaping::Name(group.as_ref())),
            ("listen", Shaping::Listen(listen)),
            ("listen_adapter", Shaping::Flag(*listen_adapter)),
            ("limits", Shaping::Limits(limits)),
            ("umask", Shaping::Umask(*umask)),
            ("env_file", Shaping::File(env_file.as_ref())),
            ("port", Shaping::Port(*port)),
        ],
        instances: *instances,
        policy: [
            ("restart", Policy::Restart(*restart)),
            ("restart_delay", Policy::Time(*restart_delay)),
            ("backoff_max", Policy::Time(*backoff_max)),
            ("min_uptime", Policy::Time(*min_uptime)),
            ("max_restarts", Policy::Count(*max_restarts)),
            ("stop_signal", Policy::Signal(*stop_signal)),
            ("stop_timeout", Policy::Time(*stop_timeout)),
            ("ready", Policy::Ready(ready)),
            ("ready_timeout", Policy::Time(*ready_timeout)),
            ("health", Policy::Health(health.as_ref())),
            ("watchdog", Policy::MaybeTime(*watchdog)),
            ("depends_on", Policy::Dependencies(depends_on)),
            ("max_memory", Policy::Bytes(*max_memory)),
            ("watch", Policy::Paths(watch)),
            ("ignore", Policy::Names(ignore)),
            ("update", Policy::Update(*update)),
            // `instances = "max"` in the file.
            ("instances", Policy::Flag(*instances_max)),
            ("schedule", Policy::Cron(schedule.as_ref())),
            ("cron_restart", Policy::Cron(cron_restart.as_ref())),
            ("min_ready", Policy::Time(*min_ready)),
            ("max_surge", Policy::Count(*max_surge)),
            ("critical", Policy::Flag(*critical)),
            ("success_exit_codes", Policy::Codes(success_exit_codes)),
        ],
    }
}

/// A fingerprint of everything that shapes the app's processes, plus the app's restart
/// epoch (bumped by `watch` and, later, `supervise reload`). Instances whose generation
/// differs from it are replaced.
pub fn generation(spec: &AppSpec, epoch: u64) -> u64 {
    let mut h = DefaultHasher::new();
    classes(spec).shape.hash(&mut h);
    epoch.hash(&mut h);
    h.finish()
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct AppChange {
    /// Process-shaping fields that differ: the instances will be replaced.
    pub replaced: Vec<&'static str>,
    /// `instances` went from .. to ..
    pub scaled: Option<(u32, u32)>,
    /// Policy fields that differ (restart, delays, stop_signal, ...): applied in place.
    pub policy: Vec<&'static str>,
}

impl AppChange {
    pub fn is_empty(&self) -> bool {
        *self == AppChange::default()
    }
}

pub fn diff(old: &AppSpec, new: &AppSpec) -> AppChange {
    let (old, new) = (classes(old), classes(new));
    AppChange {
        replaced: changed(&old.shape, &new.shape),
        scaled: (old.instances != new.instances).then_some((old.instances, new.instances)),
        policy: changed(&old.policy, &new.policy),
    }
}

/// The names of the fields whose values differ (both lists come from [`classes`]).
fn changed<T: PartialEq>(
    old: &[(&'static str, T)],
    new: &[(&'static str, T)],
) -> Vec<&'static str> {
    old.iter()
        .zip(new)
        .filter(|(a, b)| a.1 != b.1)
        .map(|(a, _)| a.0)
        .collect()
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
                    policy: vec!["restart"],
                    ..Default::default()
                },
            ),
            (
                "delays",
                Box::new(|s| s.restart_delay = Duration::from_secs(3)),
                AppChange {
                    policy: vec!["restart_delay"],
                    ..Default::default()
                },
            ),
            (
                "update",
                Box::new(|s| s.update = UpdateStrategy::Recreate),
                AppChange {
                    policy: vec!["update"],
                    ..Default::default()
                },
            ),
            (
                "max_memory",
                Box::new(|s| s.max_memory = Some(1 << 20)),
                AppChange {
                    policy: vec!["max_memory"],
                    ..Default::default()
                },
            ),
            (
                "umask",
                Box::new(|s| s.umask = Some(0o027)),
                AppChange {
                    replaced: vec!["umask"],
                    ..Default::default()
                },
            ),
            (
                "instances = \"max\"",
                Box::new(|s| s.instances_max = true),
                AppChange {
                    policy: vec!["instances"],
                    ..Default::default()
                },
            ),
            (
                "watchdog",
                Box::new(|s| s.watchdog = Some(Duration::from_secs(5))),
                AppChange {
                    policy: vec!["watchdog"],
                    ..Default::default()
                },
            ),
            (
                "stop_timeout",
                Box::new(|s| s.stop_timeout = Duration::from_secs(1)),
                AppChange {
                    policy: vec!["stop_timeout"],
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
        assert_eq!(c.policy, vec!["max_restarts"]);
    }
}
