//! One located tree for both formats, so the schema is written once.
//!
//! TOML comes from `toml::de::DeTable` (byte spans), YAML from `saphyr::MarkedYamlOwned`
//! (line + character column markers). Both become a `Node` whose positions are 1-based
//! line and character column; tables keep their keys' positions and their file order.

use std::fmt::Write as _;

use toml::de::{DeTable, DeValue};

use super::error::Pos;

/// Deeper nesting than this is refused (no schema key nests more than a few levels).
pub(crate) const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Node>),
    Table(Vec<Entry>),
    /// A value no key accepts (a TOML date, an out-of-range integer); the text says what.
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

/// A syntax error, located.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Syntax {
    pub pos: Pos,
    pub message: String,
}

impl Node {
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.kind {
            Kind::Table(e) => Some(e),
            _ => None,
        }
    }

    /// How the value reads in "found ..." messages: `-1`, `"lots"`, `a table`.
    pub fn found(&self) -> String {
        match &self.kind {
            Kind::Null => "nothing (null)".to_string(),
            Kind::Bool(b) => b.to_string(),
            Kind::Int(i) => i.to_string(),
            Kind::Float(f) => format!("{f:?}"),
            Kind::Str(s) => quote(s),
            Kind::Array(_) => "an array".to_string(),
            Kind::Table(_) => "a table".to_string(),
            Kind::Other(what) => what.clone(),
        }
    }

    /// A scalar as text (`env` values accept numbers and booleans, as docker compose does).
    pub fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            Kind::Str(s) => Some(s.clone()),
            Kind::Bool(b) => Some(b.to_string()),
            Kind::Int(i) => Some(i.to_string()),
            Kind::Float(f) => Some(f.to_string()),
            _ => None,
        }
    }
}

/// `"text"` with escapes, cut when long.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        if i == 60 {
            out.push_str("...");
            break;
        }
        let _ = write!(out, "{}", c.escape_debug());
    }
    out.push('"');
    out
}

/// Byte offset -> 1-based line and character column.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> LineIndex<'a> {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    pub fn pos(&self, byte: usize) -> Pos {
        let mut byte = byte.min(self.text.len());
        while !self.text.is_char_boundary(byte) {
            byte -= 1;
        }
        let line = self.starts.partition_point(|&s| s <= byte);
        let start = self.starts[line - 1];
        Pos {
            line,
            column: self.text[start..byte].chars().count() + 1,
        }
    }
}

pub(crate) fn parse_toml(text: &str) -> Result<Node, Vec<Syntax>> {
    let index = LineIndex::new(text);
    // The parser is not ours: a panic inside it must become an error, never a crash.
    let Ok((doc, errors)) = std::panic::catch_unwind(|| DeTable::parse_recoverable(text)) else {
        return Err(vec![Syntax {
            pos: Pos::START,
            message: "TOML syntax error: the TOML parser failed on this file".to_string(),
        }]);
    };
    if !errors.is_empty() {
        let mut out: Vec<Syntax> = errors
            .iter()
            .map(|e| Syntax {
                pos: index.pos(e.span().map_or(0, |s| s.start)),
                message: format!("TOML syntax error: {}", e.message().trim()),
            })
            .collect();
        out.sort_by_key(|s| s.pos);
        out.dedup();
        return Err(out);
    }
    let mut errors = Vec::new();
    let node = toml_table(doc.get_ref(), Pos::START, &index, 0, &mut errors);
    if errors.is_empty() {
        Ok(node)
    } else {
        Err(errors)
    }
}

fn toml_table(
    table: &DeTable<'_>,
    pos: Pos,
    index: &LineIndex,
    depth: usize,
    errors: &mut Vec<Syntax>,
) -> Node {
    let mut entries: Vec<(usize, Entry)> = table
        .iter()
        .map(|(k, v)| {
            let key_pos = index.pos(k.span().start);
            let value = toml_value(v.get_ref(), index.pos(v.span().start), index, depth, errors);
            let entry = Entry {
                key: k.get_ref().to_string(),
                key_pos,
                value,
            };
            (k.span().start, entry)
        })
        .collect();
    // The map is sorted by key; the file order is the order of the keys' spans.
    entries.sort_by_key(|(start, _)| *start);
    Node {
        kind: Kind::Table(entries.into_iter().map(|(_, e)| e).collect()),
        pos,
    }
}

fn toml_value(
    v: &DeValue<'_>,
    pos: Pos,
    index: &LineIndex,
    depth: usize,
    errors: &mut Vec<Syntax>,
) -> Node {
    if depth > MAX_DEPTH {
        errors.push(Syntax {
            pos,
            message: "values are nested too deeply".to_string(),
        });
        return Node {
            kind: Kind::Null,
            pos,
        };
    }
    let kind = match v {
        DeValue::String(s) => Kind::Str(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Kind::Int(n),
            Err(_) => Kind::Other(format!("the out-of-range integer {i}")),
        },
        DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
            Ok(x) => Kind::Float(x),
            Err(_) => Kind::Other(format!("the number {f}")),
        },
        DeValue::Boolean(b) => Kind::Bool(*b),
        DeValue::Datetime(d) => Kind::Other(format!("the date-time {d}")),
        DeValue::Array(items) => Kind::Array(
            items
                .iter()
                .map(|item| {
                    let p = index.pos(item.span().start);
                    toml_value(item.get_ref(), p, index, depth + 1, errors)
                })
                .collect(),
        ),
        DeValue::Table(t) => return toml_table(t, pos, index, depth + 1, errors),
    };
    Node { kind, pos }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_counts_characters() {
        let idx = LineIndex::new("ab\néé = 1\n");
        assert_eq!(idx.pos(0), Pos { line: 1, column: 1 });
        assert_eq!(idx.pos(3), Pos { line: 2, column: 1 });
        assert_eq!(idx.pos(7), Pos { line: 2, column: 3 });
        assert_eq!(idx.pos(999).line, 3);
    }

    #[test]
    fn toml_keeps_file_order_and_positions() {
        let n = parse_toml("[apps.zeta]\nx = 1\n[apps.alpha]\ny = \"s\"\n").unwrap();
        let apps = &n.entries().unwrap()[0].value;
        let names: Vec<_> = apps.entries().unwrap().iter().map(|e| &e.key).collect();
        assert_eq!(names, ["zeta", "alpha"]);
        let y = &apps.entries().unwrap()[1].value.entries().unwrap()[0];
        assert_eq!(y.key_pos, Pos { line: 4, column: 1 });
        assert_eq!(y.value.pos, Pos { line: 4, column: 5 });
    }
}
