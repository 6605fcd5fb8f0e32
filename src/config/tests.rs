//! Good files: every key from TOML and from YAML gives the same `Ecosystem`; defaults;
//! `describe`; no panic on truncated input.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::resource::Resource;
use nix::sys::signal::Signal;

use super::*;

/// A folder with `app/` (holding an executable `run.sh`) and `.env`.
pub(super) fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("app")).unwrap();
    let script = dir.path().join("app/run.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "# comment\nexport A=from-file\nB='b b'\n",
    )
    .unwrap();
    dir
}

const FULL_TOML: &str = r#"
[settings]
socket = "run/sv.sock"
stop_timeout = "5s"
log_format = "json"
log_timestamps = true
log_dir = "logs"
log_max_size = "1MiB"
log_keep = 3
merge_logs = true

[apps.web]
command = ["./run.sh", "--port", "3000"]
instances = 4
cwd = "app"
env = { NODE_ENV = "production", A = "from-env", PORT = 3000, DEBUG = false }
env_file = ".env"
instance_var = "NODE_APP_INSTANCE"
restart = "on-failure"
restart_delay = "250ms"
backoff_max = "1m"
min_uptime = "1.5s"
max_restarts = 0
stop_signal = "INT"
stop_timeout = "1m30s"
listen = ["tcp://0.0.0.0:3000", "tcp://[::1]:3001", "tcp://localhost:3002", "unix:web.sock"]
ready = { http = "http://127.0.0.1:3000/health" }
ready_timeout = "20s"
health = { tcp = "127.0.0.1:3000", interval = "5s", failures = 2 }
watchdog = "30s"
depends_on = "db"
user = "root"
group = "0"
limits = { nofile = 65536, core = "infinity" }
max_memory = "512MiB"
watch = ["src/", "../conf"]
ignore = ["*.tmp"]
update = "recreate"

[apps.db]
command = "sleep 'a b'"
ready = { exec = "test -d /" }

[apps.sh-app]
command = "echo $HOME && sleep 1"
shell = true
instances = "max"
ready = "notify"
"#;

const FULL_YAML: &str = r#"
settings:
  socket: run/sv.sock
  stop_timeout: 5s
  log_format: json
  log_timestamps: true
  log_dir: logs
  log_max_size: 1MiB
  log_keep: 3
  merge_logs: true
apps:
  web:
    command: ["./run.sh", "--port", "3000"]
    instances: 4
    cwd: app
    env: { NODE_ENV: production, A: from-env, PORT: 3000, DEBUG: false }
    env_file: .env
    instance_var: NODE_APP_INSTANCE
    restart: on-failure
    restart_delay: 250ms
    backoff_max: 1m
    min_uptime: 1.5s
    max_restarts: 0
    stop_signal: INT
    stop_timeout: 1m30s
    listen:
      - tcp://0.0.0.0:3000
      - tcp://[::1]:3001
      - tcp://localhost:3002
      - unix:web.sock
    ready:
      http: http://127.0.0.1:3000/health
    ready_timeout: 20s
    health: { tcp: "127.0.0.1:3000", interval: 5s, failures: 2 }
    watchdog: 30s
    depends_on: db
    user: root
    group: "0"
    limits: { nofile: 65536, core: infinity }
    max_memory: 512MiB
    watch: [src/, ../conf]
    ignore: ["*.tmp"]
    update: recreate
  db:
    command: sleep 'a b'
    ready: { exec: test -d / }
  sh-app:
    command: echo $HOME && sleep 1
    shell: true
    instances: max
    ready: notify
"#;

fn canon(p: &Path) -> PathBuf {
    p.canonicalize().unwrap()
}

#[test]
fn every_key_toml_and_yaml_agree() {
    let dir = scratch();
    let root = canon(dir.path());
    let toml = load_with(&root.join("eco.toml"), FULL_TOML, None).unwrap();
    let yaml = load_with(&root.join("eco.yaml"), FULL_YAML, None).unwrap();
    assert_eq!(toml.apps, yaml.apps);
    assert_eq!(toml.settings, yaml.settings);

    let s = &toml.settings;
    assert_eq!(s.socket, Some(root.join("run/sv.sock")));
    assert_eq!(s.stop_timeout, Duration::from_secs(5));
    assert_eq!(s.log_format, LogFormat::Json);
    assert!(s.log_timestamps && s.merge_logs);
    assert_eq!(s.log_dir, Some(root.join("logs")));
    assert_eq!((s.log_max_size, s.log_keep), (1 << 20, 3));

    let names: Vec<&str> = toml.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["web", "db", "sh-app"]);
    let web = toml.app("web").unwrap();
    assert_eq!(web.command.program, root.join("app/run.sh"));
    assert_eq!(web.command.argv, ["./run.sh", "--port", "3000"]);
    assert_eq!(
        (web.instances, web.instances_max, web.shell),
        (4, false, false)
    );
    assert_eq!(web.cwd, root.join("app"));
    assert_eq!(web.env["A"], "from-env");
    assert_eq!(web.env["B"], "b b");
    assert_eq!(web.env["PORT"], "3000");
    assert_eq!(web.env["DEBUG"], "false");
    assert_eq!(web.env_file, Some(root.join(".env")));
    assert_eq!(web.instance_var.as_deref(), Some("NODE_APP_INSTANCE"));
    assert_eq!(web.restart, RestartPolicy::OnFailure);
    assert_eq!(web.restart_delay, Duration::from_millis(250));
    assert_eq!(web.backoff_max, Duration::from_secs(60));
    assert_eq!(web.min_uptime, Duration::from_millis(1500));
    assert_eq!(web.max_restarts, 0);
    assert_eq!(web.stop_signal, Signal::SIGINT);
    assert_eq!(web.stop_timeout, Duration::from_secs(90));
    assert_eq!(
        web.listen,
        [
            ListenAddr::Tcp("0.0.0.0:3000".parse().unwrap()),
            ListenAddr::Tcp("[::1]:3001".parse().unwrap()),
            ListenAddr::Tcp("127.0.0.1:3002".parse().unwrap()),
            ListenAddr::Unix(root.join("web.sock")),
        ]
    );
    assert_eq!(
        web.ready,
        ReadySpec::Http("http://127.0.0.1:3000/health".into())
    );
    assert_eq!(web.ready_timeout, Duration::from_secs(20));
    let health = web.health.as_ref().unwrap();
    assert_eq!(health.check, HealthCheck::Tcp("127.0.0.1:3000".into()));
    assert_eq!(health.interval, Duration::from_secs(5));
    assert_eq!(health.timeout, Duration::from_secs(2));
    assert_eq!(health.failures, 2);
    assert_eq!(web.watchdog, Some(Duration::from_secs(30)));
    assert_eq!(web.depends_on, [Dependency::from("db")]);
    assert_eq!(web.user.as_deref(), Some("root"));
    assert_eq!(web.group.as_deref(), Some("0"));
    assert_eq!(
        web.limits,
        [
            Limit {
                resource: Resource::RLIMIT_NOFILE,
                value: Some(65536)
            },
            Limit {
                resource: Resource::RLIMIT_CORE,
                value: None
            },
        ]
    );
    assert_eq!(web.max_memory, Some(512 << 20));
    assert_eq!(web.watch, [root.join("app/src"), root.join("conf")]);
    assert_eq!(web.ignore, ["*.tmp"]);
    assert_eq!(web.update, UpdateStrategy::Recreate);

    let db = toml.app("db").unwrap();
    assert_eq!(db.command.argv, ["sleep", "a b"]);
    assert!(db.command.program.is_absolute() && db.command.program.ends_with("sleep"));
    let ReadySpec::Exec(probe) = &db.ready else {
        panic!("{:?}", db.ready)
    };
    assert_eq!(probe.argv, ["test", "-d", "/"]);
    assert!(probe.program.is_absolute() && probe.program.ends_with("test"));
    assert_eq!(
        db.stop_timeout,
        Duration::from_secs(5),
        "settings.stop_timeout is the default"
    );
    assert_eq!(db.cwd, root);

    let sh = toml.app("sh-app").unwrap();
    assert_eq!(sh.command.program, PathBuf::from("/bin/sh"));
    assert_eq!(sh.command.argv, ["sh", "-c", "echo $HOME && sleep 1"]);
    assert!(sh.instances_max);
    let cpus = std::thread::available_parallelism().unwrap().get() as u32;
    assert_eq!(sh.instances, cpus);
    assert_eq!(sh.ready, ReadySpec::Notify);
}

#[test]
fn defaults() {
    let dir = scratch();
    let root = canon(dir.path());
    let eco = load_str(&root.join("e.toml"), "[apps.a]\ncommand = [\"true\"]\n").unwrap();
    assert_eq!(eco.settings, Settings::default());
    assert_eq!(eco.path, root.join("e.toml"));
    let a = &eco.apps[0];
    let mut expected = AppSpec::new("a", a.command.program.to_str().unwrap(), &["true"]);
    expected.cwd = root.clone();
    assert_eq!(*a, expected);
    assert!(a.command.program.is_absolute());
    let yaml = load_str(
        &root.join("e.yml"),
        "apps:\n  a:\n    command: [\"true\"]\n",
    )
    .unwrap();
    assert_eq!(yaml.apps, eco.apps);
}

#[test]
fn describe_lists_apps() {
    let text = "[apps.web]\ncommand = [\"sh\", \"-c\", \"echo 'hi there'\"]\ninstances = \"max\"\n\
                depends_on = [\"db\"]\n[apps.db]\ncommand = \"sleep 10\"\nrestart = \"never\"\n";
    let eco = load_str(Path::new("/tmp/eco.toml"), text).unwrap();
    let out = describe(&eco);
    let cpus = std::thread::available_parallelism().unwrap().get();
    assert!(
        out.contains(&format!("web: {cpus} (max) instance")),
        "{out}"
    );
    assert!(
        out.contains("command:    sh -c 'echo '\\''hi there'\\'''"),
        "{out}"
    );
    assert!(out.contains("depends_on: db"), "{out}");
    assert!(out.contains("restart:    never"), "{out}");
    assert!(out.contains("cwd:        /tmp"), "{out}");
    assert!(out.contains("db: 1 instance\n"), "{out}");
}

#[test]
fn yaml_subtleties() {
    // Anchors, aliases, merge keys, quoted numbers, null for an optional table.
    let text = "x-base: &base\n  restart: never\n  env: {A: 1}\n";
    let text = format!(
        "{text}settings: ~\napps:\n  a:\n    <<: *base\n    command: [\"sleep\", \"5\"]\n    \
         stop_signal: \"15\"\n"
    );
    // `x-base` is not a known key: extension fields are not part of the schema.
    let err = load_str(Path::new("/tmp/e.yaml"), &text)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/tmp/e.yaml:1:1: x-base: unknown key `x-base`"),
        "{err}"
    );
    let text = "apps:\n  a: &a\n    command: [\"sleep\", \"5\"]\n    restart: never\n  b:\n    <<: *a\n    stop_signal: 15\n";
    let err = load_str(Path::new("/tmp/e.yaml"), text)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "/tmp/e.yaml:7:18: apps.b.stop_signal: expected a string, found 15"
    );
    let text = "apps:\n  a: &a\n    command: [\"sleep\", \"5\"]\n    restart: never\n  b:\n    <<: *a\n    stop_signal: \"15\"\n";
    let eco = load_str(Path::new("/tmp/e.yaml"), text).unwrap();
    assert_eq!(eco.apps[1].restart, RestartPolicy::Never);
    assert_eq!(eco.apps[1].stop_signal, Signal::SIGTERM);
}

#[test]
fn truncated_files_never_panic() {
    let dir = scratch();
    let root = canon(dir.path());
    for (name, text) in [("t.toml", FULL_TOML), ("t.yaml", FULL_YAML)] {
        let path = root.join(name);
        assert!(load_with(&path, text, None).is_ok());
        let mut cut = 0;
        while cut < text.len() {
            if text.is_char_boundary(cut) {
                let _ = load_str(&path, &text[..cut]);
                // A byte flipped into something odd: must still not panic.
                let odd = format!("{}\u{0}[{{\"'&*!|>{}", &text[..cut], &text[cut..]);
                let _ = load_str(&path, &odd);
            }
            cut += 7;
        }
    }
}

#[test]
fn listen_addresses_that_cannot_be_bound_are_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("eco.toml");
    std::fs::write(
        &path,
        "[apps.web]\ncommand = \"true\"\nlisten = [\"tcp://127.0.0.1:3000\", \"tcp://127.0.0.1:3001\"]\n",
    )
    .unwrap();
    let busy = |addr: &ListenAddr| match addr {
        ListenAddr::Tcp(a) if a.port() == 3001 => Err(format!("tcp://{a}: address already in use")),
        _ => Ok(()),
    };
    let err = load_checked(&path, Some(&busy)).unwrap_err().to_string();
    assert!(
        err.contains(":3:35: apps.web.listen[1]: cannot listen on tcp://127.0.0.1:3001: address already in use"),
        "{err}"
    );
}

#[test]
fn depends_on_table_form_names_a_condition_per_dependency() {
    let text = "[apps.web]\ncommand = \"true\"\n\
                depends_on = { db = \"ready\", migrate = \"completed\", cache = \"started\" }\n\
                [apps.db]\ncommand = \"true\"\n[apps.migrate]\ncommand = \"true\"\n\
                [apps.cache]\ncommand = \"true\"\n";
    let eco = load_str(Path::new("/tmp/eco.toml"), text).unwrap();
    let dep = |app: &str, condition| Dependency {
        app: app.into(),
        condition,
    };
    let want = [
        dep("db", Condition::Ready),
        dep("migrate", Condition::Completed),
        dep("cache", Condition::Started),
    ];
    assert_eq!(eco.apps[0].depends_on, want);
    let yaml = "apps:\n  web:\n    command: \"true\"\n    depends_on: {db: ready, migrate: completed, cache: started}\n  \
                db:\n    command: \"true\"\n  migrate:\n    command: \"true\"\n  cache:\n    command: \"true\"\n";
    let eco = load_str(Path::new("/tmp/eco.yaml"), yaml).unwrap();
    assert_eq!(eco.apps[0].depends_on, want);
    assert!(describe(&eco).contains("depends_on: db, migrate (completed), cache (started)"));
}
