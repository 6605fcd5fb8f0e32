//! `supervise check` on the config fixtures, and run mode refusing an invalid file
//! (issue 3, points 2 and 3).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

fn check(dir: &Path, file: &str) -> Output {
    Command::new(supervise_bin())
        .args(["check", file])
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run supervise check")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_bad_fixture_gives_a_located_error_and_no_panic() {
    let dir = fixtures().join("bad");
    let mut files: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml") || n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 15, "only {} bad fixtures", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let expected_path = dir.join(Path::new(file).with_extension("expected"));
        let expected = match fs::read_to_string(&expected_path) {
            Ok(t) => t.trim_end_matches(['\n', '\r']).to_string(),
            Err(e) => {
                failures.push(format!("{file}: no {}: {e}", expected_path.display()));
                continue;
            }
        };
        let out = check(&dir, file);
        let (stdout, stderr) = text(&out);
        let all = format!("{stdout}{stderr}");
        if out.status.code() != Some(1) {
            failures.push(format!("{file}: exit {:?}, expected 1", out.status));
        }
        if stderr.contains("panicked") {
            failures.push(format!("{file}: panicked:\n{stderr}"));
        }
        if !all.contains(&expected) {
            failures.push(format!("{file}: expected {expected:?} in:\n{all}"));
        }
        // Located: the message names the file, a line and a column.
        if !has_location(&stderr, file) {
            failures.push(format!(
                "{file}: no `{file}:LINE:COL:` on stderr:\n{stderr}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// Whether `text` holds `FILE:LINE:COL:` for this file name.
fn has_location(text: &str, file: &str) -> bool {
    text.match_indices(file).any(|(i, _)| {
        let rest = &text[i + file.len()..];
        let mut parts = rest.splitn(4, ':');
        parts.next() == Some("")
            && parts
                .next()
                .is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
            && parts
                .next()
                .is_some_and(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
    })
}

#[test]
fn good_fixtures_in_toml_and_yaml_check_the_same() {
    let dir = fixtures().join("good");
    let toml = check(&dir, "eco.toml");
    let yaml = check(&dir, "eco.yaml");
    let (toml_out, toml_err) = text(&toml);
    let (yaml_out, yaml_err) = text(&yaml);
    assert_eq!(toml.status.code(), Some(0), "{toml_out}{toml_err}");
    assert_eq!(yaml.status.code(), Some(0), "{yaml_out}{yaml_err}");
    assert!(!toml_out.trim().is_empty(), "check prints what would run");
    let normalise = |text: &str, name: &str| text.replace(name, "ECO");
    assert_eq!(
        normalise(&toml_out, "eco.toml"),
        normalise(&yaml_out, "eco.yaml")
    );
}

#[test]
fn check_prints_apps_instances_and_commands() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.web]
command = {}
instances = 3

[apps.worker]
command = "{} --print 1"
"#,
            app_cmd(&["--print-env"]),
            testapp()
        ),
    );
    let out = check(h.dir(), config.to_str().unwrap());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for expected in ["web", "worker", "3", "--print-env", "supervise-testapp"] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
}

#[test]
fn run_mode_refuses_an_invalid_file_and_starts_nothing() {
    let mut h = Harness::new();
    let config = h.write_config(
        "eco.toml",
        &format!(
            r#"
[apps.good]
command = {good}

[apps.web]
command = {good}
instancez = 2
"#,
            good = app_cmd(&["--pid-dir", h.pids()])
        ),
    );
    h.start(&config);
    assert_eq!(h.wait_exit(LONG).code(), Some(1));
    let stderr = h.stderr_lines().join("\n");
    assert!(
        has_location(&stderr, "eco.toml"),
        "no located error:\n{stderr}"
    );
    assert!(
        stderr.contains("apps.web.instancez"),
        "no key path:\n{stderr}"
    );
    assert!(h.read_pid("good", 0).is_none(), "an app was started");
    assert_eq!(h.count_events(|t| t.contains(" started (pid ")), 0);
}
