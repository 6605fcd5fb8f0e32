//! The control socket's requests, served by the loop: status from the observed state,
//! logs from the ring, and commands that change the desired state (holds) or the facts
//! (a stop, a reset, an outdated generation) and are answered once their effect is
//! seen: every command replies when done, or with the failure.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::Token;

use super::Runtime;
use crate::config::units::format_duration;
use crate::control::protocol::{
    InstanceStatus, LogLine, Request, Response, SignalName, StatusReport, Target,
};
use crate::control::server::{ClientId, ControlServer, ServerEvent};
use crate::os;
use crate::plan::{self, Plan};
use crate::state::{Done, ExitStatus, Instance, InstanceId, Who};

/// Extra time a command may take beyond its instances' stop and ready timeouts.
const COMMAND_SLACK: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Running (and ready) with a run that began after the request.
    Fresh,
    /// Running and ready, whenever it started.
    Up,
    /// Nothing of it left.
    Down,
}

struct Pending {
    client: ClientId,
    verb: &'static str,
    targets: Vec<InstanceId>,
    since: Instant,
    deadline: Instant,
    want: Want,
}

#[derive(Default)]
pub(super) struct Control {
    pub(super) server: Option<ControlServer>,
    pub(super) followers: Vec<(ClientId, Target)>,
    pending: Vec<Pending>,
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

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.deadline).min()
    }
}

pub(super) fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn state_name(inst: &Instance, ready: bool, held: bool) -> &'static str {
    // Being stopped, leftovers of its group, or the app said STOPPING=1 itself.
    if inst.alive() && (inst.stop.is_some() || inst.pid.is_none() || inst.notify_stopping) {
        return "stopping";
    }
    if inst.pid.is_some() {
        return if ready { "running" } else { "starting" };
    }
    match inst.done {
        Some(Done::Errored) => "errored",
        Some(Done::Finished(_)) => "exited",
        None if held => "stopped",
        None if inst.restart_at.is_some() => "backoff",
        None if inst.stop.is_some() => "stopped",
        None => "starting",
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
                    self.control.pending.retain(|p| p.client != client);
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
        let verb = request.name();
        let now = Instant::now();
        let (ids, want) = match request {
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
            Request::Restart { ref target }
            | Request::Reload { ref target }
            | Request::Stop { ref target }
            | Request::Start { ref target } => match self.resolve(target) {
                Ok(ids) => {
                    let want = match request {
                        Request::Stop { .. } => Want::Down,
                        Request::Start { .. } => Want::Up,
                        _ => Want::Fresh,
                    };
                    (ids, want)
                }
                Err(e) => {
                    self.reply(client, Response::error(e));
                    return;
                }
            },
        };
        for id in &ids {
            match verb {
                "stop" => {
                    self.desired.holds.insert(id.clone());
                }
                "start" => {
                    self.desired.holds.remove(id);
                    if self.observed.instances.get(id).is_some_and(|i| !i.alive()) {
                        self.observed.reset(id);
                    }
                }
                "restart" | "reload" => {
                    self.desired.holds.remove(id);
                    let alive = self
                        .observed
                        .instances
                        .get(id)
                        .is_some_and(|i| i.pid.is_some());
                    if !alive {
                        self.observed.reset(id);
                    } else if verb == "reload" {
                        self.observed.invalidate(id);
                    } else {
                        self.output
                            .event(&format!("{id} restarting (asked by supervise restart)"));
                        self.stop(&Who::Slot(id.clone()));
                    }
                }
                _ => {}
            }
        }
        let patience = ids
            .iter()
            .filter_map(|id| self.desired.app(&id.app))
            .map(|a| a.stop_timeout + a.ready_timeout)
            .max()
            .unwrap_or_default();
        self.control.pending.push(Pending {
            client,
            verb,
            targets: ids,
            since: now,
            deadline: now + patience + COMMAND_SLACK,
            want,
        });
    }

    fn signal_target(&mut self, SignalName(signal): SignalName, target: &Target) -> Response {
        let ids = match self.resolve(target) {
            Ok(ids) => ids,
            Err(e) => return Response::error(e),
        };
        let mut sent = Vec::new();
        for id in ids {
            if let Some(inst) = self.observed.instances.get(&id).filter(|i| i.pid.is_some()) {
                if let Some(pgid) = inst.pgid {
                    if os::signal_group(pgid, signal).is_ok() {
                        sent.push(format!("{id} (pid {pgid})"));
                    }
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

    /// Answer the commands whose effect is now visible, or whose time ran out.
    pub(super) fn answer_pending(&mut self, now: Instant) {
        if self.control.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.control.pending);
        for p in pending {
            match self.outcome(&p, now) {
                None if now < p.deadline => self.control.pending.push(p),
                None => {
                    let text = format!(
                        "{} {}: not done after {}",
                        p.verb,
                        names(&p.targets),
                        format_duration(p.deadline - p.since)
                    );
                    self.reply(p.client, Response::error(text));
                }
                Some(Ok(text)) => {
                    self.reply(p.client, Response::message(text));
                }
                Some(Err(text)) => {
                    self.reply(p.client, Response::error(text));
                }
            }
        }
    }

    fn outcome(&self, p: &Pending, now: Instant) -> Option<Result<String, String>> {
        let mut scratch = Plan::default();
        for id in &p.targets {
            let inst = self.observed.instances.get(id);
            let spec = self.desired.app(&id.app);
            match p.want {
                Want::Down => {
                    if inst.is_some_and(Instance::alive) {
                        return None;
                    }
                }
                Want::Up | Want::Fresh => {
                    let inst = inst?;
                    if let Some(Done::Errored) = inst.done {
                        return Some(Err(format!("{id} errored")));
                    }
                    if let Some(Done::Finished(status)) = &inst.done {
                        if inst
                            .last_exit
                            .as_ref()
                            .is_some_and(|(_, at)| *at >= p.since)
                        {
                            return Some(Ok(format!("{id} ran and exited with {status}")));
                        }
                    }
                    if let Some(spec) = spec {
                        let generation = self.desired.generation(spec);
                        let rolled_back = self.observed.failed_generation.get(&id.app)
                            == Some(&generation)
                            && inst.generation != generation;
                        if rolled_back {
                            return Some(Err(format!(
                                "{id}: the new instance did not get ready; the old one keeps running"
                            )));
                        }
                    }
                    let fresh = p.want == Want::Up || inst.started_at.is_some_and(|t| t >= p.since);
                    if !(fresh && plan::is_ready(spec, inst, now, &mut scratch)) {
                        return None;
                    }
                }
            }
        }
        let done = match p.verb {
            "stop" => "stopped",
            "start" => "started",
            "restart" => "restarted",
            _ => "reloaded",
        };
        Some(Ok(format!("{} {done}", names(&p.targets))))
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
            .filter_map(|(_, i, _)| i.filter(|i| i.alive()).and_then(|i| i.pgid))
            .collect();
        let usage = os::procfs::groups_usage(&pgids);
        let mut samples = HashMap::new();
        let mut scratch = Plan::default();
        let mut instances = Vec::with_capacity(rows.len());
        for (_, inst, id) in &rows {
            let spec = self.desired.app(&id.app);
            let held = self.desired.holds.contains(id);
            let mut row = InstanceStatus {
                app: id.app.clone(),
                index: id.index,
                state: "starting".into(),
                ..Default::default()
            };
            if held {
                row.state = "stopped".into();
            }
            if let Some(inst) = inst {
                let ready = plan::is_ready(spec, inst, now, &mut scratch);
                row.pid = inst.pid;
                row.state = state_name(inst, ready, held).into();
                row.restarts = inst.restarts;
                row.ready = ready;
                row.status_text = inst.status_text.clone();
                row.last_exit = inst.last_exit.as_ref().map(|(s, _)| exit_text(s));
                if inst.pid.is_some() {
                    row.uptime_ms = inst
                        .started_at
                        .map(|t| now.saturating_duration_since(t).as_millis() as u64);
                }
                if let Some(u) = inst.pgid.and_then(|g| usage.get(&g).map(|u| (g, u))) {
                    let (pgid, u) = u;
                    row.memory_bytes = Some(u.rss_bytes);
                    let prev = self
                        .control
                        .cpu
                        .get(&pgid)
                        .copied()
                        .or_else(|| inst.started_at.map(|t| (Duration::ZERO, t)));
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

fn names(ids: &[InstanceId]) -> String {
    const SHOWN: usize = 8;
    let mut text: Vec<String> = ids.iter().take(SHOWN).map(ToString::to_string).collect();
    if ids.len() > SHOWN {
        text.push(format!("and {} more", ids.len() - SHOWN));
    }
    text.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_as_status_shows_them() {
        let now = Instant::now();
        let mut inst = Instance::new(InstanceId::new("web", 0));
        assert_eq!(state_name(&inst, false, false), "starting");
        assert_eq!(state_name(&inst, false, true), "stopped");
        inst.pid = Some(10);
        inst.started_at = Some(now);
        assert_eq!(state_name(&inst, false, false), "starting");
        assert_eq!(state_name(&inst, true, false), "running");
        inst.notify_stopping = true;
        assert_eq!(state_name(&inst, true, false), "stopping", "STOPPING=1");
        inst.notify_stopping = false;
        inst.stop = Some(crate::state::StopRequest {
            at: now,
            killed: false,
        });
        assert_eq!(state_name(&inst, true, false), "stopping");
        inst.pid = None;
        inst.restart_at = Some(now);
        assert_eq!(state_name(&inst, false, false), "backoff");
        inst.restart_at = None;
        assert_eq!(state_name(&inst, false, false), "stopped");
        inst.done = Some(Done::Errored);
        assert_eq!(state_name(&inst, false, false), "errored");
        inst.done = Some(Done::Finished(ExitStatus::Code(0)));
        assert_eq!(state_name(&inst, false, false), "exited");
    }
}
