//! From an app's spec to the prepared exec spec `os::spawn` runs: the one place that
//! decides what a child gets (its environment, ids, limits, sockets).
//!
//! The slow parts are done ahead of time: supervise's own environment is read once at
//! start, and every app's `user`/`group` is resolved once per config load (NSS may
//! block), so the spawn path and the exec-probe path only copy what is ready.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;

use super::Runtime;
use crate::config::{per_instance, AppSpec, CommandLine, Ecosystem, ReadySpec};
use crate::os;
use crate::os::sockets::fd_name;
use crate::os::spawn::{ExecSpec, Rlimit};
use crate::os::users::{self, Identity};
use crate::state::InstanceId;
use nix::sys::resource::Resource;

/// Variables of supervise's own environment that describe supervise, not its apps.
const NOT_INHERITED: &[&str] = &[
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

pub(super) struct Launcher {
    /// supervise's environment, minus the variables meant for supervise itself.
    base_env: Vec<(OsString, OsString)>,
    /// Per app: its resolved `user`/`group`, or why they did not resolve.
    identities: HashMap<String, Result<Identity, String>>,
    /// What each instance that starts again ran with, for this load (every load calls
    /// `resolve_users`, which empties it): a respawn reuses it instead of building the
    /// environment again, a fifth of supervise's work from an exit to the new clone.
    /// None: started once (most never start again, so nothing is kept for them).
    kept: HashMap<InstanceId, Option<ExecSpec>>,
}

impl Launcher {
    pub(super) fn new(eco: &Ecosystem) -> Launcher {
        let base_env = std::env::vars_os()
            .filter(|(k, _)| !NOT_INHERITED.iter().any(|n| OsStr::new(n) == k))
            .collect();
        let mut launcher = Launcher {
            base_env,
            identities: HashMap::new(),
            kept: HashMap::new(),
        };
        launcher.resolve_users(eco);
        launcher
    }

    /// Look every app's `user` and `group` up: at start and on each reload only.
    /// Apps sharing a (user, group) pair share one lookup.
    pub(super) fn resolve_users(&mut self, eco: &Ecosystem) {
        self.kept.clear();
        type Resolved = Result<Identity, String>;
        let mut seen: HashMap<(Option<&str>, Option<&str>), Resolved> = HashMap::new();
        self.identities = eco
            .apps
            .iter()
            .map(|app| {
                let key = (app.user.as_deref(), app.group.as_deref());
                let identity = seen
                    .entry(key)
                    .or_insert_with(|| users::resolve(key.0, key.1).map_err(|e| e.to_string()))
                    .clone();
                (app.name.clone(), identity)
            })
            .collect();
    }

    /// What `id` ran with at its last start in this load, when it is kept.
    pub(super) fn kept(&self, id: &InstanceId) -> Option<&ExecSpec> {
        self.kept.get(id)?.as_ref()
    }

    /// `exec` started `id`: kept from its second start in this load on.
    pub(super) fn keep(&mut self, id: &InstanceId, exec: ExecSpec) {
        match self.kept.get_mut(id) {
            Some(slot) => *slot = Some(exec),
            None => {
                self.kept.insert(id.clone(), None);
            }
        }
    }

    fn identity(&self, app: &str) -> io::Result<&Identity> {
        match self.identities.get(app) {
            Some(Ok(identity)) => Ok(identity),
            Some(Err(e)) => Err(io::Error::new(io::ErrorKind::NotFound, e.clone())),
            None => Err(io::Error::other(format!("{app}: no resolved user"))),
        }
    }

    /// What instance `index` of `spec` runs: its command, and `command` (an exec
    /// probe's) when given. Probes are quiet and get no sockets or notify socket.
    pub(super) fn exec_spec(
        &self,
        spec: &AppSpec,
        index: u32,
        command: Option<&CommandLine>,
    ) -> io::Result<ExecSpec> {
        let identity = self.identity(&spec.name)?;
        let cmd = command.unwrap_or(&spec.command);
        Ok(ExecSpec {
            program: cmd.program.clone(),
            argv: cmd
                .argv
                .iter()
                .map(|a| OsString::from(per_instance::expand(spec, index, a)))
                .collect(),
            env: instance_env(&self.base_env, spec, index, identity),
            cwd: per_instance::instance_cwd(spec, index),
            ids: identity.ids.clone(),
            limits: limits(spec, os::limits::inherited_nofile()),
            umask: spec.umask,
            quiet: command.is_some(),
            watchdog_usec: match command {
                None if spec.ready == ReadySpec::Notify => spec.watchdog.map(|d| d.as_micros()),
                _ => None,
            },
            ..ExecSpec::default()
        })
    }
}

impl Runtime {
    /// What instance `index` of `spec` runs, with its listening sockets and, for
    /// `ready = "notify"`, the notify socket.
    pub(super) fn instance_exec(&self, spec: &AppSpec, index: u32) -> io::Result<ExecSpec> {
        let mut exec = self.launcher.exec_spec(spec, index, None)?;
        exec.sockets = spec
            .listen
            .iter()
            .filter_map(|addr| Some((self.sockets.get(addr)?.raw_fd(), fd_name(addr))))
            .collect();
        exec.notify_socket = match (&spec.ready, &self.checks.notify) {
            (ReadySpec::Notify, Some(socket)) => Some(socket.path().to_path_buf()),
            _ => None,
        };
        Ok(exec)
    }
}

/// The app's `limits`, plus the open-file limit supervise was given (`inherited`, when
/// it raised its own) unless `limits` sets `nofile`.
fn limits(spec: &AppSpec, inherited: Option<(u64, u64)>) -> Vec<Rlimit> {
    let mut out: Vec<Rlimit> = spec
        .limits
        .iter()
        .map(|l| {
            let value = l.value.unwrap_or(libc::RLIM_INFINITY);
            (l.resource, value, value)
        })
        .collect();
    let set = |r| spec.limits.iter().any(|l| l.resource == r);
    if let Some((soft, hard)) = inherited.filter(|_| !set(Resource::RLIMIT_NOFILE)) {
        out.push((Resource::RLIMIT_NOFILE, soft, hard));
    }
    out
}

/// Descriptors supervise itself holds whatever the apps: stdio, the range reserved
/// for passing sockets, control clients, and the loop's own (poll, signals, waker,
/// notify socket, watcher, writers).
const FIXED_FDS: u64 = 3 + os::fds::RESERVED_FDS as u64 + 64 + 32;

/// About how many descriptors supervise needs for `eco`: the fixed ones, each listening
/// socket, and per instance its stdout and stderr pipes plus its log files.
pub fn fds_needed(eco: &Ecosystem) -> u64 {
    let files_per_instance = match &eco.settings.log_dir {
        None => 0,
        Some(_) if eco.settings.merge_logs => 1,
        Some(_) => 2,
    };
    let per_app =
        |app: &AppSpec| app.listen.len() as u64 + app.instances as u64 * (2 + files_per_instance);
    FIXED_FDS + eco.apps.iter().map(per_app).sum::<u64>()
}

/// `check`'s warning when `fds_needed` passes what supervise may open here.
pub fn fds_warning(eco: &Ecosystem) -> Option<String> {
    let (needed, ceiling) = (fds_needed(eco), os::limits::nofile_ceiling());
    let instances: u64 = eco.apps.iter().map(|a| a.instances as u64).sum();
    (needed > ceiling).then(|| {
        format!(
            "with {instances} instance(s), supervise needs about {needed} open files \
             ({FIXED_FDS} of its own, the rest for the instances' pipes, log files and \
             sockets), more than its hard limit of {ceiling} (raise it: `ulimit -Hn`, \
             LimitNOFILE=, docker --ulimit nofile=)"
        )
    })
}

/// The environment an instance gets: supervise's own (`base`), USER/LOGNAME/HOME of
/// `user`, the app's `env` (placeholders filled in), then `SUPERVISE_APP`,
/// `SUPERVISE_INSTANCE`, `instance_var` and, with `port`, `PORT`. Later entries replace
/// earlier ones of the same name.
pub(super) fn instance_env(
    base: &[(OsString, OsString)],
    spec: &AppSpec,
    index: u32,
    identity: &Identity,
) -> Vec<(OsString, OsString)> {
    let mut env = Env(base.to_vec());
    if let Some(account) = &identity.account {
        env.set("USER", &account.name);
        env.set("LOGNAME", &account.name);
        env.set("HOME", &account.home);
    }
    for (k, v) in &spec.env {
        env.set(k, per_instance::expand(spec, index, v));
    }
    if let Some(port) = per_instance::values(spec, index).port {
        env.set("PORT", port.to_string());
    }
    let index = index.to_string();
    env.set("SUPERVISE_APP", &spec.name);
    env.set("SUPERVISE_INSTANCE", &index);
    if let Some(var) = &spec.instance_var {
        env.set(var, &index);
    }
    env.0
}

/// An environment being built: `set` replaces a variable in place or appends it.
struct Env(Vec<(OsString, OsString)>);

impl Env {
    fn set(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) {
        let (key, value) = (key.as_ref(), value.as_ref());
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_os_string(),
            None => self.0.push((key.to_os_string(), value.to_os_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(env: &[(OsString, OsString)], k: &str) -> Vec<OsString> {
        env.iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .collect()
    }

    #[test]
    fn env_overrides_and_strips_activation_variables() {
        let mut spec = AppSpec::new("web", "/bin/true", &["true"]);
        spec.env.insert("PATH".into(), "/custom".into());
        spec.instance_var = Some("NODE_APP_INSTANCE".into());
        let base = vec![
            ("PATH".into(), "/usr/bin".into()),
            ("TERM".into(), "dumb".into()),
        ];
        let env = instance_env(&base, &spec, 2, &Identity::default());
        assert_eq!(get(&env, "PATH"), vec![OsString::from("/custom")]);
        assert_eq!(get(&env, "TERM"), vec![OsString::from("dumb")]);
        assert_eq!(get(&env, "SUPERVISE_APP"), vec![OsString::from("web")]);
        assert_eq!(get(&env, "SUPERVISE_INSTANCE"), vec![OsString::from("2")]);
        assert_eq!(get(&env, "NODE_APP_INSTANCE"), vec![OsString::from("2")]);
        assert!(get(&env, "PORT").is_empty());
    }

    #[test]
    fn placeholders_and_port_are_filled_in_per_instance() {
        let mut spec = AppSpec::new("web", "/bin/echo", &["echo", "{app}-{instance}:{port}"]);
        spec.port = Some(3000);
        spec.env
            .insert("URL".into(), "http://127.0.0.1:{port}/".into());
        spec.cwd = "/tmp/{{x}}".into();
        let eco = Ecosystem {
            path: "/e.toml".into(),
            settings: Default::default(),
            apps: vec![spec.clone()],
        };
        let exec = Launcher::new(&eco).exec_spec(&spec, 2, None).unwrap();
        assert_eq!(exec.argv[1], OsString::from("web-2:3002"));
        assert_eq!(get(&exec.env, "PORT"), vec![OsString::from("3002")]);
        assert_eq!(
            get(&exec.env, "URL"),
            vec![OsString::from("http://127.0.0.1:3002/")]
        );
        assert_eq!(exec.cwd, std::path::PathBuf::from("/tmp/{x}"));
    }

    #[test]
    fn children_get_the_inherited_open_file_limit_unless_limits_say_otherwise() {
        let mut spec = AppSpec::new("web", "/bin/true", &["true"]);
        assert_eq!(limits(&spec, None), vec![]);
        assert_eq!(
            limits(&spec, Some((1024, 20000))),
            vec![(Resource::RLIMIT_NOFILE, 1024, 20000)]
        );
        spec.limits = vec![crate::config::Limit {
            resource: Resource::RLIMIT_NOFILE,
            value: Some(4096),
        }];
        assert_eq!(
            limits(&spec, Some((1024, 20000))),
            vec![(Resource::RLIMIT_NOFILE, 4096, 4096)]
        );
    }

    #[test]
    fn a_restarting_instance_reuses_its_spec_until_the_next_load() {
        let spec = AppSpec::new("web", "/bin/true", &["true"]);
        let eco = Ecosystem {
            path: "/e.toml".into(),
            settings: Default::default(),
            apps: vec![spec.clone()],
        };
        let mut launcher = Launcher::new(&eco);
        let id = InstanceId::new("web", 0);
        let exec = launcher.exec_spec(&spec, 0, None).unwrap();
        launcher.keep(&id, exec.clone());
        assert!(launcher.kept(&id).is_none(), "not kept after one start");
        launcher.keep(&id, exec.clone());
        assert_eq!(launcher.kept(&id).map(|e| &e.argv), Some(&exec.argv));
        assert!(launcher.kept(&InstanceId::new("web", 1)).is_none());
        launcher.resolve_users(&eco);
        assert!(launcher.kept(&id).is_none(), "a load forgets it");
    }

    #[test]
    fn users_are_resolved_once_per_load_and_probes_reuse_them() {
        let mut web = AppSpec::new("web", "/bin/true", &["true"]);
        web.user = Some("root".into());
        let mut bad = AppSpec::new("bad", "/bin/true", &["true"]);
        bad.user = Some("no-such-user-supervise".into());
        let eco = Ecosystem {
            path: "/e.toml".into(),
            settings: Default::default(),
            apps: vec![web.clone(), bad.clone()],
        };
        let launcher = Launcher::new(&eco);
        let exec = launcher.exec_spec(&web, 0, None).unwrap();
        assert_eq!(exec.ids.as_ref().and_then(|i| i.uid), Some(0));
        assert_eq!(get(&exec.env, "USER"), vec![OsString::from("root")]);
        assert!(!exec.quiet);
        let probe = CommandLine {
            program: "/bin/echo".into(),
            argv: vec!["echo".into(), "hi".into()],
        };
        let exec = launcher.exec_spec(&web, 1, Some(&probe)).unwrap();
        assert_eq!(exec.program, std::path::PathBuf::from("/bin/echo"));
        assert_eq!(exec.argv, vec![OsString::from("echo"), "hi".into()]);
        assert!(exec.quiet && exec.sockets.is_empty());
        let e = launcher.exec_spec(&bad, 0, None).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
