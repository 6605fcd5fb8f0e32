//! SPEC section 1, key by key: the located tree -> `Settings` and `AppSpec`s.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::error::Pos;
use super::model::{AppSpec, Dependency, LogFormat, RestartPolicy, Settings, UpdateStrategy};
use super::node::{Entry, Node};
use super::per_instance;
use super::read::{elem, join, Ctx};
use super::resolve;
use super::schedule::CronTimes;
use super::structured;

pub(crate) const TOP_KEYS: &[&str] = &["settings", "apps"];

pub(crate) const SETTINGS_KEYS: &[&str] = &[
    "socket",
    "stop_timeout",
    "log_format",
    "log_timestamps",
    "log_dir",
    "log_max_size",
    "log_keep",
    "merge_logs",
    "http",
    "shutdown_delay",
];

pub(crate) const APP_KEYS: &[&str] = &[
    "command",
    "shell",
    "instances",
    "cwd",
    "env",
    "env_file",
    "instance_var",
    "restart",
    "restart_delay",
    "backoff_max",
    "min_uptime",
    "max_restarts",
    "stop_signal",
    "stop_timeout",
    "listen",
    "listen_adapter",
    "ready",
    "ready_timeout",
    "health",
    "watchdog",
    "depends_on",
    "user",
    "group",
    "limits",
    "max_memory",
    "umask",
    "watch",
    "ignore",
    "update",
    "port",
    "schedule",
    "cron_restart",
    "min_ready",
    "max_surge",
    "critical",
    "success_exit_codes",
];

/// At most this many instances per app (SPEC).
pub(crate) const MAX_INSTANCES: u64 = 10_000;

/// An app as converted, with the positions the cross-app checks need.
pub(crate) struct Draft {
    pub spec: AppSpec,
    /// `depends_on` entries with their positions and key paths.
    pub depends_on: Vec<(String, Pos, String)>,
    /// Position of each `listen` entry (same order as `spec.listen`).
    pub listen_pos: Vec<Pos>,
}

/// The whole document: settings and app drafts.
pub(crate) fn document(ctx: &mut Ctx, root: &Node) -> (Settings, Vec<Draft>) {
    if root.entries().is_none() {
        let msg = format!(
            "expected a table with `apps` (and optionally `settings`) at the top of the file, found {}",
            root.found()
        );
        ctx.error(root.pos, "", msg);
        return (Settings::default(), Vec::new());
    }
    let fields = ctx.fields(root, "", TOP_KEYS);
    let find = |k: &str| fields.iter().find(|e| e.key == k).copied();
    let settings = match find("settings") {
        Some(e) => settings(ctx, &e.value),
        None => Settings::default(),
    };
    let mut drafts = Vec::new();
    match find("apps") {
        None => ctx.error(
            Pos::START,
            "apps",
            "no apps: the file must define at least one app (e.g. [apps.web])",
        ),
        Some(e) => {
            let Some(entries) = e.value.entries() else {
                ctx.expected(&e.value, "apps", "a table of apps keyed by name");
                return (settings, drafts);
            };
            if entries.is_empty() {
                ctx.error(e.value.pos, "apps", "no apps: the `apps` table is empty");
            }
            for app in entries {
                drafts.push(app_draft(ctx, app, &settings));
            }
        }
    }
    (settings, drafts)
}

fn settings(ctx: &mut Ctx, node: &Node) -> Settings {
    let mut s = Settings::default();
    for e in ctx.fields(node, "settings", SETTINGS_KEYS) {
        let path = join("settings", &e.key);
        let v = &e.value;
        match e.key.as_str() {
            "socket" => s.socket = ctx.path(v, &path, &ctx.base.clone()),
            "stop_timeout" => set(&mut s.stop_timeout, ctx.duration(v, &path)),
            "log_format" => {
                let f = ctx.choice(v, &path, &["text", "json"]);
                set(
                    &mut s.log_format,
                    f.map(|i| [LogFormat::Text, LogFormat::Json][i]),
                );
            }
            "log_timestamps" => set(&mut s.log_timestamps, ctx.boolean(v, &path)),
            "log_dir" => s.log_dir = ctx.path(v, &path, &ctx.base.clone()),
            "log_max_size" => match ctx.size(v, &path) {
                Some(0) => ctx.error(v.pos, &path, "must be more than 0 bytes"),
                other => set(&mut s.log_max_size, other),
            },
            "log_keep" => set(
                &mut s.log_keep,
                ctx.whole(v, &path, u32::MAX.into()).map(|n| n as u32),
            ),
            "merge_logs" => set(&mut s.merge_logs, ctx.boolean(v, &path)),
            "http" => s.http = structured::http_addr(ctx, v, &path),
            "shutdown_delay" => set(&mut s.shutdown_delay, ctx.duration(v, &path)),
            _ => unreachable!("key list and match disagree"),
        }
    }
    s
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// An app name is used in `APP.N` instance names, log prefixes and file names.
fn valid_app_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn app_draft(ctx: &mut Ctx, app: &Entry, settings: &Settings) -> Draft {
    let name = app.key.as_str();
    let path = join("apps", name);
    if !valid_app_name(name) {
        let why = if name.contains('.') {
            "must not contain `.` (instances are named APP.N)"
        } else if name.is_empty() {
            "must not be empty"
        } else {
            "may only contain letters, digits, `_` and `-`"
        };
        ctx.error(
            app.key_pos,
            &path,
            format!("invalid app name: an app name {why}"),
        );
    }
    let fields = ctx.fields(&app.value, &path, APP_KEYS);
    // Not a table: reported by `fields`; the draft keeps the name known to `depends_on`.
    let is_table = app.value.entries().is_some();
    let get = |k: &str| fields.iter().find(|e| e.key == k).map(|e| &e.value);
    let mut spec = AppSpec::new(name, "", &[]);
    spec.stop_timeout = settings.stop_timeout;
    if let Some(v) = get("listen_adapter") {
        let p = join(&path, "listen_adapter");
        set(&mut spec.listen_adapter, ctx.boolean(v, &p));
    }
    if let Some(v) = get("shell") {
        set(&mut spec.shell, ctx.boolean(v, &join(&path, "shell")));
    }
    // cwd first: the command and `watch` are resolved against it.
    let mut cwd_ok = true;
    spec.cwd = ctx.base.clone();
    let cwd_template = get("cwd").and_then(per_instance::cwd_template);
    if let Some(v) = get("cwd").filter(|_| cwd_template.is_some()) {
        // Checked per instance below, once the count is known.
        set(
            &mut spec.cwd,
            ctx.path(v, &join(&path, "cwd"), &ctx.base.clone()),
        );
    } else if let Some(v) = get("cwd") {
        match resolve::directory(ctx, v, &join(&path, "cwd")) {
            Some(dir) => spec.cwd = dir,
            None => cwd_ok = false,
        }
    } else if let Ok(dir) = spec.cwd.canonicalize() {
        spec.cwd = dir;
    }
    match get("command") {
        Some(v) => {
            let cmd_path = join(&path, "command");
            let cwd = per_instance::instance_cwd(&spec, 0);
            if let Some(cmd) = resolve::command(ctx, v, &cmd_path, spec.shell, &cwd, cwd_ok) {
                spec.command = cmd;
            }
        }
        None if is_table => ctx.error(
            app.key_pos,
            &path,
            "missing key `command` (the program to run, e.g. command = [\"node\", \"server.js\"])",
        ),
        None => {}
    }
    if let Some(v) = get("instances") {
        let p = join(&path, "instances");
        match &v.kind {
            super::node::Kind::Str(s) if s == "max" => {
                spec.instances_max = true;
                spec.instances = std::thread::available_parallelism()
                    .map(|n| n.get() as u32)
                    .unwrap_or(1);
            }
            super::node::Kind::Int(i) if *i as u64 > MAX_INSTANCES && *i >= 0 => {
                ctx.error(
                    v.pos,
                    &p,
                    format!("expected at most {MAX_INSTANCES} instances, found {i}"),
                );
            }
            super::node::Kind::Int(i) if *i >= 0 => spec.instances = *i as u32,
            _ => ctx.expected(v, &p, "a whole number or \"max\""),
        }
    }
    let mut env = BTreeMap::new();
    if let Some(v) = get("env_file") {
        if let Some((file, vars)) = resolve::env_file(ctx, v, &join(&path, "env_file")) {
            spec.env_file = Some(file);
            env = vars;
        }
    }
    if let Some(v) = get("env") {
        env.extend(resolve::env_table(ctx, v, &join(&path, "env")));
    }
    spec.env = env;
    if let Some(v) = get("instance_var") {
        let p = join(&path, "instance_var");
        if let Some(s) = ctx.string(v, &p) {
            if resolve::strict_env_name(&s) {
                spec.instance_var = Some(s);
            } else {
                ctx.error(
                    v.pos,
                    &p,
                    format!(
                        "expected a variable name (letters, digits and `_`, not starting with a digit), found {}",
                        v.found()
                    ),
                );
            }
        }
    }
    if let Some(v) = get("restart") {
        let policies = [
            RestartPolicy::Always,
            RestartPolicy::OnFailure,
            RestartPolicy::Never,
        ];
        let i = ctx.choice(
            v,
            &join(&path, "restart"),
            &["always", "on-failure", "never"],
        );
        set(&mut spec.restart, i.map(|i| policies[i]));
    }
    if let Some(v) = get("update") {
        let i = ctx.choice(v, &join(&path, "update"), &["rolling", "recreate"]);
        let all = [UpdateStrategy::Rolling, UpdateStrategy::Recreate];
        set(&mut spec.update, i.map(|i| all[i]));
    }
    for (key, slot) in [
        ("restart_delay", &mut spec.restart_delay),
        ("backoff_max", &mut spec.backoff_max),
        ("min_uptime", &mut spec.min_uptime),
        ("stop_timeout", &mut spec.stop_timeout),
        ("ready_timeout", &mut spec.ready_timeout),
        ("min_ready", &mut spec.min_ready),
    ] {
        if let Some(v) = get(key) {
            set(slot, ctx.duration(v, &join(&path, key)));
        }
    }
    if let Some(v) = get("watchdog") {
        spec.watchdog = ctx.duration(v, &join(&path, "watchdog"));
    }
    if let Some(v) = get("max_surge") {
        let p = join(&path, "max_surge");
        match ctx.whole(v, &p, MAX_INSTANCES) {
            Some(0) => ctx.error(
                v.pos,
                &p,
                "expected at least 1 (instances replaced at once)",
            ),
            n => set(&mut spec.max_surge, n.map(|n| n as u32)),
        }
    }
    if let Some(v) = get("critical") {
        set(&mut spec.critical, ctx.boolean(v, &join(&path, "critical")));
    }
    if let Some(v) = get("success_exit_codes") {
        spec.success_exit_codes =
            structured::exit_codes(ctx, v, &join(&path, "success_exit_codes"));
    }
    if let Some(v) = get("max_restarts") {
        let n = ctx.whole(v, &join(&path, "max_restarts"), u32::MAX.into());
        set(&mut spec.max_restarts, n.map(|n| n as u32));
    }
    if let Some(v) = get("stop_signal") {
        let p = join(&path, "stop_signal");
        if let Some(s) = ctx.string(v, &p) {
            match super::units::parse_signal(&s) {
                Ok(sig) => spec.stop_signal = sig,
                Err(why) => ctx.error(
                    v.pos,
                    &p,
                    format!("expected a signal name, found {} ({why})", v.found()),
                ),
            }
        }
    }
    let mut listen_pos = Vec::new();
    if let Some(v) = get("listen") {
        let p = join(&path, "listen");
        for (i, (s, pos)) in ctx
            .strings(v, &p, false)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            match structured::listen(&s, &ctx.base) {
                Ok(addr) => {
                    spec.listen.push(addr);
                    listen_pos.push(pos);
                }
                Err(why) => ctx.error(pos, &elem(&p, i), why),
            }
        }
    }
    if let Some(v) = get("ready") {
        set(
            &mut spec.ready,
            structured::ready(ctx, v, &join(&path, "ready")),
        );
    }
    if let Some(v) = get("health") {
        spec.health = structured::health(ctx, v, &join(&path, "health"));
    }
    let mut depends_on: Vec<(String, Pos, String)> = Vec::new();
    if let Some(v) = get("depends_on") {
        for (app, condition, pos, key) in
            structured::dependencies(ctx, v, &join(&path, "depends_on"))
        {
            if !depends_on.iter().any(|(d, _, _)| *d == app) {
                spec.depends_on.push(Dependency {
                    app: app.clone(),
                    condition,
                });
                depends_on.push((app, pos, key));
            }
        }
    }
    if let Some(v) = get("user") {
        spec.user = resolve::account(ctx, v, &join(&path, "user"), false);
    }
    if let Some(v) = get("group") {
        spec.group = resolve::account(ctx, v, &join(&path, "group"), true);
    }
    if let Some(v) = get("limits") {
        spec.limits = structured::limits(ctx, v, &join(&path, "limits"));
    }
    if let Some(v) = get("max_memory") {
        let p = join(&path, "max_memory");
        match ctx.size(v, &p) {
            Some(0) => ctx.error(v.pos, &p, "must be more than 0 bytes"),
            n => spec.max_memory = n,
        }
    }
    if let Some(v) = get("umask") {
        spec.umask = umask(ctx, v, &join(&path, "umask"));
    }
    if let Some(v) = get("watch") {
        let p = join(&path, "watch");
        let cwd = spec.cwd.clone();
        spec.watch = ctx
            .strings(v, &p, false)
            .unwrap_or_default()
            .into_iter()
            .map(|(s, _)| super::read::clean(&cwd.join(s)))
            .collect::<Vec<PathBuf>>();
    }
    if let Some(v) = get("ignore") {
        let key = join(&path, "ignore");
        let list = ctx.strings(v, &key, false).unwrap_or_default();
        for (i, (pattern, pos)) in list.iter().enumerate() {
            if let Err(e) = glob::Pattern::new(pattern) {
                ctx.error(
                    *pos,
                    &format!("{key}[{i}]"),
                    format!("bad pattern {pattern:?}: {}", e.msg),
                );
            }
        }
        spec.ignore = list.into_iter().map(|(s, _)| s).collect();
    }
    for key in ["schedule", "cron_restart"] {
        if let Some(v) = get(key) {
            let p = join(&path, key);
            let times = ctx.string(v, &p).and_then(|s| match CronTimes::parse(&s) {
                Ok(t) => Some(t),
                Err(why) => {
                    ctx.error(v.pos, &p, why);
                    None
                }
            });
            match key {
                "schedule" => spec.schedule = times,
                _ => spec.cron_restart = times,
            }
        }
    }
    if let (Some(_), Some(v)) = (&spec.schedule, get("cron_restart")) {
        ctx.error(
            v.pos,
            &join(&path, "cron_restart"),
            "an app with `schedule` is a job that runs at its times; `cron_restart` is for long-running apps",
        );
    }
    if let Some(v) = get("port") {
        spec.port = per_instance::port(ctx, v, &join(&path, "port"), spec.instances);
    }
    for key in per_instance::TEMPLATE_KEYS {
        if let Some(v) = get(key) {
            per_instance::check(ctx, v, &join(&path, key), spec.port.is_some());
        }
    }
    if let Some(v) = get("cwd").filter(|_| cwd_template.is_some()) {
        per_instance::check_cwds(ctx, v, &join(&path, "cwd"), &spec);
    }
    if spec.port.is_some() && spec.env.contains_key("PORT") {
        if let Some(v) = get("env") {
            ctx.error(
                v.pos,
                &join(&path, "env"),
                "`env.PORT` and `port` both set PORT: remove one (with `port`, instance N gets PORT = port + N)",
            );
        }
    }
    Draft {
        spec,
        depends_on,
        listen_pos,
    }
}

/// `umask = "0027"`: octal digits in a string (a bare number would read as decimal in
/// TOML and differently across YAML versions).
fn umask(ctx: &mut Ctx, node: &Node, path: &str) -> Option<u32> {
    let super::node::Kind::Str(text) = &node.kind else {
        ctx.expected(node, path, "an octal string such as \"0022\"");
        return None;
    };
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mask) if mask <= 0o777 && !digits.is_empty() => Some(mask),
        _ => {
            ctx.error(
                node.pos,
                path,
                format!("expected an octal umask such as \"0022\", found {text:?}"),
            );
            None
        }
    }
}
