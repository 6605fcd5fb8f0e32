//! Keys users bring from PM2, supervisord, docker compose and Procfile-era tools (SPEC §6):
//! an unknown app key that is one of theirs is answered with ours, or with what to do
//! instead, rather than with a list of every key we know.
//!
//! A key that becomes ours is in the schema's key list, never reaches the unknown-key
//! message, and so its hint here goes quiet by itself; delete it then.

/// (their key, the rest of the message after "unknown key `KEY`; ").
const HINTS: &[(&str, &str)] = &[
    // PM2 (ecosystem.config.js)
    ("script", "the program and its arguments go in `command` (e.g. command = [\"node\", \"app.js\"])"),
    ("args", "the arguments go in `command` after the program (e.g. command = [\"node\", \"app.js\", \"--port\", \"3000\"])"),
    ("interpreter", "put the interpreter first in `command` (e.g. command = [\"python3\", \"app.py\"])"),
    ("node_args", "put node's options in `command` (e.g. command = [\"node\", \"--max-old-space-size=512\", \"app.js\"]) or in env.NODE_OPTIONS"),
    ("interpreter_args", "put the interpreter's options in `command`, before the script"),
    ("exec_mode", "cluster mode is `listen` (supervise binds the address once and every instance shares it) with `instances = N`; without `listen` each instance is a plain process (PM2's fork mode)"),
    ("max_memory_restart", "use `max_memory` (e.g. max_memory = \"512MiB\")"),
    ("autorestart", "use `restart` (\"always\", \"on-failure\" or \"never\"; autorestart = false is restart = \"never\")"),
    ("kill_timeout", "use `stop_timeout` (a duration, e.g. stop_timeout = \"5s\")"),
    ("listen_timeout", "use `ready_timeout` (a duration, e.g. ready_timeout = \"10s\")"),
    ("wait_ready", "use ready = \"notify\" (the app sends READY=1 over NOTIFY_SOCKET) or ready = { http = \"http://127.0.0.1:3000/health\" }"),
    ("exp_backoff_restart_delay", "use `restart_delay`: supervise always doubles it per consecutive crash, up to `backoff_max`"),
    ("ignore_watch", "use `ignore` (glob patterns, next to `watch`)"),
    ("out_file", "set `log_dir` in [settings]: each instance writes APP.N.out.log and APP.N.err.log there, rotated"),
    ("error_file", "set `log_dir` in [settings]: each instance writes APP.N.out.log and APP.N.err.log there, rotated"),
    ("log_file", "set `log_dir` and `merge_logs = true` in [settings]: each instance writes APP.N.log there, rotated"),
    ("log_date_format", "set `log_timestamps = true` in [settings]"),
    ("time", "set `log_timestamps = true` in [settings]"),
    ("env_production", "there are no env_* variants: put the values in `env` or in an `env_file`, one ecosystem file per environment"),
    ("env_development", "there are no env_* variants: put the values in `env` or in an `env_file`, one ecosystem file per environment"),
    ("uid", "use `user` (a name or a number)"),
    ("gid", "use `group` (a name or a number)"),
    ("name", "the app's name is its table key: [apps.NAME] in TOML, apps: NAME: in YAML"),
    ("treekill", "not needed: stopping an instance always signals its whole process group"),
    ("shutdown_with_message", "use `stop_signal` (e.g. stop_signal = \"SIGINT\")"),
    // supervisord ([program:x])
    ("numprocs", "use `instances`"),
    ("environment", "use `env` (a table, e.g. env = { NODE_ENV = \"production\" })"),
    ("directory", "use `cwd`"),
    ("autostart", "every app starts; `instances = 0` keeps an app defined but not running"),
    ("startsecs", "use `min_uptime` (a duration, e.g. min_uptime = \"1s\")"),
    ("startretries", "use `max_restarts`"),
    ("stopsignal", "use `stop_signal` (e.g. stop_signal = \"SIGTERM\")"),
    ("stopwaitsecs", "use `stop_timeout` (a duration, e.g. stop_timeout = \"10s\")"),
    ("stopasgroup", "not needed: stopping an instance always signals its whole process group"),
    ("killasgroup", "not needed: SIGKILL always goes to the instance's whole process group"),
    ("stdout_logfile", "set `log_dir` in [settings]: each instance writes APP.N.out.log and APP.N.err.log there, rotated"),
    ("stderr_logfile", "set `log_dir` in [settings]: each instance writes APP.N.out.log and APP.N.err.log there, rotated"),
    ("redirect_stderr", "set `merge_logs = true` (with `log_dir`) in [settings]"),
    ("priority", "use `depends_on` to order apps"),
    // docker compose (services.x)
    ("image", "supervise runs programs, not images: put the program in `command`"),
    ("entrypoint", "put the whole command line in `command`"),
    ("working_dir", "use `cwd`"),
    ("ports", "use `listen` (e.g. listen = [\"tcp://0.0.0.0:3000\"]): supervise binds it once and passes it to every instance"),
    ("healthcheck", "use `health` (e.g. health = { http = \"http://127.0.0.1:3000/health\" }) and `ready`"),
    ("replicas", "use `instances`"),
    ("deploy", "use `instances` for replicas and `limits` / `max_memory` for resources"),
    ("stop_grace_period", "use `stop_timeout` (a duration, e.g. stop_timeout = \"10s\")"),
    ("ulimits", "use `limits` (e.g. limits = { nofile = 65536 })"),
    ("mem_limit", "use `max_memory` (supervise restarts an instance whose memory passes it)"),
    ("environment_file", "use `env_file`"),
];

/// The hint for a key another tool uses, if we know one.
pub(crate) fn hint(key: &str) -> Option<&'static str> {
    let key = key.to_ascii_lowercase().replace('-', "_");
    HINTS.iter().find(|(k, _)| *k == key).map(|(_, h)| *h)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::schema::{APP_KEYS, SETTINGS_KEYS};
    use super::*;

    fn error(text: &str) -> String {
        match super::super::load_str(Path::new("ecosystem.toml"), text) {
            Ok(_) => panic!("should be refused:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn no_hint_shadows_a_key_of_ours() {
        for (key, _) in HINTS {
            assert!(
                !APP_KEYS.contains(key),
                "`{key}` is ours now: drop its hint"
            );
        }
    }

    #[test]
    fn keys_from_other_tools_name_ours_in_the_located_error() {
        let cases = [
            (
                "script = \"app.js\"",
                "the program and its arguments go in `command`",
            ),
            ("exec_mode = \"cluster\"", "cluster mode is `listen`"),
            ("max_memory_restart = \"300M\"", "use `max_memory`"),
            ("autorestart = false", "use `restart`"),
            ("kill_timeout = 3000", "use `stop_timeout`"),
            ("numprocs = 4", "use `instances`"),
            ("environment = { A = \"1\" }", "use `env`"),
            ("out_file = \"out.log\"", "set `log_dir` in [settings]"),
            ("error_file = \"err.log\"", "set `log_dir` in [settings]"),
            (
                "env_production = { A = \"1\" }",
                "there are no env_* variants",
            ),
            ("stop_grace_period = \"5s\"", "use `stop_timeout`"),
        ];
        for (line, want) in cases {
            let key = line.split(' ').next().unwrap();
            let err = error(&format!("[apps.web]\ncommand = \"true\"\n{line}\n"));
            let head = format!("ecosystem.toml:3:1: apps.web.{key}: unknown key `{key}`; {want}");
            assert!(err.starts_with(&head), "{line}:\n{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }

    #[test]
    fn exact_message_and_spelling_variants() {
        assert_eq!(
            error("[apps.web]\ncommand = \"true\"\nmax-memory-restart = \"1G\"\n"),
            "ecosystem.toml:3:1: apps.web.max-memory-restart: unknown key `max-memory-restart`; \
             use `max_memory` (e.g. max_memory = \"512MiB\")"
        );
    }

    #[test]
    fn hints_are_for_app_tables_only() {
        let err = error("[settings]\nscript = 1\n[apps.web]\ncommand = \"true\"\n");
        assert!(
            err.starts_with(
                "ecosystem.toml:2:1: settings.script: unknown key `script`; expected one of"
            ),
            "{err}"
        );
        assert!(!SETTINGS_KEYS.contains(&"script"));
    }
}
