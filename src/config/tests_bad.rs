//! Bad files: the exact `file:line:col: key.path: message` of each error (golden strings).

use std::path::Path;

use super::tests::scratch;
use super::*;

/// Every error of `text` loaded as `name` (relative: the base is the crate root).
fn errors(name: &str, text: &str) -> String {
    match load_str(Path::new(name), text) {
        Ok(_) => panic!("{name} should be refused:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn toml(text: &str) -> String {
    errors("ecosystem.toml", text)
}

fn yaml(text: &str) -> String {
    errors("ecosystem.yaml", text)
}

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn toml_syntax_error() {
    assert_eq!(
        toml("[apps.web\ncommand = \"true\"\n"),
        "ecosystem.toml:1:10: TOML syntax error: unclosed table, expected `]`"
    );
}

#[test]
fn yaml_syntax_error() {
    assert_eq!(
        yaml("apps:\n  web:\n    command: [\"true\"\n    instances: 2\n"),
        "ecosystem.yaml:4:5: YAML syntax error: invalid indentation"
    );
}

#[test]
fn unknown_top_level_key() {
    assert_eq!(
        toml("foo = 1\n[apps.a]\ncommand = \"true\"\n"),
        "ecosystem.toml:1:1: foo: unknown key `foo`; expected one of `settings`, `apps`"
    );
}

#[test]
fn unknown_app_key_with_suggestion() {
    assert_eq!(
        toml("[apps.web]\ncommand = \"true\"\ninstanses = 2\n"),
        "ecosystem.toml:3:1: apps.web.instanses: unknown key `instanses`; did you mean `instances`?"
    );
    assert_eq!(
        yaml("settings:\n  log_fromat: json\napps:\n  a:\n    command: \"true\"\n"),
        "ecosystem.yaml:2:3: settings.log_fromat: unknown key `log_fromat`; did you mean `log_format`?"
    );
}

#[test]
fn instances_negative() {
    let text = "# the example of SPEC section 1\n[settings]\nstop_timeout = \"5s\"\n\n\
                [apps.web]\ncommand = \"true\"\ninstances = -1\n";
    assert_eq!(
        toml(text),
        "ecosystem.toml:7:13: apps.web.instances: expected a whole number or \"max\", found -1"
    );
}

#[test]
fn instances_words_and_too_many() {
    assert_eq!(
        toml("[apps.web]\ncommand = \"true\"\ninstances = \"lots\"\n"),
        "ecosystem.toml:3:13: apps.web.instances: expected a whole number or \"max\", found \"lots\""
    );
    assert_eq!(
        toml("[apps.web]\ncommand = \"true\"\ninstances = 10001\n"),
        "ecosystem.toml:3:13: apps.web.instances: expected at most 10000 instances, found 10001"
    );
    assert_eq!(
        toml("[apps.web]\ncommand = \"true\"\ninstances = 1.5\n"),
        "ecosystem.toml:3:13: apps.web.instances: expected a whole number or \"max\", found 1.5"
    );
}

#[test]
fn yaml_wrong_type() {
    assert_eq!(
        yaml("apps:\n  web:\n    command: \"true\"\n    instances: {a: 1}\n"),
        "ecosystem.yaml:4:16: apps.web.instances: expected a whole number or \"max\", found a table"
    );
    assert_eq!(
        yaml("apps:\n  web:\n    command: \"true\"\n    shell: yes\n"),
        "ecosystem.yaml:4:12: apps.web.shell: expected true or false, found \"yes\""
    );
    assert_eq!(
        yaml("apps:\n  web:\n    command: \"true\"\n    restart:\n"),
        "ecosystem.yaml:4:12: apps.web.restart: expected one of \"always\", \"on-failure\", \
         \"never\", found nothing (null)"
    );
}

#[test]
fn durations_need_units() {
    assert_eq!(
        toml("[apps.web]\ncommand = \"true\"\nrestart_delay = \"10\"\nmin_uptime = 10\n"),
        "ecosystem.toml:3:17: apps.web.restart_delay: expected a duration such as \"10s\" or \
         \"250ms\", found \"10\" (missing unit: write e.g. \"10s\" or \"10ms\" (units: ms, s, m, h, d))\n\
         ecosystem.toml:4:14: apps.web.min_uptime: expected a duration such as \"10s\" or \"250ms\", \
         found 10 (a number needs a unit: write \"10s\" or \"10ms\")"
    );
}

#[test]
fn duration_words() {
    assert_eq!(
        toml("[settings]\nstop_timeout = \"fast\"\n[apps.web]\ncommand = \"true\"\n"),
        "ecosystem.toml:2:16: settings.stop_timeout: expected a duration such as \"10s\" or \
         \"250ms\", found \"fast\" (expected a number before `fast`)"
    );
}

#[test]
fn bad_signal() {
    assert_eq!(
        toml("[apps.web]\ncommand = \"true\"\nstop_signal = \"SIGFOO\"\n"),
        "ecosystem.toml:3:15: apps.web.stop_signal: expected a signal name, found \"SIGFOO\" \
         (unknown signal `SIGFOO` (e.g. SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGKILL))"
    );
}

#[test]
fn bad_restart_value() {
    assert_eq!(
        toml("[apps.web]\ncommand = \"true\"\nrestart = \"sometimes\"\n"),
        "ecosystem.toml:3:11: apps.web.restart: expected one of \"always\", \"on-failure\", \
         \"never\", found \"sometimes\""
    );
}

#[test]
fn command_not_found_and_empty() {
    assert_eq!(
        toml("[apps.web]\ncommand = [\"no-such-program-xyz\", \"-v\"]\n"),
        "ecosystem.toml:2:11: apps.web.command: program `no-such-program-xyz` not found in PATH"
    );
    assert_eq!(
        toml("[apps.a]\ncommand = []\n[apps.b]\ncommand = \"  \"\n[apps.c]\ncommand = \"\"\nshell = true\n"),
        "ecosystem.toml:2:11: apps.a.command: the command is empty\n\
         ecosystem.toml:4:11: apps.b.command: the command is empty\n\
         ecosystem.toml:6:11: apps.c.command: the command is empty"
    );
    assert_eq!(
        toml("[apps.a]\ncommand = [\"sh\", \"-c\"]\nshell = true\n"),
        "ecosystem.toml:2:11: apps.a.command: expected a string (with `shell = true` the command \
         is one shell line), found an array"
    );
    assert_eq!(
        toml("[apps.a]\ncommand = \"echo 'open\"\n"),
        "ecosystem.toml:2:11: apps.a.command: cannot split the command into words: missing closing quote"
    );
    assert_eq!(
        toml("[apps.a]\nrestart = \"never\"\n"),
        "ecosystem.toml:1:7: apps.a: missing key `command` (the program to run, e.g. command = \
         [\"node\", \"server.js\"])"
    );
}

#[test]
fn cwd_and_env_file_missing() {
    assert_eq!(
        toml("[apps.a]\ncommand = \"true\"\ncwd = \"no-such-dir\"\nenv_file = \"no-such.env\"\n"),
        format!(
            "ecosystem.toml:3:7: apps.a.cwd: directory `{ROOT}/no-such-dir`: no such file or directory\n\
             ecosystem.toml:4:12: apps.a.env_file: env file `{ROOT}/no-such.env`: no such file or directory"
        )
    );
}

#[test]
fn env_file_bad_line() {
    let dir = scratch();
    std::fs::write(dir.path().join("bad.env"), "A=1\n\nthis is not a pair\n").unwrap();
    let path = dir.path().join("e.toml");
    let err = load_str(
        &path,
        "[apps.a]\ncommand = \"true\"\nenv_file = \"bad.env\"\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:3:12: apps.a.env_file: bad.env:3: expected KEY=VALUE, found \"this is not a pair\"",
            path.display()
        )
    );
}

#[test]
fn depends_on_unknown_and_cycles() {
    assert_eq!(
        toml("[apps.api]\ncommand = \"true\"\ndepends_on = [\"dbb\"]\n[apps.db]\ncommand = \"true\"\n"),
        "ecosystem.toml:3:15: apps.api.depends_on[0]: unknown app `dbb`; did you mean `db`?"
    );
    assert_eq!(
        toml(
            "[apps.a]\ncommand = \"true\"\ndepends_on = [\"b\"]\n\
              [apps.b]\ncommand = \"true\"\ndepends_on = [\"c\"]\n\
              [apps.c]\ncommand = \"true\"\ndepends_on = \"a\"\n"
        ),
        "ecosystem.toml:9:14: apps.c.depends_on[0]: dependency cycle: a -> b -> c -> a"
    );
    assert_eq!(
        yaml("apps:\n  a:\n    command: \"true\"\n    depends_on: [a]\n"),
        "ecosystem.yaml:4:18: apps.a.depends_on[0]: dependency cycle: a -> a"
    );
    // The table form: errors name the dependency's key.
    assert_eq!(
        toml("[apps.api]\ncommand = \"true\"\ndepends_on = { db = \"done\" }\n[apps.db]\ncommand = \"true\"\n"),
        "ecosystem.toml:3:21: apps.api.depends_on.db: expected one of \"started\", \"ready\", \"completed\", found \"done\""
    );
    assert_eq!(
        toml("[apps.api]\ncommand = \"true\"\ndepends_on = { dbb = \"ready\" }\n[apps.db]\ncommand = \"true\"\n"),
        "ecosystem.toml:3:16: apps.api.depends_on.dbb: unknown app `dbb`; did you mean `db`?"
    );
}

#[test]
fn listen_duplicates_and_syntax() {
    assert_eq!(
        toml("[apps.a]\ncommand = \"true\"\nlisten = [\"tcp://0.0.0.0:3000\"]\n\
              [apps.b]\ncommand = \"true\"\nlisten = [\"unix:/tmp/b.sock\", \"tcp://0.0.0.0:3000\"]\n"),
        "\
         ecosystem.toml:6:31: apps.b.listen[1]: duplicate listen address tcp://0.0.0.0:3000, already \
         used by apps.a.listen[0]"
    );
    assert_eq!(
        toml("[apps.a]\ncommand = \"true\"\nlisten = [\"0.0.0.0:3000\", \"tcp://1.2.3.4:99999\", \"tcp://example.com:80\"]\n"),
        "ecosystem.toml:3:11: apps.a.listen[0]: expected \"tcp://HOST:PORT\" or \"unix:PATH\", found \"0.0.0.0:3000\"\n\
         ecosystem.toml:3:27: apps.a.listen[1]: `99999` is not a port number (1-65535)\n\
         ecosystem.toml:3:50: apps.a.listen[2]: `example.com` is not an IPv4 address (write an IP \
         address, `localhost`, or [IPv6])"
    );
}

#[test]
fn no_apps() {
    assert_eq!(
        toml(""),
        "ecosystem.toml:1:1: apps: no apps: the file must define at least one app (e.g. [apps.web])"
    );
    assert_eq!(
        yaml("# nothing\n"),
        "ecosystem.yaml:1:1: apps: no apps: the file must define at least one app (e.g. [apps.web])"
    );
    assert_eq!(
        toml("[apps]\n"),
        "ecosystem.toml:1:1: apps: no apps: the `apps` table is empty"
    );
    assert_eq!(
        yaml("apps: [web]\n"),
        "ecosystem.yaml:1:7: apps: expected a table of apps keyed by name, found an array"
    );
}

#[test]
fn app_name_with_a_dot() {
    assert_eq!(
        toml("[apps.\"web.api\"]\ncommand = \"true\"\n"),
        "ecosystem.toml:1:7: apps.\"web.api\": invalid app name: an app name must not contain `.` \
         (instances are named APP.N)"
    );
    assert_eq!(
        yaml("apps:\n  \"web api\":\n    command: \"true\"\n"),
        "ecosystem.yaml:2:3: apps.\"web api\": invalid app name: an app name may only contain \
         letters, digits, `_` and `-`"
    );
}

#[test]
fn non_utf8_bytes() {
    let dir = scratch();
    let path = dir.path().join("e.toml");
    std::fs::write(&path, b"[apps.a]\ncommand = \"tr\xffue\"\n").unwrap();
    assert_eq!(
        load(&path).unwrap_err().to_string(),
        format!(
            "{}:2:14: the file is not valid UTF-8 (bad byte at offset 22)",
            path.display()
        )
    );
}

#[test]
fn yaml_second_document() {
    assert_eq!(
        yaml("apps:\n  a:\n    command: \"true\"\n---\napps: {}\n"),
        "ecosystem.yaml:5:1: only one YAML document is allowed; found a second one"
    );
}

#[test]
fn several_errors_all_reported_in_file_order() {
    let text = "\
[settings]
log_format = \"xml\"
[apps.web]
command = \"true\"
instances = -2
restart = \"sometimes\"
stop_signal = 3.5
env = { \"A=B\" = \"x\", C = [1] }
[apps.worker]
comand = \"true\"
max_restarts = -1
update = \"blue-green\"
";
    assert_eq!(
        toml(text),
        "ecosystem.toml:2:14: settings.log_format: expected one of \"text\", \"json\", found \"xml\"\n\
         ecosystem.toml:5:13: apps.web.instances: expected a whole number or \"max\", found -2\n\
         ecosystem.toml:6:11: apps.web.restart: expected one of \"always\", \"on-failure\", \"never\", found \"sometimes\"\n\
         ecosystem.toml:7:15: apps.web.stop_signal: expected a string, found 3.5\n\
         ecosystem.toml:8:9: apps.web.env.\"A=B\": invalid variable name (it must be non-empty, without `=`)\n\
         ecosystem.toml:8:26: apps.web.env.C: expected a string, number or boolean, found an array\n\
         ecosystem.toml:9:7: apps.worker: missing key `command` (the program to run, e.g. command = [\"node\", \"server.js\"])\n\
         ecosystem.toml:10:1: apps.worker.comand: unknown key `comand`; did you mean `command`?\n\
         ecosystem.toml:11:16: apps.worker.max_restarts: expected a whole number, found -1\n\
         ecosystem.toml:12:10: apps.worker.update: expected one of \"rolling\", \"recreate\", found \"blue-green\""
    );
}

#[test]
fn structured_values() {
    assert_eq!(
        toml("[apps.a]\ncommand = \"true\"\nready = { tcp = \"x:1\", delay = \"1s\" }\n\
              health = { interval = \"1s\", failures = 0, http = \"ftp://x\" }\n\
              limits = { nofiles = 10 }\ninstance_var = \"1X\"\n"),
        "ecosystem.toml:3:9: apps.a.ready: expected exactly one of `tcp`, `http`, `exec`, `delay`\n\
         ecosystem.toml:4:40: apps.a.health.failures: expected a whole number of at least 1, found 0\n\
         ecosystem.toml:4:50: apps.a.health.http: expected an http:// URL such as \
         \"http://127.0.0.1:3000/health\", found \"ftp://x\"\n\
         ecosystem.toml:5:12: apps.a.limits.nofiles: unknown key `nofiles`; did you mean `nofile`?\n\
         ecosystem.toml:6:16: apps.a.instance_var: expected a variable name (letters, digits and \
         `_`, not starting with a digit), found \"1X\""
    );
    assert_eq!(
        toml("[apps.a]\ncommand = \"true\"\nuser = \"no-such-user-xyz\"\nmax_memory = \"lots\"\n"),
        "ecosystem.toml:3:8: apps.a.user: user `no-such-user-xyz` does not exist\n\
         ecosystem.toml:4:14: apps.a.max_memory: expected a size such as \"512MiB\" or \"1G\", \
         found \"lots\" (expected a number, then an optional unit (KiB, MiB, GiB, KB, MB, GB))"
    );
}

#[test]
fn health_needs_exactly_one_check() {
    assert_eq!(
        yaml("apps:\n  a:\n    command: \"true\"\n    health:\n      interval: 5s\n"),
        "ecosystem.yaml:5:7: apps.a.health: expected exactly one of `http`, `tcp`, `exec`"
    );
}

#[test]
fn an_app_that_is_not_a_table_is_still_a_known_name() {
    assert_eq!(
        yaml("apps:\n  db: sleep 10\n  api:\n    command: \"true\"\n    depends_on: db\n"),
        "ecosystem.yaml:2:7: apps.db: expected a table, found \"sleep 10\""
    );
}

#[test]
fn umask_must_be_an_octal_string() {
    assert_eq!(
        toml("[apps.a]\ncommand = \"true\"\numask = 22\n"),
        "ecosystem.toml:3:9: apps.a.umask: expected an octal string such as \"0022\", found 22"
    );
    assert_eq!(
        toml("[apps.a]\ncommand = \"true\"\numask = \"0928\"\n"),
        "ecosystem.toml:3:9: apps.a.umask: expected an octal umask such as \"0022\", found \"0928\""
    );
}

#[test]
fn per_instance_values_are_checked_where_written() {
    assert_eq!(
        toml("[apps.web]\ncommand = \"true\"\ninstances = 3\nport = 65534\n"),
        "ecosystem.toml:4:8: apps.web.port: 3 instances from port 65534 would need port 65536 (at most 65535)"
    );
    assert_eq!(
        yaml("apps:\n  web:\n    command: [\"true\", \"{instanse}\"]\n    ready: { tcp: \"127.0.0.1:{port}\" }\n"),
        "ecosystem.yaml:3:23: apps.web.command[1]: unknown placeholder `{instanse}` (known: {app}, {instance}, {port}; write `{{` and `}}` for literal braces)\n\
         ecosystem.yaml:4:19: apps.web.ready.tcp: `{port}` needs `port` on the app (e.g. port = 3000: instance N gets 3000 + N)"
    );
    assert_eq!(
        toml("[apps.web]\ncommand = \"true\"\nport = 80\nenv = { PORT = \"1\" }\n"),
        "ecosystem.toml:4:7: apps.web.env: `env.PORT` and `port` both set PORT: remove one (with `port`, instance N gets PORT = port + N)"
    );
}

#[test]
fn an_empty_second_yaml_document_is_located_inside_the_text() {
    // Found by tests/it/fuzz.rs: the parser placed it on the line after the end.
    assert_eq!(
        yaml("apps\n---"),
        "ecosystem.yaml:2:4: only one YAML document is allowed; found a second one"
    );
}
