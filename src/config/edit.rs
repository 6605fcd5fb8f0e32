//! Editing the ecosystem file in place, for `supervise scale APP N`: exactly one value
//! changes (or one line is added), and everything else (comments, key order, quoting,
//! blank lines) stays byte for byte. The file stays the truth: the running supervise
//! applies the edited file as it applies any edit.
//!
//! TOML goes through `toml_edit`'s format-preserving document. YAML is edited as text at
//! the value's location in the located tree the loader already builds. Either way the
//! result is loaded again and compared with the original: if anything but this app's
//! `instances` would change (a YAML anchor shared with another app, say), nothing is
//! written.

use std::path::Path;

use super::node::{Kind, Node};
use super::{format_of, load_str, yaml, Format};

/// The file's text with `apps.APP.instances` set to `n`.
pub fn set_instances(path: &Path, text: &str, app: &str, n: u32) -> Result<String, String> {
    let before = load_str(path, text).map_err(|e| format!("{e}"))?;
    if !before.apps.iter().any(|a| a.name == app) {
        return Err(format!("no app named `{app}` in {}", path.display()));
    }
    let yaml = match format_of(path) {
        Some(Format::Yaml) => true,
        Some(Format::Toml) => false,
        None => text.parse::<toml_edit::DocumentMut>().is_err(),
    };
    let edited = if yaml {
        set_yaml(text, app, n)?
    } else {
        set_toml(text, app, n)?
    };
    // Nothing else may change.
    let after =
        load_str(path, &edited).map_err(|e| format!("the edit would break the file: {e}"))?;
    let mut expected = before.clone();
    for a in &mut expected.apps {
        if a.name == app {
            a.instances = n;
        }
    }
    if after != expected {
        return Err(format!(
            "cannot set {app}'s instances alone in {} (is it shared through a YAML anchor?); \
             edit the file by hand",
            path.display()
        ));
    }
    Ok(edited)
}

fn set_toml(text: &str, app: &str, n: u32) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    let table = doc
        .get_mut("apps")
        .and_then(|a| a.as_table_like_mut())
        .and_then(|apps| apps.get_mut(app))
        .and_then(|t| t.as_table_like_mut())
        .ok_or_else(|| format!("no table for app `{app}`"))?;
    match table.get_mut("instances").and_then(|v| v.as_value_mut()) {
        Some(value) => {
            // Keep the spacing and the comment around the value.
            let decor = value.decor().clone();
            *value = toml_edit::Value::from(i64::from(n));
            *value.decor_mut() = decor;
        }
        None => {
            table.insert("instances", toml_edit::value(i64::from(n)));
        }
    }
    Ok(doc.to_string())
}

fn set_yaml(text: &str, app: &str, n: u32) -> Result<String, String> {
    let root = yaml::parse_yaml(text).map_err(|e| {
        e.first()
            .map(|s| s.message.clone())
            .unwrap_or_else(|| "YAML syntax error".into())
    })?;
    let entry_value = |node: &Node, key: &str| -> Option<Node> {
        node.entries()?
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.clone())
    };
    let apps = entry_value(&root, "apps").ok_or("no `apps` in the file")?;
    let app_entry = apps
        .entries()
        .and_then(|e| e.iter().find(|e| e.key == app))
        .ok_or_else(|| format!("no app named `{app}`"))?;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let offset = |line: usize, column: usize| -> Option<usize> {
        let start: usize = lines
            .iter()
            .take(line.checked_sub(1)?)
            .map(|l| l.len())
            .sum();
        let l = lines.get(line - 1)?;
        let within = l
            .char_indices()
            .nth(column.checked_sub(1)?)
            .map_or(l.len(), |(i, _)| i);
        Some(start + within)
    };
    let value = &app_entry.value;
    if let Some(old) = value
        .entries()
        .and_then(|e| e.iter().find(|e| e.key == "instances"))
    {
        if !matches!(old.value.kind, Kind::Int(_)) {
            return Err("`instances` is not a plain number".into());
        }
        let start = offset(old.value.pos.line, old.value.pos.column).ok_or("bad position")?;
        let len = text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | '}' | ']' | '#'))
            .unwrap_or(text.len() - start);
        return Ok(format!("{}{n}{}", &text[..start], &text[start + len..]));
    }
    // No `instances` yet: a line of its own before the app's first key, indented alike.
    let first = value
        .entries()
        .and_then(|e| e.iter().min_by_key(|e| (e.key_pos.line, e.key_pos.column)))
        .ok_or_else(|| format!("`{app}` is not a table"))?;
    if first.key_pos.line == app_entry.key_pos.line {
        return Err(format!(
            "`{app}` is written on one line (flow style); add `instances` by hand"
        ));
    }
    let start = offset(first.key_pos.line, 1).ok_or("bad position")?;
    let line = lines[first.key_pos.line - 1];
    let indent: String = line.chars().take_while(|c| *c == ' ').collect();
    Ok(format!(
        "{}{indent}instances: {n}\n{}",
        &text[..start],
        &text[start..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines that differ, (before, after).
    fn changed(a: &str, b: &str) -> Vec<(String, String)> {
        a.lines()
            .zip(b.lines())
            .filter(|(x, y)| x != y)
            .map(|(x, y)| (x.to_string(), y.to_string()))
            .collect()
    }

    const TOML: &str = r#"# The shop.
[settings]
log_timestamps = true   # keep

[apps.web]
command = "sh server.sh"   # the server
instances = 2   # two for now
# trailing comment

[apps.worker]
command = ["sleep", "1000"]
instances   =   1
"#;

    #[test]
    fn toml_changes_exactly_the_one_value() {
        let out = set_instances(Path::new("eco.toml"), TOML, "web", 4).unwrap();
        assert_eq!(
            changed(TOML, &out),
            [(
                "instances = 2   # two for now".into(),
                "instances = 4   # two for now".into()
            )]
        );
        assert_eq!(TOML.lines().count(), out.lines().count());
        let out = set_instances(Path::new("eco.toml"), TOML, "worker", 3).unwrap();
        assert_eq!(
            changed(TOML, &out),
            [("instances   =   1".into(), "instances   =   3".into())]
        );
    }

    #[test]
    fn toml_without_instances_gets_one_line() {
        let text = "[apps.web]\ncommand = \"true\" # c\n\n[apps.db]\ncommand = \"sleep\"\n";
        let out = set_instances(Path::new("e.toml"), text, "web", 3).unwrap();
        assert_eq!(
            out,
            "[apps.web]\ncommand = \"true\" # c\ninstances = 3\n\n[apps.db]\ncommand = \"sleep\"\n"
        );
    }

    const YAML: &str = "# The shop.\napps:\n  web:\n    command: sh server.sh  # the server\n    instances: 2 # two for now\n    # note\n  worker:\n    command: [sleep, \"1000\"]\n    instances: 1\n";

    #[test]
    fn yaml_changes_exactly_the_one_value() {
        let out = set_instances(Path::new("eco.yaml"), YAML, "web", 10).unwrap();
        assert_eq!(
            changed(YAML, &out),
            [(
                "    instances: 2 # two for now".into(),
                "    instances: 10 # two for now".into()
            )]
        );
        let out = set_instances(Path::new("eco.yaml"), YAML, "worker", 0).unwrap();
        assert_eq!(
            changed(YAML, &out),
            [("    instances: 1".into(), "    instances: 0".into())]
        );
    }

    #[test]
    fn yaml_without_instances_gets_one_line() {
        let text = "apps:\n  web:\n    # first\n    command: \"true\"\n";
        let out = set_instances(Path::new("e.yml"), text, "web", 2).unwrap();
        assert_eq!(
            out,
            "apps:\n  web:\n    # first\n    instances: 2\n    command: \"true\"\n"
        );
    }

    #[test]
    fn shared_anchors_and_unknown_apps_are_refused() {
        let text =
            "apps:\n  a: &b\n    command: \"true\"\n    instances: 2\n  b:\n    <<: *b\n    command: sleep\n";
        let e = set_instances(Path::new("e.yaml"), text, "b", 3).unwrap_err();
        assert!(e.contains("edit the file by hand"), "{e}");
        let e = set_instances(Path::new("eco.toml"), TOML, "nope", 3).unwrap_err();
        assert!(e.contains("no app named `nope`"), "{e}");
    }
}
