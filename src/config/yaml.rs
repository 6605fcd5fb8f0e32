//! YAML -> `Node`, through `saphyr`'s marked tree (line + character column markers).
//! Scalars arrive typed (core schema); aliases are expanded by the loader; merge keys
//! (`<<: *base`) are applied here; a second document is an error.

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};

use super::error::Pos;
use super::node::{Entry, Kind, LineIndex, Node, Syntax, MAX_DEPTH};

pub(crate) fn parse_yaml(text: &str) -> Result<Node, Vec<Syntax>> {
    // The parser is not ours: a panic inside it must become an error, never a crash.
    let loaded = std::panic::catch_unwind(|| MarkedYamlOwned::load_from_str(text));
    let docs = match loaded {
        Ok(Ok(docs)) => docs,
        Ok(Err(e)) => {
            let m = e.marker();
            let pos = Pos {
                line: m.line().max(1),
                column: m.col() + 1,
            };
            // At the end of the input the parser points past the last line: say where
            // the text ends instead.
            let end = LineIndex::new(text).pos(text.len());
            return Err(vec![Syntax {
                pos: pos.min(end),
                message: format!("YAML syntax error: {}", e.info()),
            }]);
        }
        Err(_) => {
            return Err(vec![Syntax {
                pos: Pos::START,
                message: "YAML syntax error: the YAML parser failed on this file".to_string(),
            }])
        }
    };
    let mut errors = Vec::new();
    let end = LineIndex::new(text).pos(text.len());
    if let Some(second) = docs.get(1) {
        // An empty second document is placed after the text's end: say where it ends.
        errors.push(Syntax {
            pos: yaml_pos(second, end),
            message: "only one YAML document is allowed; found a second one".to_string(),
        });
    }
    let root = match docs.first() {
        // An empty document: no apps (reported by the schema).
        None => Node {
            kind: Kind::Table(Vec::new()),
            pos: Pos::START,
        },
        Some(d) if matches!(d.data, YamlDataOwned::BadValue) => Node {
            kind: Kind::Table(Vec::new()),
            pos: Pos::START,
        },
        Some(d) if matches!(d.data, YamlDataOwned::Value(ScalarOwned::Null)) => Node {
            kind: Kind::Table(Vec::new()),
            pos: Pos::START,
        },
        Some(d) => yaml_node(d, 0, end, &mut errors),
    };
    if errors.is_empty() {
        Ok(root)
    } else {
        Err(errors)
    }
}

/// Where `y` starts, but never past `end`, where the text ends: at the end of the input
/// the parser places empty values (`?` with no key) on a line after the last.
fn yaml_pos(y: &MarkedYamlOwned, end: Pos) -> Pos {
    let pos = Pos {
        line: y.span.start.line().max(1),
        column: y.span.start.col() + 1,
    };
    pos.min(end)
}

fn yaml_node(y: &MarkedYamlOwned, depth: usize, end: Pos, errors: &mut Vec<Syntax>) -> Node {
    let pos = yaml_pos(y, end);
    let fail = |errors: &mut Vec<Syntax>, message: &str| {
        errors.push(Syntax {
            pos,
            message: message.to_string(),
        });
        Node {
            kind: Kind::Null,
            pos,
        }
    };
    if depth > MAX_DEPTH {
        return fail(errors, "values are nested too deeply");
    }
    let kind = match &y.data {
        YamlDataOwned::Value(s) => match s {
            ScalarOwned::Null => Kind::Null,
            ScalarOwned::Boolean(b) => Kind::Bool(*b),
            ScalarOwned::Integer(i) => Kind::Int(*i),
            ScalarOwned::FloatingPoint(f) => Kind::Float(f.into_inner()),
            ScalarOwned::String(s) => Kind::Str(s.clone()),
        },
        YamlDataOwned::Representation(s, _, _) => Kind::Str(s.clone()),
        YamlDataOwned::Sequence(items) => Kind::Array(
            items
                .iter()
                .map(|i| yaml_node(i, depth + 1, end, errors))
                .collect(),
        ),
        YamlDataOwned::Mapping(map) => {
            let mut explicit: Vec<Entry> = Vec::new();
            let mut merged: Vec<Entry> = Vec::new();
            for (k, v) in map.iter() {
                let key = match &k.data {
                    YamlDataOwned::Value(ScalarOwned::String(s)) => s.clone(),
                    YamlDataOwned::Value(ScalarOwned::Integer(i)) => i.to_string(),
                    YamlDataOwned::Value(ScalarOwned::Boolean(b)) => b.to_string(),
                    YamlDataOwned::Value(ScalarOwned::FloatingPoint(f)) => f.to_string(),
                    _ => {
                        errors.push(Syntax {
                            pos: yaml_pos(k, end),
                            message: "mapping keys must be plain strings".to_string(),
                        });
                        continue;
                    }
                };
                let value = yaml_node(v, depth + 1, end, errors);
                if key == "<<" {
                    // YAML merge key: `<<: *defaults` or `<<: [*a, *b]`.
                    let sources = match value.kind {
                        Kind::Array(items) => items,
                        _ => vec![value],
                    };
                    for source in sources {
                        match source.kind {
                            Kind::Table(entries) => merged.extend(entries),
                            _ => errors.push(Syntax {
                                pos: source.pos,
                                message: "a merge key `<<` takes a mapping or a list of mappings"
                                    .to_string(),
                            }),
                        }
                    }
                    continue;
                }
                explicit.push(Entry {
                    key,
                    key_pos: yaml_pos(k, end),
                    value,
                });
            }
            for m in merged {
                if !explicit.iter().any(|e| e.key == m.key) {
                    explicit.push(m);
                }
            }
            Kind::Table(explicit)
        }
        YamlDataOwned::Tagged(_, inner) => return yaml_node(inner, depth + 1, end, errors),
        YamlDataOwned::Alias(_) => return fail(errors, "unresolved YAML alias"),
        YamlDataOwned::BadValue => {
            return fail(
                errors,
                "invalid value (an unknown alias or a tag that does not fit)",
            )
        }
    };
    Node { kind, pos }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::node::Kind;

    #[test]
    fn yaml_positions_and_merge_keys() {
        let text = "base: &b\n  x: 1\n  y: 2\napp:\n  <<: *b\n  y: 3\n";
        let n = parse_yaml(text).unwrap();
        let app = &n.entries().unwrap()[1];
        assert_eq!(app.key_pos, Pos { line: 4, column: 1 });
        let e = app.value.entries().unwrap();
        assert_eq!(e[0].key, "y");
        assert_eq!(e[0].value.kind, Kind::Int(3));
        assert_eq!(e[0].value.pos, Pos { line: 6, column: 6 });
        assert_eq!(e[1].key, "x");
    }

    #[test]
    fn an_empty_complex_key_at_the_end_is_placed_within_the_text() {
        // Found by tests/it/fuzz.rs: the parser put the error on line 3 of 2.
        let err = parse_yaml("?\n  ").unwrap_err();
        assert_eq!(err[0].message, "mapping keys must be plain strings");
        assert!(err[0].pos.line <= 2, "{:?}", err[0].pos);
    }

    #[test]
    fn yaml_second_document_is_an_error() {
        let err = parse_yaml("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(err[0].pos.line, 3);
    }
}
