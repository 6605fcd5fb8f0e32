//! A writer of the Prometheus text exposition format, version 0.0.4: `# HELP` and
//! `# TYPE` once per family, then one sample per line, label values escaped.
//! Hand-written (a few lines against a registry crate built for shared, locked state);
//! its output is checked by real parsers in the tests: `promtool check metrics`, the
//! Python `prometheus_client` parser, and a Prometheus server scraping supervise.

use std::fmt::Write;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

#[derive(Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Start a family: its HELP and TYPE lines. Its samples follow.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line: `name{label="value",...} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(key);
                self.text.push_str("=\"");
                escape_label(&mut self.text, value);
                self.text.push('"');
            }
            self.text.push('}');
        }
        self.text.push(' ');
        write_value(&mut self.text, value);
        self.text.push('\n');
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    pub fn finish(self) -> String {
        self.text
    }
}

fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Whole numbers without a fraction, others in Rust's shortest round-trip form; the
/// special values as Prometheus spells them.
fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        let _ = write!(out, "{}", value as i64);
    } else {
        let _ = write!(out, "{value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escapes() {
        let mut e = Exposition::new();
        e.single("supervise_up", Kind::Gauge, "Up.\nTwo \\ lines", 1.0);
        e.family("x_total", Kind::Counter, "Things.");
        e.sample("x_total", &[("app", "a\"b\\c\nd"), ("index", "0")], 2.5);
        e.sample("x_total", &[("app", "b"), ("index", "1")], f64::NAN);
        assert_eq!(
            e.finish(),
            "# HELP supervise_up Up.\\nTwo \\\\ lines\n# TYPE supervise_up gauge\nsupervise_up 1\n\
             # HELP x_total Things.\n# TYPE x_total counter\n\
             x_total{app=\"a\\\"b\\\\c\\nd\",index=\"0\"} 2.5\nx_total{app=\"b\",index=\"1\"} NaN\n"
        );
    }

    #[test]
    fn values() {
        let v = |x: f64| {
            let mut s = String::new();
            write_value(&mut s, x);
            s
        };
        assert_eq!(v(0.0), "0");
        assert_eq!(v(-3.0), "-3");
        assert_eq!(v(1_700_000_000.25), "1700000000.25");
        assert_eq!(v(1e20), "100000000000000000000");
        assert_eq!(v(f64::INFINITY), "+Inf");
    }
}
