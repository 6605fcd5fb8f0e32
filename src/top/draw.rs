//! Drawing `supervise top` from a [`Top`]: a title line, the instance table, the cpu and
//! memory history of the selected app, the selected instance's last lines and the help
//! line. Nothing here talks to supervise; the tests draw into ratatui's test backend.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Sparkline, Table, TableState};
use ratatui::Frame;

use super::input::HELP;
use super::model::Top;
use crate::control::protocol::InstanceStatus;
use crate::control::table::{human_bytes, human_duration, human_percent};

/// Lines of the history graphs, borders included.
const GRAPH_HEIGHT: u16 = 6;

pub fn draw(frame: &mut Frame, top: &Top) {
    let area = frame.area();
    let rows = top.report.instances.len() as u16;
    // The table takes what its rows need, up to two fifths of the screen.
    let table = (rows.max(1) + 3).min((area.height * 2 / 5).max(5));
    let [title, table, graphs, logs, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(table),
        Constraint::Length(GRAPH_HEIGHT),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    frame.render_widget(title_line(top), title);
    draw_table(frame, table, top);
    draw_graphs(frame, graphs, top);
    draw_logs(frame, logs, top);
    frame.render_widget(help_line(), help);
}

fn title_line(top: &Top) -> Line<'static> {
    let apps = top.history.len();
    let n = top.report.instances.len();
    let mut spans = vec![
        " supervise top ".bold().reversed(),
        Span::raw(format!(" {}  ", top.report.config)),
        Span::raw(format!(
            "{apps} app{}, {n} instance{}",
            plural(apps),
            plural(n)
        )),
    ];
    if let Some(why) = &top.sample_error {
        spans.push(Span::styled(format!("  {why}"), Color::Red));
    } else if let Some(why) = &top.report.config_error {
        spans.push(Span::styled(format!("  config error: {why}"), Color::Red));
    } else if top.samples == 0 {
        spans.push(Span::raw("  connecting…"));
    }
    Line::from(spans)
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn state_colour(state: &str) -> Color {
    match state {
        "running" => Color::Green,
        "starting" | "stopping" => Color::Yellow,
        "backoff" | "errored" => Color::Red,
        _ => Color::DarkGray,
    }
}

fn row(i: &InstanceStatus) -> Row<'static> {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    Row::new(vec![
        Line::from(format!("{}.{}", i.app, i.index)),
        Line::from(or_dash(i.pid.map(|p| p.to_string()))),
        Line::from(Span::styled(i.state.clone(), state_colour(&i.state))),
        Line::from(if i.ready { "yes" } else { "no" }),
        Line::from(i.restarts.to_string()),
        Line::from(or_dash(i.uptime_ms.map(human_duration))),
        Line::from(or_dash(i.cpu_percent.map(human_percent))),
        Line::from(or_dash(i.memory_bytes.map(human_bytes))),
        // The sd_notify STATUS text, else a job's next run, else how the last run ended.
        Line::from(or_dash(
            i.status_text
                .as_deref()
                .map(plain)
                .or_else(|| i.next_run.as_deref().map(next_run))
                .or_else(|| i.last_exit.as_ref().map(|e| format!("last exit: {e}"))),
        )),
    ])
}

fn draw_table(frame: &mut Frame, area: Rect, top: &Top) {
    let header = Row::new([
        "NAME", "PID", "STATE", "READY", "RESTARTS", "UPTIME", "CPU", "MEMORY", "STATUS",
    ])
    .bold();
    let widths = [
        Constraint::Length(14),
        Constraint::Length(8),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(10),
        Constraint::Fill(1),
    ];
    let table = Table::new(top.report.instances.iter().map(row), widths)
        .header(header)
        .block(
            Block::bordered()
                .title(" instances ")
                .title_bottom(outcome(top)),
        )
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ");
    let selected = (!top.report.instances.is_empty()).then_some(top.selected);
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_graphs(frame: &mut Frame, area: Rect, top: &Top) {
    let [cpu, memory] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let Some((app, history)) = top.app_history() else {
        frame.render_widget(Block::bordered().title(" cpu "), cpu);
        frame.render_widget(Block::bordered().title(" memory "), memory);
        return;
    };
    // The newest sample at the right edge: as many as fit inside the borders.
    let fit = usize::from(cpu.width.saturating_sub(2));
    let tenths: Vec<u64> = tail(&history.cpu, fit)
        .map(|p| (p * 10.0).round() as u64)
        .collect();
    let now = history.cpu.back().copied().unwrap_or(0.0);
    let peak = history.cpu.iter().copied().fold(0.0, f64::max);
    // At least 10% full scale, so that idle noise does not fill the graph.
    let scale = tenths.iter().copied().max().unwrap_or(0).max(100);
    frame.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(format!(
                " {app} cpu {} (peak {}) ",
                human_percent(now),
                human_percent(peak)
            )))
            .data(tenths)
            .max(scale)
            .style(Color::Cyan),
        cpu,
    );
    let fit = usize::from(memory.width.saturating_sub(2));
    let bytes: Vec<u64> = tail(&history.memory, fit).collect();
    let now = history.memory.back().copied().unwrap_or(0);
    let peak = history.memory.iter().copied().max().unwrap_or(0);
    frame.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(format!(
                " {app} memory {} (peak {}) ",
                human_bytes(now),
                human_bytes(peak)
            )))
            .max(bytes.iter().copied().max().unwrap_or(0).max(1))
            .data(bytes)
            .style(Color::Magenta),
        memory,
    );
}

/// The last `n` values of a history.
fn tail<T: Copy>(values: &std::collections::VecDeque<T>, n: usize) -> impl Iterator<Item = T> + '_ {
    values.iter().copied().skip(values.len().saturating_sub(n))
}

fn draw_logs(frame: &mut Frame, area: Rect, top: &Top) {
    let title = match top.log_target() {
        Some(t) => format!(" {t} last lines "),
        None => " last lines ".into(),
    };
    let fit = usize::from(area.height.saturating_sub(2));
    let lines: Vec<Line> = top.logs[top.logs.len().saturating_sub(fit)..]
        .iter()
        .map(|l| {
            let style = if l.stream == "stderr" {
                Style::new().fg(Color::Red)
            } else {
                Style::new()
            };
            Line::styled(plain(&l.line), style)
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        area,
    );
}

/// A job's next time, short enough for the column: `next run 11-30 04:00` from
/// RFC 3339 (`supervise status` has it whole).
fn next_run(time: &str) -> String {
    match (time.get(5..10), time.get(11..16)) {
        (Some(day), Some(minute)) => format!("next run {day} {minute}"),
        _ => format!("next run {time}"),
    }
}

/// An app's text as it can be drawn: colour and other escape sequences removed (an
/// app's own colours would show as `[31m`), tabs as spaces, other control characters
/// dropped.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\t' => out.push_str("    "),
            // CSI: ESC [ parameters, then one final byte in @..~.
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: ESC ] ... ended by BEL or ESC \.
            '\x1b' if chars.peek() == Some(&']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            // Any other escape: ESC, intermediate bytes (space../), one final byte.
            '\x1b' => {
                while chars.next_if(|c| (' '..='/').contains(c)).is_some() {}
                chars.next();
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn help_line() -> Line<'static> {
    let mut spans = Vec::new();
    for (key, what) in HELP {
        spans.push(Span::raw(" "));
        spans.push(key.bold().reversed());
        spans.push(Span::raw(format!(" {what} ")));
    }
    Line::from(spans)
}

/// The command under way or the last one's outcome, for the table's bottom border.
fn outcome(top: &Top) -> Line<'static> {
    if let Some(doing) = &top.pending {
        Line::styled(format!(" {doing}… "), Color::Yellow)
    } else if let Some((text, failed)) = &top.outcome {
        let colour = if *failed { Color::Red } else { Color::Green };
        Line::styled(format!(" {text} "), colour)
    } else {
        Line::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::{LogLine, StatusReport};
    use crate::top::model::{Action, Sample};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn screen(top: &Top, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| draw(f, top)).unwrap();
        let buffer = terminal.backend().buffer();
        let mut text = String::new();
        for y in 0..height {
            for x in 0..width {
                text.push_str(buffer[(x, y)].symbol());
            }
            text.push('\n');
        }
        text
    }

    fn sample() -> Sample {
        let web = |index: u32, cpu: f64| InstanceStatus {
            app: "web".into(),
            index,
            pid: Some(1000 + index as i32),
            state: "running".into(),
            restarts: index,
            uptime_ms: Some(65_000),
            cpu_percent: Some(cpu),
            memory_bytes: Some(3 << 20),
            ready: true,
            ..Default::default()
        };
        Sample {
            report: StatusReport {
                config: "/srv/eco.toml".into(),
                config_error: None,
                instances: vec![
                    web(0, 1.5),
                    web(1, 2.5),
                    InstanceStatus {
                        app: "worker".into(),
                        state: "backoff".into(),
                        last_exit: Some("code 3".into()),
                        ..Default::default()
                    },
                    InstanceStatus {
                        app: "cron".into(),
                        state: "exited".into(),
                        last_exit: Some("code 0".into()),
                        next_run: Some("2026-11-30T04:00:00+01:00".into()),
                        ..Default::default()
                    },
                ],
            },
            logs: Some((
                crate::control::protocol::Target::parse("web.0").unwrap(),
                vec![LogLine {
                    app: "web".into(),
                    stream: "stdout".into(),
                    line: "listening on :3000".into(),
                    ..Default::default()
                }],
            )),
            tick: true,
        }
    }

    #[test]
    fn the_screen_shows_rows_graphs_logs_and_help() {
        let mut top = Top::default();
        let text = screen(&top, 100, 30);
        assert!(text.contains("connecting…"), "{text}");
        top.apply(sample());
        top.apply(sample());
        let text = screen(&top, 100, 30);
        for want in [
            "supervise top",
            "/srv/eco.toml",
            "3 apps, 4 instances",
            "NAME",
            "RESTARTS",
            "> web.0",
            "1000",
            "running",
            "1m",
            "1.5%",
            "3.0 MiB",
            "worker.0",
            "backoff",
            "last exit: code 3",
            "next run 11-30 04:00",
            "web cpu 4.0% (peak 4.0%)",
            "web memory 6.0 MiB",
            "web.0 last lines",
            "listening on :3000",
            "r restart",
            "q quit",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert_eq!(text.lines().count(), 30);
    }

    #[test]
    fn app_text_is_drawn_plain() {
        assert_eq!(
            plain("\x1b[1;31mERROR\x1b[0m\tdisk full"),
            "ERROR    disk full"
        );
        assert_eq!(
            plain("\x1b]0;title\x07after \x1b]8;;u\x1b\\link"),
            "after link"
        );
        assert_eq!(plain("a\x1b(Bb\rc\x1b"), "abc");
        assert_eq!(plain("naïve ✓"), "naïve ✓");
        assert_eq!(plain("\x1b["), "");
    }

    #[test]
    fn outcomes_errors_and_small_screens() {
        let mut top = Top::default();
        top.apply(sample());
        top.act(Action::Restart);
        assert!(screen(&top, 100, 30).contains("restarting web.0…"));
        top.command_done(Err("timed out".into()));
        assert!(screen(&top, 100, 30).contains("restarting web.0 failed: timed out"));
        top.sample_failed("no supervise is running on /x.sock".into());
        assert!(screen(&top, 100, 30).contains("no supervise is running"));
        // Tiny terminals draw what fits, without a panic.
        for (w, h) in [(20, 5), (1, 1), (100, 8), (40, 12)] {
            screen(&top, w, h);
        }
    }
}
