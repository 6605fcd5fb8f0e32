//! `env_file` contents: `KEY=VALUE` lines, `#` comments, blank lines, an optional
//! `export ` prefix and optional single or double quotes around the value (as docker
//! compose and systemd's `EnvironmentFile` read them).

use std::collections::BTreeMap;

/// The variables, or every bad line as `(line number, reason)`.
pub(crate) fn parse(text: &str) -> Result<BTreeMap<String, String>, Vec<(usize, String)>> {
    let mut vars = BTreeMap::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, value)) = line.split_once('=') else {
            errors.push((
                i + 1,
                format!("expected KEY=VALUE, found {}", super::node::quote(raw)),
            ));
            continue;
        };
        let key = key.trim();
        let key_ok = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !key_ok {
            errors.push((
                i + 1,
                format!("invalid variable name {}", super::node::quote(key)),
            ));
            continue;
        }
        match value_of(value.trim()) {
            Ok(v) => {
                vars.insert(key.to_string(), v);
            }
            Err(why) => errors.push((i + 1, why)),
        }
    }
    if errors.is_empty() {
        Ok(vars)
    } else {
        Err(errors)
    }
}

fn value_of(v: &str) -> Result<String, String> {
    if let Some(inner) = v.strip_prefix('\'') {
        let Some(end) = inner.find('\'') else {
            return Err("missing closing `'`".to_string());
        };
        return trailing(&inner[end + 1..]).map(|()| inner[..end].to_string());
    }
    if let Some(inner) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = inner.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return trailing(&inner[i + 1..]).map(|()| out),
                '\\' => match chars.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, 'r')) => out.push('\r'),
                    Some((_, other)) => out.push(other),
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err("missing closing `\"`".to_string());
    }
    // Unquoted: a ` #` starts a comment.
    let v = match v.find(" #") {
        Some(i) => v[..i].trim_end(),
        None => v,
    };
    Ok(v.to_string())
}

/// After a closing quote only blanks or a comment may follow.
fn trailing(rest: &str) -> Result<(), String> {
    let rest = rest.trim();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(())
    } else {
        Err(format!(
            "unexpected text after the closing quote: {}",
            super::node::quote(rest)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let text =
            "# c\n\nA=1\nexport B = two \nC='x # y'\nD=\"a\\nb\" # note\nE=v # comment\nF=\n";
        let vars = parse(text).unwrap();
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two");
        assert_eq!(vars["C"], "x # y");
        assert_eq!(vars["D"], "a\nb");
        assert_eq!(vars["E"], "v");
        assert_eq!(vars["F"], "");
    }

    #[test]
    fn bad_lines() {
        let errors = parse("A=1\nnot a pair\n1X=2\nQ=\"open\n").unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert_eq!(errors[0].1, "expected KEY=VALUE, found \"not a pair\"");
    }
}
