//! Per-instance values (SPEC §8): `{app}`, `{instance}` and `{port}` in `command`
//! arguments, `env` values, `cwd`, and the `ready` / `health` targets.
//!
//! The spec keeps the text as written; it is checked here when the file is read (an
//! unknown placeholder is a located error, so a typo never reaches a running process)
//! and expanded for one instance when that instance is spawned or probed.
//!
//! What counts as a placeholder is deliberately narrow, so that text written for other
//! tools keeps working: `{name}` with `name` made of ASCII letters, digits and `_`.
//! `{{` and `}}` are literal braces; `${NAME}` (a shell parameter) and any other brace
//! (`{"json": 1}`, awk's `{print $1}`) are left as they are.

/// The names a placeholder may have.
pub const KNOWN: [&str; 3] = ["app", "instance", "port"];

/// The values of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Values<'a> {
    pub app: &'a str,
    pub instance: u32,
    /// `port` + instance number, when the app sets `port`.
    pub port: Option<u32>,
}

/// Values to check the shape of a template with (a `HOST:{port}` is a `HOST:PORT`).
pub const SAMPLE: Values = Values {
    app: "app",
    instance: 0,
    port: Some(1),
};

/// One piece of a template.
enum Piece<'a> {
    Text(&'a str),
    /// A placeholder's name, without its braces.
    Name(&'a str),
}

/// Splits `text` into literal text and placeholders (`{{`/`}}` unescaped to one brace).
fn pieces(text: &str) -> Vec<Piece<'_>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut start) = (0, 0);
    while i < bytes.len() {
        let b = bytes[i];
        let doubled = bytes.get(i + 1) == Some(&b);
        if (b == b'{' || b == b'}') && doubled {
            out.push(Piece::Text(&text[start..=i]));
            i += 2;
            start = i;
            continue;
        }
        if b == b'{' && (i == 0 || bytes[i - 1] != b'$') {
            let name_len = bytes[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            if name_len > 0 && bytes.get(i + 1 + name_len) == Some(&b'}') {
                out.push(Piece::Text(&text[start..i]));
                out.push(Piece::Name(&text[i + 1..i + 1 + name_len]));
                i += name_len + 2;
                start = i;
                continue;
            }
        }
        i += 1;
    }
    out.push(Piece::Text(&text[start..]));
    out
}

/// Whether `text` has anything to expand (a placeholder or an escaped brace).
pub fn is_template(text: &str) -> bool {
    pieces(text).len() > 1
}

/// Checks the placeholders of `text`: the message for the first unknown one, or for
/// `{port}` on an app without `port`.
pub fn check(text: &str, has_port: bool) -> Result<(), String> {
    for piece in pieces(text) {
        let Piece::Name(name) = piece else { continue };
        if !KNOWN.contains(&name) {
            return Err(format!(
                "unknown placeholder `{{{name}}}` (known: {{app}}, {{instance}}, {{port}}; \
                 write `{{{{` and `}}}}` for literal braces)"
            ));
        }
        if name == "port" && !has_port {
            return Err(
                "`{port}` needs `port` on the app (e.g. port = 3000: instance N \
                        gets 3000 + N)"
                    .to_string(),
            );
        }
    }
    Ok(())
}

/// `text` with the placeholders of one instance filled in. Unknown names were refused
/// when the file was read; should one reach here, it is kept as written.
pub fn expand(text: &str, values: &Values) -> String {
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Name("app") => out.push_str(values.app),
            Piece::Name("instance") => out.push_str(&values.instance.to_string()),
            Piece::Name("port") if values.port.is_some() => {
                out.push_str(&values.port.unwrap_or_default().to_string())
            }
            Piece::Name(other) => {
                out.push('{');
                out.push_str(other);
                out.push('}');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: Values = Values {
        app: "web",
        instance: 2,
        port: Some(3002),
    };

    #[test]
    fn expands_known_names() {
        assert_eq!(expand("{app}.{instance}", &V), "web.2");
        assert_eq!(
            expand("http://127.0.0.1:{port}/health", &V),
            "http://127.0.0.1:3002/health"
        );
        assert_eq!(expand("data/{instance}/db", &V), "data/2/db");
        assert_eq!(expand("plain", &V), "plain");
    }

    #[test]
    fn escapes_and_foreign_braces_are_literal() {
        assert_eq!(expand("{{app}}", &V), "{app}");
        assert_eq!(expand("a }} b {{", &V), "a } b {");
        assert_eq!(expand("echo ${HOME} {app}", &V), "echo ${HOME} web");
        assert_eq!(expand(r#"{"a": 1}"#, &V), r#"{"a": 1}"#);
        assert_eq!(expand("awk '{print $1}'", &V), "awk '{print $1}'");
        assert_eq!(expand("{", &V), "{");
        assert_eq!(expand("{app", &V), "{app");
        assert!(!is_template("${HOME} {\"a\": 1}"));
        assert!(is_template("{{"));
        assert!(is_template("x{port}"));
    }

    #[test]
    fn unknown_and_portless_placeholders_are_refused() {
        let e = check("--name {ap}", true).unwrap_err();
        assert!(e.contains("unknown placeholder `{ap}`"), "{e}");
        let e = check("127.0.0.1:{port}", false).unwrap_err();
        assert!(e.contains("needs `port`"), "{e}");
        assert!(check("{app}-{instance}-{port} ${X} {{y}}", true).is_ok());
    }

    #[test]
    fn multibyte_text_is_kept() {
        assert_eq!(expand("é{app}ü{{", &V), "éwebü{");
    }
}
