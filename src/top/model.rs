//! What `supervise top` shows, as plain data: the last status report, the selected
//! instance, the cpu and memory history of each app, the selected instance's last log
//! lines and the outcome of the last command. Pure: the samples come in as values, the
//! commands go out as [`Request`]s, so all of it is tested without a terminal.

use std::collections::{BTreeMap, VecDeque};

use crate::control::protocol::{InstanceStatus, LogLine, Request, StatusReport, Target};

/// How many samples of history each app keeps (one a second: ten minutes), more than
/// any terminal is wide.
pub const HISTORY: usize = 600;

/// One sample of the running supervisor, taken by the sampler thread.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub report: StatusReport,
    /// The target the log lines are of (`web.0`), and the lines.
    pub logs: Option<(Target, Vec<LogLine>)>,
    /// A periodic sample: it counts in the history (the others answer a key at once).
    pub tick: bool,
}

/// An app's history: the sum over its instances of cpu % and of memory bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub cpu: VecDeque<f64>,
    pub memory: VecDeque<u64>,
}

impl History {
    fn push(&mut self, cpu: f64, memory: u64) {
        if self.cpu.len() == HISTORY {
            self.cpu.pop_front();
            self.memory.pop_front();
        }
        self.cpu.push_back(cpu);
        self.memory.push_back(memory);
    }
}

/// What a key asks for (see [`super::input`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    First,
    Last,
    /// Restart the selected instance.
    Restart,
    /// Restart every instance of the selected app.
    RestartApp,
    /// Rolling reload of the selected app.
    ReloadApp,
    /// Stop the selected instance, or start it when it is not running.
    StopStart,
    Quit,
}

/// The whole state of the view.
#[derive(Debug, Default)]
pub struct Top {
    pub report: StatusReport,
    /// Index into `report.instances`; meaningless when there are none.
    pub selected: usize,
    /// The selected instance by name, so that it stays selected when the list changes.
    selected_name: Option<(String, u32)>,
    pub history: BTreeMap<String, History>,
    /// The selected instance's last lines (empty until a sample brings them).
    pub logs: Vec<LogLine>,
    /// Why the last sample failed (supervise stopped, or does not answer).
    pub sample_error: Option<String>,
    /// The command under way (`restarting web.0`), one at a time.
    pub pending: Option<String>,
    /// The last command's outcome: the text, and whether it failed.
    pub outcome: Option<(String, bool)>,
    /// How many samples arrived (0: nothing to show yet).
    pub samples: u64,
}

impl Top {
    /// Take a new sample in: keep the selection on the same instance, record the history.
    pub fn apply(&mut self, sample: Sample) {
        self.samples += 1;
        self.sample_error = None;
        if sample.tick {
            self.record(&sample.report);
        }
        self.report = sample.report;
        self.reselect();
        // Lines of another instance (the selection moved since the request) wait for the
        // next sample rather than show under the wrong name.
        match sample.logs {
            Some((target, lines)) if Some(&target) == self.log_target().as_ref() => {
                self.logs = lines
            }
            _ => {}
        }
    }

    fn record(&mut self, report: &StatusReport) {
        let mut sums: BTreeMap<String, (f64, u64)> = BTreeMap::new();
        for i in &report.instances {
            let s = sums.entry(i.app.clone()).or_default();
            s.0 += i.cpu_percent.unwrap_or(0.0);
            s.1 += i.memory_bytes.unwrap_or(0);
        }
        self.history.retain(|app, _| sums.contains_key(app));
        for (app, (cpu, memory)) in sums {
            self.history.entry(app).or_default().push(cpu, memory);
        }
    }

    /// The sample failed: keep what is shown, say why.
    pub fn sample_failed(&mut self, why: String) {
        self.sample_error = Some(why);
    }

    fn reselect(&mut self) {
        let found = self.selected_name.as_ref().and_then(|(app, index)| {
            self.report
                .instances
                .iter()
                .position(|i| &i.app == app && i.index == *index)
        });
        let last = self.report.instances.len().saturating_sub(1);
        self.select(found.unwrap_or(self.selected.min(last)));
    }

    fn select(&mut self, index: usize) {
        let before = self.log_target();
        self.selected = index;
        self.selected_name = self.instance().map(|i| (i.app.clone(), i.index));
        if self.log_target() != before {
            self.logs.clear();
        }
    }

    /// The selected instance, if there is any instance.
    pub fn instance(&self) -> Option<&InstanceStatus> {
        self.report.instances.get(self.selected)
    }

    /// The selected instance's name, `web.0`: what the log lines are requested for.
    pub fn log_target(&self) -> Option<Target> {
        self.instance()
            .map(|i| Target::Instance(i.app.clone(), i.index))
    }

    /// The selected app's history.
    pub fn app_history(&self) -> Option<(&str, &History)> {
        let app = &self.instance()?.app;
        self.history.get(app).map(|h| (app.as_str(), h))
    }

    /// Apply a movement; for a command, the request to send and what to show meanwhile
    /// (None when there is nothing to act on or a command is already under way).
    pub fn act(&mut self, action: Action) -> Option<(Request, String)> {
        let last = self.report.instances.len().saturating_sub(1);
        match action {
            Action::Up => self.select(self.selected.saturating_sub(1)),
            Action::Down => self.select((self.selected + 1).min(last)),
            Action::First => self.select(0),
            Action::Last => self.select(last),
            Action::Quit => {}
            Action::Restart | Action::RestartApp | Action::ReloadApp | Action::StopStart => {
                let command = self.command(action)?;
                if let Some(busy) = &self.pending {
                    self.outcome = Some((format!("wait: still {busy}"), true));
                    return None;
                }
                self.pending = Some(command.1.clone());
                self.outcome = None;
                return Some(command);
            }
        }
        None
    }

    fn command(&self, action: Action) -> Option<(Request, String)> {
        let i = self.instance()?;
        let one = Target::Instance(i.app.clone(), i.index);
        let app = Target::App(i.app.clone());
        Some(match action {
            Action::Restart => (
                Request::Restart {
                    target: one.clone(),
                },
                format!("restarting {one}"),
            ),
            Action::RestartApp => (
                Request::Restart {
                    target: app.clone(),
                },
                format!("restarting {app}"),
            ),
            Action::ReloadApp => (
                Request::Reload {
                    target: Some(app.clone()),
                },
                format!("reloading {app}"),
            ),
            Action::StopStart if held(&i.state) => (
                Request::Start {
                    target: one.clone(),
                },
                format!("starting {one}"),
            ),
            Action::StopStart => (
                Request::Stop {
                    target: one.clone(),
                },
                format!("stopping {one}"),
            ),
            _ => return None,
        })
    }

    /// The command finished: its message, or why it failed.
    pub fn command_done(&mut self, result: Result<String, String>) {
        let pending = self.pending.take().unwrap_or_default();
        self.outcome = Some(match result {
            Ok(message) if message.is_empty() => (format!("done: {pending}"), false),
            Ok(message) => (message, false),
            Err(why) => (format!("{pending} failed: {why}"), true),
        });
    }
}

/// The states in which `s` starts rather than stops.
fn held(state: &str) -> bool {
    matches!(state, "stopped" | "exited" | "errored")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(app: &str, index: u32, state: &str, cpu: f64, memory: u64) -> InstanceStatus {
        InstanceStatus {
            app: app.into(),
            index,
            state: state.into(),
            cpu_percent: Some(cpu),
            memory_bytes: Some(memory),
            ..Default::default()
        }
    }

    fn sample(instances: Vec<InstanceStatus>) -> Sample {
        Sample {
            report: StatusReport {
                config: "eco.toml".into(),
                config_error: None,
                instances,
            },
            logs: None,
            tick: true,
        }
    }

    fn t(name: &str) -> Target {
        Target::parse(name).unwrap()
    }

    /// The selected instance's name.
    fn shown(top: &Top) -> Option<String> {
        top.log_target().map(|t| t.to_string())
    }

    fn three() -> Sample {
        sample(vec![
            inst("web", 0, "running", 1.0, 100),
            inst("web", 1, "running", 2.0, 200),
            inst("worker", 0, "stopped", 0.0, 0),
        ])
    }

    #[test]
    fn history_sums_each_app_and_forgets_removed_apps() {
        let mut top = Top::default();
        top.apply(three());
        top.apply(three());
        assert_eq!(top.history["web"].cpu, [3.0, 3.0]);
        assert_eq!(top.history["web"].memory, [300, 300]);
        let mut not_a_tick = three();
        not_a_tick.tick = false;
        top.apply(not_a_tick);
        assert_eq!(top.history["web"].cpu, [3.0, 3.0], "only ticks count");
        assert_eq!(top.history["worker"].cpu, [0.0, 0.0]);
        top.apply(sample(vec![inst("web", 0, "running", 5.0, 50)]));
        assert_eq!(top.history["web"].cpu, [3.0, 3.0, 5.0]);
        assert!(!top.history.contains_key("worker"));
        for _ in 0..HISTORY + 5 {
            top.apply(three());
        }
        assert_eq!(top.history["web"].cpu.len(), HISTORY);
        assert_eq!(top.history["web"].memory.len(), HISTORY);
    }

    #[test]
    fn moving_is_bounded_and_selection_follows_the_instance() {
        let mut top = Top::default();
        assert_eq!(top.act(Action::Down), None);
        assert_eq!(top.act(Action::Restart), None, "nothing to restart");
        top.apply(three());
        assert_eq!(shown(&top).as_deref(), Some("web.0"));
        top.act(Action::Up);
        assert_eq!(top.selected, 0);
        top.act(Action::Down);
        top.act(Action::Down);
        top.act(Action::Down);
        assert_eq!(shown(&top).as_deref(), Some("worker.0"));
        top.act(Action::First);
        top.act(Action::Down);
        assert_eq!(shown(&top).as_deref(), Some("web.1"));
        // web.0 went away: web.1 is still the one selected, now first.
        top.apply(sample(vec![
            inst("web", 1, "running", 2.0, 200),
            inst("worker", 0, "stopped", 0.0, 0),
        ]));
        assert_eq!(
            (top.selected, shown(&top).unwrap()),
            (0, "web.1".to_string())
        );
        // The selected instance went away: the selection stays in range.
        top.act(Action::Last);
        top.apply(sample(vec![inst("web", 1, "running", 2.0, 200)]));
        assert_eq!(shown(&top).as_deref(), Some("web.1"));
        top.apply(sample(vec![]));
        assert_eq!(shown(&top), None);
    }

    #[test]
    fn logs_are_kept_only_for_the_selected_instance() {
        let mut top = Top::default();
        let line = |text: &str| LogLine {
            app: "web".into(),
            line: text.into(),
            ..Default::default()
        };
        let mut s = three();
        s.logs = Some((t("web.0"), vec![line("hello")]));
        top.apply(s);
        assert_eq!(top.logs.len(), 1);
        top.act(Action::Down);
        assert!(top.logs.is_empty(), "web.0's lines are not web.1's");
        let mut s = three();
        s.logs = Some((t("web.0"), vec![line("late")]));
        top.apply(s);
        assert!(
            top.logs.is_empty(),
            "an answer for the old selection is dropped"
        );
    }

    #[test]
    fn commands_name_the_selection_one_at_a_time() {
        let mut top = Top::default();
        top.apply(three());
        let (req, doing) = top.act(Action::Restart).unwrap();
        assert_eq!(req, Request::Restart { target: t("web.0") });
        assert_eq!(doing, "restarting web.0");
        assert_eq!(top.act(Action::ReloadApp), None, "one command at a time");
        assert_eq!(
            top.outcome,
            Some(("wait: still restarting web.0".into(), true))
        );
        top.command_done(Ok("restarted web.0".into()));
        assert_eq!(top.pending, None);
        assert_eq!(top.outcome, Some(("restarted web.0".into(), false)));

        let (req, _) = top.act(Action::ReloadApp).unwrap();
        assert_eq!(
            req,
            Request::Reload {
                target: Some(t("web"))
            }
        );
        top.command_done(Err("no app `web`".into()));
        assert_eq!(
            top.outcome,
            Some(("reloading web failed: no app `web`".into(), true))
        );
        let (req, _) = top.act(Action::RestartApp).unwrap();
        assert_eq!(req, Request::Restart { target: t("web") });
        top.command_done(Ok(String::new()));
        assert_eq!(top.outcome, Some(("done: restarting web".into(), false)));

        let (req, _) = top.act(Action::StopStart).unwrap();
        assert_eq!(req, Request::Stop { target: t("web.0") });
        top.command_done(Ok(String::new()));
        top.act(Action::Last);
        let (req, doing) = top.act(Action::StopStart).unwrap();
        assert_eq!(
            req,
            Request::Start {
                target: t("worker.0")
            }
        );
        assert_eq!(doing, "starting worker.0");
    }
}
