//! Files on disk: `load`, `find_default`, the fixtures under `tests/fixtures/config/` and
//! the examples under `config-examples/`.

use std::path::{Path, PathBuf};

use super::tests::scratch;
use super::*;

#[test]
fn find_default_order_and_message() {
    let dir = scratch();
    let given = dir.path().join("mine.yaml");
    std::fs::write(&given, "").unwrap();
    assert_eq!(find_default(Some(&given)), Ok(given.clone()));
    std::fs::write(dir.path().join("ecosystem.yml"), "").unwrap();
    assert_eq!(
        find_default(Some(dir.path())),
        Ok(dir.path().join("ecosystem.yml"))
    );
    let missing = find_default(Some(&dir.path().join("nope.toml"))).unwrap_err();
    assert!(missing.contains("no such file"), "{missing}");
}

#[test]
fn load_reads_files_and_detects_format_by_content() {
    let dir = scratch();
    let p = dir.path().join("eco.conf");
    std::fs::write(&p, "apps:\n  a:\n    command: \"true\"\n").unwrap();
    assert_eq!(load(&p).unwrap().apps[0].name, "a");
    std::fs::write(&p, "[apps.b]\ncommand = \"true\"\n").unwrap();
    assert_eq!(load(&p).unwrap().apps[0].name, "b");
    std::fs::write(&p, "[[[\n").unwrap();
    assert!(load(&p)
        .unwrap_err()
        .to_string()
        .contains("cannot tell the format"));
}

fn manifest(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn fixtures_bad_each_report_their_expected_error() {
    let dir = manifest("tests/fixtures/config/bad");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "expected") {
            continue;
        }
        let expected = std::fs::read_to_string(path.with_extension("expected")).unwrap();
        let err = load(&path).unwrap_err().to_string();
        let want = format!("{}{}", path.display(), expected.trim_end());
        assert!(
            err.contains(&want),
            "{}:\n{err}\nshould contain\n{want}",
            path.display()
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} fixtures");
}

#[test]
fn fixtures_good_and_examples_load() {
    let toml = load(&manifest("tests/fixtures/config/good/eco.toml")).unwrap();
    let yaml = load(&manifest("tests/fixtures/config/good/eco.yaml")).unwrap();
    assert_eq!(toml.apps, yaml.apps);
    assert_eq!(toml.settings, yaml.settings);
    assert_eq!(toml.apps.len(), 3);
    let examples = load(&manifest("config-examples/ecosystem.toml")).unwrap();
    let examples_yaml = load(&manifest("config-examples/ecosystem.yaml")).unwrap();
    assert_eq!(examples.apps, examples_yaml.apps);
    assert_eq!(examples.app("worker").unwrap().instances, 3);
    let deps = load(&manifest("config-examples/depends-on.toml")).unwrap();
    assert_eq!(
        deps.app("api").unwrap().depends_on,
        [Dependency::from("db")]
    );
}
