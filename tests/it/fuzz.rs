//! Config fuzzing (issue 14 item 3) with proptest: the TOML and YAML readers fed token
//! soup and mutations of valid files never panic, take bounded time, and refuse with
//! located errors only (`file:line:col: ...`, inside the text); the reload diff of two
//! random valid versions never panics and agrees with what changed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use supervise::config::{load_str, ConfigErrors};
use supervise::plan::diff::diff;

/// Pieces the soup is made of: keys, punctuation of both formats, odd values.
const TOKENS: &[&str] = &[
    "apps",
    "web",
    "api",
    "command",
    "instances",
    "env",
    "env_file",
    "listen",
    "ready",
    "restart",
    "restart_delay",
    "backoff_max",
    "min_uptime",
    "max_restarts",
    "stop_signal",
    "stop_timeout",
    "depends_on",
    "log_file",
    "max_memory",
    "user",
    "cwd",
    "health",
    "settings",
    "shell",
    "watch",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    ":",
    "- ",
    ",",
    "\"",
    "'",
    "\n",
    "\n  ",
    "  ",
    "#",
    ".",
    "*",
    "&a",
    "*a",
    "!",
    "|",
    ">",
    "%",
    "@",
    "---",
    "1",
    "-1",
    "0",
    "4294967296",
    "99999999999999999999",
    "1.5",
    "1e400",
    "true",
    "null",
    "\"true\"",
    "\"sleep 1\"",
    "[\"true\"]",
    "\"250ms\"",
    "\"-1s\"",
    "\"1G\"",
    "\"max\"",
    "\"tcp://127.0.0.1:0\"",
    "\"unix:sock\"",
    "\"SIGTERM\"",
    "\"SIGNOPE\"",
    "\u{0}",
    "é",
    "\u{feff}",
    "\"\\u0000\"",
    "\\",
    "\t",
    "\r\n",
    "<<",
    "~",
    "?",
    "\"\"\"",
    "'''",
];

const VALID_TOML: &str = r#"[settings]
log_format = "text"

[apps.web]
command = ["true"]
instances = 2
env = { A = "1", B = "two" }
restart_delay = "100ms"
stop_signal = "SIGINT"

[apps.api]
command = "sleep 100"
depends_on = ["web"]
max_memory = "512MiB"
"#;

const VALID_YAML: &str = r#"settings:
  log_format: text
apps:
  web:
    command: ["true"]
    instances: 2
    env: { A: "1", B: two }
    restart_delay: 100ms
    stop_signal: SIGINT
  api:
    command: sleep 100
    depends_on: [web]
    max_memory: 512MiB
"#;

fn soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..80).prop_map(|t| t.concat())
}

/// A valid file with a few edits: cut a range, insert tokens, repeat a line.
fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    let edit = (
        0..base.len(),
        0usize..40,
        prop::sample::select(TOKENS),
        0u8..3,
    );
    prop::collection::vec(edit, 1..6).prop_map(move |edits| {
        let mut text = base.to_string();
        for (at, len, token, kind) in edits {
            let mut at = at.min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match kind {
                0 => {
                    let mut end = (at + len).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(at..end, "");
                }
                1 => text.insert_str(at, token),
                _ => {
                    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                    let end = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
                    let line = text[start..end].to_string();
                    text.insert_str(start, &line);
                }
            }
        }
        text
    })
}

/// Load `text` as `name` in a scratch folder: no panic, bounded time, and if refused,
/// every error located inside the text, in the compiler's shape.
fn check_reader(name: &str, text: &str) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let begun = Instant::now();
    let result = load_str(&path, text);
    let took = begun.elapsed();
    prop_assert!(
        took < Duration::from_secs(5),
        "{name} took {took:?}:\n{text:?}"
    );
    if let Err(errors) = result {
        check_located(&path, text, &errors)?;
    }
    Ok(())
}

fn check_located(path: &Path, text: &str, errors: &ConfigErrors) -> Result<(), TestCaseError> {
    prop_assert!(!errors.is_empty(), "refused without an error: {text:?}");
    let lines = text.split('\n').count();
    for e in errors.iter() {
        let shown = e.to_string();
        prop_assert_eq!(&e.file, path);
        prop_assert!(
            e.line >= 1 && e.line <= lines && e.column >= 1,
            "{shown} is outside the text ({lines} lines): {text:?}"
        );
        let prefix = format!("{}:{}:{}: ", path.display(), e.line, e.column);
        prop_assert!(shown.starts_with(&prefix), "{shown}");
        prop_assert!(!e.message.trim().is_empty(), "{shown}");
        prop_assert!(!shown.contains("panicked"), "{shown}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_is_read_or_refused_with_located_errors(text in soup()) {
        check_reader("ecosystem.toml", &text)?;
        check_reader("ecosystem.yaml", &text)?;
    }

    #[test]
    fn mutated_toml_is_read_or_refused_with_located_errors(text in mutated(VALID_TOML)) {
        check_reader("ecosystem.toml", &text)?;
    }

    #[test]
    fn mutated_yaml_is_read_or_refused_with_located_errors(text in mutated(VALID_YAML)) {
        check_reader("ecosystem.yaml", &text)?;
    }
}

/// One app of a random version: `(instances, V, restart_delay, stop_signal, command)`.
type Version = (u32, u8, &'static str, &'static str, &'static str);

fn version() -> impl Strategy<Value = Version> {
    (
        1u32..5,
        0u8..3,
        prop::sample::select(&["0s", "100ms", "2s"][..]),
        prop::sample::select(&["SIGTERM", "SIGINT"][..]),
        prop::sample::select(&["[\"true\"]", "\"sleep 100\""][..]),
    )
}

fn app_text((instances, v, delay, signal, command): Version) -> String {
    format!(
        "[apps.web]\ncommand = {command}\ninstances = {instances}\nenv = {{ V = \"{v}\" }}\n\
         restart_delay = \"{delay}\"\nstop_signal = \"{signal}\"\n"
    )
}

fn load_version(dir: &Path, v: Version) -> supervise::config::Ecosystem {
    let path: PathBuf = dir.join("ecosystem.toml");
    load_str(&path, &app_text(v)).unwrap_or_else(|e| panic!("{e}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_reload_diff_of_two_random_versions_agrees_with_what_changed(
        old in version(),
        new in version(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (load_version(dir.path(), old), load_version(dir.path(), new));
        let (a, b) = (&a.apps[0], &b.apps[0]);
        prop_assert!(diff(a, a).is_empty());
        let change = diff(a, b);
        // V (env) and the command shape the process; delay and signal are policy.
        let mut shaped = Vec::new();
        if old.4 != new.4 {
            shaped.push("command");
        }
        if old.1 != new.1 {
            shaped.push("env");
        }
        let mut policy = Vec::new();
        if old.2 != new.2 {
            policy.push("restart_delay");
        }
        if old.3 != new.3 {
            policy.push("stop_signal");
        }
        let (mut replaced, mut changed) = (change.replaced.clone(), change.policy.clone());
        replaced.sort_unstable();
        changed.sort_unstable();
        prop_assert_eq!(replaced, shaped, "{:?}", change);
        prop_assert_eq!(changed, policy, "{:?}", change);
        prop_assert_eq!(change.scaled.is_some(), old.0 != new.0, "{:?}", change);
    }
}
