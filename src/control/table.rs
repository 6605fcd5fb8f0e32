//! `supervise status` as a table that fits the terminal, like `pm2 ls`.
//!
//! Widths are counted in chars (every symbol used here is one column wide). When the
//! table is too wide (80 columns when the width is unknown), the sd_notify STATUS text,
//! `last exit` and then the names shrink, truncated with `…` (a name keeps its `.N`);
//! only when that is not enough are whole columns dropped, by priority. `name` and
//! `state` always stay. The STATUS column shows only when some instance has one.
//! During a replacement the `pid` cell reads `NEW←OLD`: one row per instance.

use super::protocol::{InstanceStatus, LogLine, StatusReport};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Col {
    Name,
    Pid,
    State,
    Restarts,
    Uptime,
    Cpu,
    Memory,
    LastExit,
    Ready,
    Status,
}

const COLUMNS: [Col; 10] = [
    Col::Name,
    Col::Pid,
    Col::State,
    Col::Restarts,
    Col::Uptime,
    Col::Cpu,
    Col::Memory,
    Col::LastExit,
    Col::Ready,
    Col::Status,
];

/// Dropped first to last when the terminal is too narrow.
const DROP_ORDER: [Col; 8] = [
    Col::Status,
    Col::LastExit,
    Col::Ready,
    Col::Cpu,
    Col::Memory,
    Col::Uptime,
    Col::Restarts,
    Col::Pid,
];

/// A shrinkable column keeps at least this many chars (or its natural width).
const MIN_SHRUNK: usize = 8;
const GAP: &str = "  ";

impl Col {
    fn header(self) -> &'static str {
        match self {
            Col::Name => "name",
            Col::Pid => "pid",
            Col::State => "state",
            Col::Restarts => "↺",
            Col::Uptime => "uptime",
            Col::Cpu => "cpu",
            Col::Memory => "memory",
            Col::LastExit => "last exit",
            Col::Ready => "ready",
            Col::Status => "status",
        }
    }

    fn right_aligned(self) -> bool {
        matches!(self, Col::Pid | Col::Restarts | Col::Cpu | Col::Memory)
    }

    /// The narrowest a column shrinks to before columns are dropped.
    fn min_width(self, natural: usize) -> usize {
        let floor = match self {
            Col::Status | Col::LastExit | Col::Name => MIN_SHRUNK,
            _ => return natural,
        };
        natural.min(floor.max(self.header().chars().count()))
    }

    fn cell(self, i: &InstanceStatus) -> String {
        let or_dash = |o: Option<String>| o.unwrap_or_else(|| "-".to_string());
        match self {
            Col::Name => format!("{}.{}", i.app, i.index),
            Col::Pid => {
                let pid = or_dash(i.pid.map(|p| p.to_string()));
                match i.outgoing.as_ref().and_then(|o| o.pid) {
                    Some(old) => format!("{pid}←{old}"),
                    None => pid,
                }
            }
            Col::State => i.state.clone(),
            Col::Restarts => i.restarts.to_string(),
            Col::Uptime => or_dash(i.uptime_ms.map(human_duration)),
            Col::Cpu => or_dash(i.cpu_percent.map(human_percent)),
            Col::Memory => or_dash(i.memory_bytes.map(human_bytes)),
            Col::LastExit => or_dash(i.last_exit.clone()),
            Col::Ready => if i.ready { "✓" } else { "-" }.to_string(),
            // Control characters would break the table (and the terminal).
            Col::Status => match (&i.status_text, &i.next_run) {
                (None, Some(next)) => format!("next run {}", next.replace('T', " ")),
                (text, _) => text.clone().unwrap_or_default(),
            }
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
        }
    }

    /// The ANSI colour of a cell, if any.
    fn colour(self, i: &InstanceStatus) -> Option<&'static str> {
        match self {
            Col::Name => Some("36"),
            Col::State => match i.state.as_str() {
                "running" => Some("32"),
                "starting" | "stopping" | "backoff" => Some("33"),
                "errored" => Some("31"),
                "exited" | "stopped" => Some("2"),
                _ => None,
            },
            Col::Ready if i.ready => Some("32"),
            _ => None,
        }
    }
}

/// The status table, at most `width` columns wide where possible, one line per
/// instance, newline-terminated, with a `config error:` line under it when the
/// current config failed to load.
pub fn status_table(report: &StatusReport, width: usize, colour: bool) -> String {
    let mut cols: Vec<Col> = COLUMNS.to_vec();
    let cells: Vec<Vec<String>> = report
        .instances
        .iter()
        .map(|i| COLUMNS.iter().map(|c| c.cell(i)).collect())
        .collect();
    let natural = |c: Col| {
        let k = COLUMNS.iter().position(|x| *x == c).unwrap();
        cells
            .iter()
            .map(|row| row[k].chars().count())
            .chain([c.header().chars().count()])
            .max()
            .unwrap_or(0)
    };
    if report
        .instances
        .iter()
        .all(|i| Col::Status.cell(i).is_empty())
    {
        cols.retain(|c| *c != Col::Status);
    }
    let mut widths: Vec<usize>;
    let mut drop = DROP_ORDER.iter();
    loop {
        widths = cols.iter().map(|c| natural(*c)).collect();
        let total: usize = widths.iter().sum::<usize>() + GAP.len() * (cols.len() - 1);
        let mut excess = total.saturating_sub(width);
        for shrink in [Col::Status, Col::LastExit, Col::Name] {
            if let Some(k) = cols.iter().position(|c| *c == shrink) {
                let give = (widths[k] - shrink.min_width(widths[k])).min(excess);
                widths[k] -= give;
                excess -= give;
            }
        }
        if excess == 0 {
            break;
        }
        match drop.find(|c| cols.contains(c)) {
            Some(c) => cols.retain(|x| x != c),
            None => break, // name and state only: nothing more to give.
        }
    }

    let paint = |text: String, code: Option<&str>| match (colour, code) {
        (true, Some(code)) => format!("\x1b[{code}m{text}\x1b[0m"),
        _ => text,
    };
    let mut out = String::new();
    let headers: Vec<String> = cols.iter().map(|c| c.header().to_string()).collect();
    let header_line = layout(&cols, &widths, &headers, |_, t| t);
    out.push_str(&paint(header_line, Some("1")));
    out.push('\n');
    for (inst, row) in report.instances.iter().zip(&cells) {
        let picked: Vec<String> = cols
            .iter()
            .map(|c| row[COLUMNS.iter().position(|x| x == c).unwrap()].clone())
            .collect();
        let line = layout(&cols, &widths, &picked, |k, t| {
            paint(t, cols[k].colour(inst))
        });
        out.push_str(&line);
        out.push('\n');
    }
    if report.instances.is_empty() {
        out.push_str("(no instances)\n");
    }
    if let Some(err) = &report.config_error {
        out.push_str(&paint("config error:".to_string(), Some("31;1")));
        out.push(' ');
        out.push_str(err.trim_end());
        out.push('\n');
    }
    out
}

/// One row: each cell truncated/padded to its width, joined by the gap, trailing
/// blanks trimmed. `decorate` wraps a padded cell (colour) after its width is fixed.
fn layout(
    cols: &[Col],
    widths: &[usize],
    texts: &[String],
    decorate: impl Fn(usize, String) -> String,
) -> String {
    let mut parts = Vec::with_capacity(cols.len());
    for (k, (col, w)) in cols.iter().zip(widths).enumerate() {
        let t = if *col == Col::Name {
            truncate_name(&texts[k], *w)
        } else {
            truncate(&texts[k], *w)
        };
        let pad = " ".repeat(w - t.chars().count());
        let cell = if col.right_aligned() {
            format!("{pad}{t}")
        } else if k + 1 == cols.len() {
            t
        } else {
            format!("{t}{pad}")
        };
        parts.push(decorate(k, cell));
    }
    parts.join(GAP).trim_end().to_string()
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut t: String = s.chars().take(width - 1).collect();
    t.push('…');
    t
}

/// `app.N` in `width` chars, the app name shortened and the `.N` kept.
fn truncate_name(s: &str, width: usize) -> String {
    match s.rsplit_once('.') {
        Some((app, n)) if s.chars().count() > width && n.len() + 2 <= width => {
            let mut t = truncate(app, width - n.len() - 1);
            t.push('.');
            t.push_str(n);
            t
        }
        _ => truncate(s, width),
    }
}

/// `5s`, `3m`, `2h`, `4d`.
pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `0.3%`, `12.0%`, `250%`.
pub fn human_percent(p: f64) -> String {
    if p >= 99.95 {
        format!("{p:.0}%")
    } else {
        format!("{:.1}%", p.max(0.0))
    }
}

/// `512 B`, `3.0 KiB`, `12.4 MiB`, `1.5 GiB`.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut u = 0;
    while v >= 1023.95 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// A log line as `logs` prints it: `web.0 | text`.
pub fn log_line_text(l: &LogLine) -> String {
    format!("{}.{} | {}", l.app, l.index, l.line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(app: &str, index: u32, state: &str) -> InstanceStatus {
        InstanceStatus {
            app: app.into(),
            index,
            state: state.into(),
            ..Default::default()
        }
    }

    fn report() -> StatusReport {
        let mut web0 = inst("web", 0, "running");
        web0.pid = Some(4242);
        web0.restarts = 2;
        web0.uptime_ms = Some(185_000);
        web0.cpu_percent = Some(0.31);
        web0.memory_bytes = Some(13_002_342);
        web0.last_exit = Some("code 1".into());
        web0.ready = true;
        web0.status_text = Some("serving 12 requests/s on :8080".into());
        let mut web1 = inst("web", 1, "starting");
        web1.pid = Some(4250);
        web1.uptime_ms = Some(4_000);
        web1.cpu_percent = Some(104.2);
        web1.memory_bytes = Some(900);
        let mut worker = inst("worker", 0, "errored");
        worker.restarts = 15;
        worker.last_exit = Some("SIGKILL".into());
        StatusReport {
            config: "/srv/ecosystem.toml".into(),
            config_error: None,
            instances: vec![web0, web1, worker],
        }
    }

    #[test]
    fn wide_table() {
        let got = status_table(&report(), 200, false);
        let want = "\
name       pid  state      ↺  uptime   cpu    memory  last exit  ready  status
web.0     4242  running    2  3m      0.3%  12.4 MiB  code 1     ✓      serving 12 requests/s on :8080
web.1     4250  starting   0  4s      104%     900 B  -          -
worker.0     -  errored   15  -          -         -  SIGKILL    -
";
        assert_eq!(got, want, "\n{got}");
    }

    #[test]
    fn status_column_shrinks_first() {
        let got = status_table(&report(), 90, false);
        let want = "\
name       pid  state      ↺  uptime   cpu    memory  last exit  ready  status
web.0     4242  running    2  3m      0.3%  12.4 MiB  code 1     ✓      serving 12 reques…
web.1     4250  starting   0  4s      104%     900 B  -          -
worker.0     -  errored   15  -          -         -  SIGKILL    -
";
        assert_eq!(got, want, "\n{got}");
        for l in got.lines() {
            assert!(l.chars().count() <= 90, "{l}");
        }
    }

    #[test]
    fn narrow_terminals_drop_columns() {
        let got = status_table(&report(), 60, false);
        let want = "\
name       pid  state      ↺  uptime   cpu    memory  ready
web.0     4242  running    2  3m      0.3%  12.4 MiB  ✓
web.1     4250  starting   0  4s      104%     900 B  -
worker.0     -  errored   15  -          -         -  -
";
        assert_eq!(got, want, "\n{got}");
        let got = status_table(&report(), 32, false);
        let want = "\
name       pid  state      ↺
web.0     4242  running    2
web.1     4250  starting   0
worker.0     -  errored   15
";
        assert_eq!(got, want, "\n{got}");
        // Narrower than name + state: those two stay anyway.
        let got = status_table(&report(), 5, false);
        assert!(
            got.starts_with("name      state\nweb.0     running\n"),
            "\n{got}"
        );
    }

    #[test]
    fn long_names_are_shortened_at_80_columns_not_columns_cut() {
        let mut r = report();
        for i in &mut r.instances {
            i.app = format!("{}-with-a-really-long-descriptive-name", i.app);
            i.status_text = None;
        }
        r.instances[1].outgoing = Some(crate::control::protocol::Outgoing {
            pid: Some(4100),
            state: "running".into(),
        });
        let got = status_table(&r, 80, false);
        let want = "\
name                 pid  state      ↺  uptime   cpu    memory  last exit  ready
web-with-a….0       4242  running    2  3m      0.3%  12.4 MiB  code 1     ✓
web-with-a….1  4250←4100  starting   0  4s      104%     900 B  -          -
worker-wit….0          -  errored   15  -          -         -  SIGKILL    -
";
        assert_eq!(got, want, "\n{got}");
        for l in got.lines() {
            assert!(l.chars().count() <= 80, "{l}");
        }
    }

    #[test]
    fn every_width_fits_when_possible() {
        let r = report();
        for w in 18..220 {
            let got = status_table(&r, w, false);
            for l in got.lines() {
                assert!(l.chars().count() <= w, "width {w}: {l}");
            }
        }
    }

    #[test]
    fn config_error_and_empty() {
        let r = StatusReport {
            config: "eco.toml".into(),
            config_error: Some("eco.toml:3:9: apps.web.instances: expected a number\n".into()),
            instances: vec![],
        };
        let got = status_table(&r, 80, false);
        let want = "\
name  pid  state  ↺  uptime  cpu  memory  last exit  ready
(no instances)
config error: eco.toml:3:9: apps.web.instances: expected a number
";
        assert_eq!(got, want, "\n{got}");
    }

    #[test]
    fn colour_does_not_change_layout() {
        let r = report();
        let plain = status_table(&r, 100, false);
        let coloured = status_table(&r, 100, true);
        assert!(coloured.contains("\x1b[32mrunning \x1b[0m"), "{coloured:?}");
        assert!(coloured.contains("\x1b[31merrored \x1b[0m"));
        let stripped = strip_ansi(&coloured);
        assert_eq!(stripped, plain);
    }

    #[test]
    fn control_characters_in_status_are_blanked() {
        let mut r = report();
        r.instances[0].status_text = Some("a\tb\x1b[2Jc".into());
        let got = status_table(&r, 200, false);
        assert!(got.contains("a b [2Jc"), "{got}");
    }

    fn strip_ansi(s: &str) -> String {
        let mut out = String::new();
        let mut it = s.chars();
        while let Some(c) = it.next() {
            if c == '\x1b' {
                for d in it.by_ref() {
                    if d == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn humans() {
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(5_999), "5s");
        assert_eq!(human_duration(180_000), "3m");
        assert_eq!(human_duration(7_200_000), "2h");
        assert_eq!(human_duration(4 * 86_400_000 + 5), "4d");
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(3 * 1024), "3.0 KiB");
        assert_eq!(human_bytes(13_002_342), "12.4 MiB");
        assert_eq!(human_bytes(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
        assert_eq!(human_percent(0.31), "0.3%");
        assert_eq!(human_percent(0.0), "0.0%");
        assert_eq!(human_percent(250.4), "250%");
    }

    #[test]
    fn log_lines() {
        let l = LogLine {
            time_ms: 0,
            app: "web".into(),
            index: 0,
            stream: "stdout".into(),
            line: "GET / 200".into(),
        };
        assert_eq!(log_line_text(&l), "web.0 | GET / 200");
    }
}
