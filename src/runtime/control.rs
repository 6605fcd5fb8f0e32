//! The control socket's requests, served by the loop: status from the observed state,
//! logs from the ring, and commands, which change the desired state (holds) and are
//! recorded as a fact; `plan` says when each is done (or failed), and the answer goes
//! back to the client then.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::Token;

use super::Runtime;
use crate::control::protocol::{
    InstanceStatus, LogLine, Request, Response, SignalName, StatusReport, Target,
};
use crate::control::server::{ClientId, ControlServer, ServerEvent};
use crate::os;
use crate::plan::{commands, preview};
use crate::state::{state_of, Command, ExitStatus, Fact, Instance, InstanceId, Verb, Who};

#[derive(Default)]
pub(super) struct Control {
    pub(super) server: Option<ControlServer>,
    pub(super) followers: Vec<(ClientId, Target)>,
    /// Last cpu sample per process group, for cpu %.
    cpu: HashMap<i32, (Duration, Instant)>,
    /// Lines for `logs --follow` clients, filled while pipes are read.
    pub(super) outbox: Vec<LogLine>,
}

impl Control {
    pub(super) fn new(server: ControlServer) -> Control {
        Control {
            server: Some(server),
            ..Default::default()
        }
    }

    pub(super) fn following(&self) -> bool {
        !self.followers.is_empty()
    }
}

fn exit_text(status: &ExitStatus) -> String {
    match status {
        ExitStatus::Signal(s) => s.as_str().to_string(),
        other => other.to_string(),
    }
}

impl Runtime {
    pub(super) fn on_control(&mut self, token: Token, event: &mio::event::Event) {
        let Some(server) = &mut self.control.server else {
            return;
        };
        let events = server.handle(self.poll.registry(), token, event);
        // Departures only: nothing for the plan.
        self.on_server_events(events, Instant::now());
    }

    /// Once per loop turn, after supervision's own work: the clients' requests, within
    /// the server's budget. Every `status` asked in the turn gets the same answer,
    /// computed once. True if a command changed what the plan sees: plan again before
    /// sleeping.
    pub(super) fn serve_control(&mut self, now: Instant) -> bool {
        let Some(server) = &mut self.control.server else {
            return false;
        };
        let events = server.serve(self.poll.registry());
        self.on_server_events(events, now)
    }

    fn on_server_events(&mut self, events: Vec<ServerEvent>, now: Instant) -> bool {
        let mut status_asked = Vec::new();
        let mut acted = false;
        for ev in events {
            match ev {
                ServerEvent::Request(client, Request::Status) => status_asked.push(client),
                ServerEvent::Request(client, request) => {
                    acted = true;
                    self.on_request(client, request);
                }
                ServerEvent::Gone(client) => {
                    self.control.followers.retain(|(c, _)| *c != client);
                    self.record(Fact::ClientGone(client.0));
                }
            }
        }
        if status_asked.is_empty() {
            return acted;
        }
        let line = Response {
            ok: true,
            status: Some(self.status_report(now)),
            ..Default::default()
        }
        .to_line();
        if let Some(server) = &mut self.control.server {
            for client in status_asked {
                server.reply_line(self.poll.registry(), client, &line);
            }
        }
        acted
    }

    /// Whether a control client has more requests waiting for the next turn.
    pub(super) fn control_backlog(&self) -> bool {
        self.control.server.as_ref().is_some_and(|s| s.backlog())
    }

    /// The plan's answer to a command.
    pub(super) fn answer(&mut self, asker: usize, result: Result<String, String>) {
        let response = match result {
            Ok(text) => Response::message(text),
            Err(text) => Response::error(text),
        };
        self.reply(Token(asker), response);
    }

    fn reply(&mut self, client: ClientId, response: Response) -> bool {
        match &mut self.control.server {
            Some(server) => server.reply(self.poll.registry(), client, &response),
            None => false,
        }
    }

    /// The instances a target names in the running config.
    fn resolve(&self, target: &Target) -> Result<Vec<InstanceId>, String> {
        let apps = &self.desired.eco.apps;
        let ids: Vec<InstanceId> = match target {
            Target::All => apps
                .iter()
                .flat_map(|a| (0..a.instances).map(|i| InstanceId::new(&a.name, i)))
                .collect(),
            Target::App(name) => {
                let app = self
                    .desired
                    .app(name)
                    .ok_or_else(|| format!("no app named `{name}`"))?;
                (0..app.instances)
                    .map(|i| InstanceId::new(name, i))
                    .collect()
            }
            Target::Instance(name, index) => {
                let app = self
                    .desired
                    .app(name)
                    .ok_or_else(|| format!("no app named `{name}`"))?;
                if *index >= app.instances {
                    return Err(format!(
                        "no instance {name}.{index} ({name} has {} instance(s))",
                        app.instances
                    ));
                }
                vec![InstanceId::new(name, *index)]
            }
        };
        if ids.is_empty() {
            return Err(format!("{target} has no instances"));
        }
        Ok(ids)
    }

    fn on_request(&mut self, client: ClientId, request: Request) {
        let now = Instant::now();
        let (ids, verb) = match request {
            // Answered together, by `on_server_events`.
            Request::Status => return,
            Request::Logs {
                target,
                lines,
                follow,
            } => {
                let lines = self
                    .ring
                    .last(|app, index| target.matches(app, index), lines)
                    .into_iter()
                    .map(super::sinks::log_line)
                    .collect();
                let answered = self.reply(
                    client,
                    Response {
                        ok: true,
                        lines,
                        ..Default::default()
                    },
                );
                if follow && answered {
                    self.control.followers.push((client, target));
                }
                return;
            }
            Request::Signal { signal, target } => {
                let response = self.signal_target(signal, &target);
                self.reply(client, response);
                return;
            }
            Request::Diff { config } => {
                let response = self.diff(config.map(PathBuf::from));
                self.reply(client, response);
                return;
            }
            Request::Restart { ref target }
            | Request::Reload { ref target }
            | Request::Stop { ref target }
            | Request::Start { ref target } => match self.resolve(target) {
                Ok(ids) => {
                    let verb = match request {
                        Request::Stop { .. } => Verb::Stop,
                        Request::Start { .. } => Verb::Start,
                        Request::Restart { .. } => Verb::Restart,
                        _ => Verb::Reload,
                    };
                    (ids, verb)
                }
                Err(e) => {
                    self.reply(client, Response::error(e));
                    return;
                }
            },
        };
        for id in &ids {
            if verb == Verb::Stop {
                self.desired.holds.insert(id.clone());
            } else {
                self.desired.holds.remove(id);
            }
        }
        let command = Command {
            ticket: 0,
            asker: client.0,
            verb,
            deadline: commands::deadline(&self.desired, &ids, now),
            targets: ids,
            since: now,
        };
        self.record(Fact::Command(command));
    }

    /// `supervise diff`: what applying `path` (default: the running file as it is on
    /// disk now) would change, from the plan's own diff; nothing is applied.
    fn diff(&self, path: Option<PathBuf>) -> Response {
        let path = path.unwrap_or_else(|| self.desired.eco.path.clone());
        match self.read_version(&path) {
            Ok(eco) => Response {
                ok: true,
                diff: preview::preview(&self.desired.eco, &eco),
                ..Default::default()
            },
            Err(errors) => Response::error(errors.to_string()),
        }
    }

    fn signal_target(&mut self, SignalName(signal): SignalName, target: &Target) -> Response {
        let ids = match self.resolve(target) {
            Ok(ids) => ids,
            Err(e) => return Response::error(e),
        };
        let mut sent = Vec::new();
        for id in ids {
            if let Some(pgid) = self.observed.instances.get(&id).and_then(Instance::pid) {
                if os::signal_group(pgid, signal).is_ok() {
                    sent.push(format!("{id} (pid {pgid})"));
                }
            }
        }
        if sent.is_empty() {
            return Response::error(format!("{target}: nothing is running to signal"));
        }
        self.output
            .event(&format!("sent {} to {}", signal.as_str(), sent.join(", ")));
        Response::message(format!("sent {} to {}", signal.as_str(), sent.join(", ")))
    }

    /// Send what `logs --follow` clients asked for.
    pub(super) fn flush_followers(&mut self) {
        if self.control.outbox.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut self.control.outbox);
        let Some(server) = &mut self.control.server else {
            return;
        };
        let registry = self.poll.registry();
        self.control.followers.retain(|(client, target)| {
            lines
                .iter()
                .filter(|l| target.matches(&l.app, l.index))
                .all(|l| server.send_line(registry, *client, l))
        });
    }

    fn status_report(&mut self, now: Instant) -> StatusReport {
        let mut rows: Vec<(Who, Option<&Instance>, InstanceId)> = Vec::new();
        for app in &self.desired.eco.apps {
            for index in 0..app.instances {
                let id = InstanceId::new(&app.name, index);
                rows.push((Who::Slot(id.clone()), self.observed.instances.get(&id), id));
            }
        }
        // Instances on their way out: scaled down, removed, or replaced.
        for (who, inst) in self.observed.all() {
            let wanted = matches!(who, Who::Slot(_))
                && self
                    .desired
                    .app(&inst.id.app)
                    .is_some_and(|a| inst.id.index < a.instances);
            if !wanted && inst.alive() {
                rows.push((who, Some(inst), inst.id.clone()));
            }
        }
        let pgids: Vec<i32> = rows
            .iter()
            .filter_map(|(_, i, _)| i.and_then(Instance::group))
            .collect();
        let usage = os::procfs::groups_usage(&pgids);
        let mut samples = HashMap::new();
        let mut instances = Vec::with_capacity(rows.len());
        for (_, inst, id) in &rows {
            let ready_kind = self.desired.app(&id.app).map(|a| &a.ready);
            let held = self.desired.holds.contains(id);
            let mut row = InstanceStatus {
                app: id.app.clone(),
                index: id.index,
                state: state_of(*inst, ready_kind, held, now).as_str().into(),
                next_run: self.observed.schedules.get(&id.app).and_then(|a| {
                    let wall = chrono::DateTime::<chrono::Local>::from(a.wall?);
                    Some(wall.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
                }),
                ..Default::default()
            };
            // A job's instance waits for its time: stopped until its first run.
            if inst.is_none()
                && self
                    .desired
                    .app(&id.app)
                    .is_some_and(|a| a.schedule.is_some())
            {
                row.state = "stopped".into();
            }
            if let Some(inst) = inst {
                row.pid = inst.pid();
                row.restarts = inst.restarts();
                row.ready = inst.is_ready(ready_kind, now);
                row.status_text = inst.status_text.clone();
                row.last_exit = inst.last_exit.as_ref().map(|(s, _)| exit_text(s));
                row.uptime_ms = inst
                    .started_at()
                    .map(|t| now.saturating_duration_since(t).as_millis() as u64);
                if let Some(u) = inst.group().and_then(|g| usage.get(&g).map(|u| (g, u))) {
                    let (pgid, u) = u;
                    row.memory_bytes = Some(u.rss_bytes);
                    let prev = self
                        .control
                        .cpu
                        .get(&pgid)
                        .copied()
                        .or_else(|| inst.started_at().map(|t| (Duration::ZERO, t)));
                    row.cpu_percent = prev.map(|p| os::procfs::cpu_percent(p, (u.cpu, now)));
                    samples.insert(pgid, (u.cpu, now));
                }
            }
            instances.push(row);
        }
        self.control.cpu = samples;
        StatusReport {
            config: self.desired.eco.path.display().to_string(),
            config_error: self.observed.config_error.clone(),
            instances,
        }
    }
}
