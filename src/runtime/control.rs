//! The control socket's requests, served by the loop: status from the observed state,
//! logs from the ring, and commands, which change the desired state (holds) and are
//! recorded as a fact; `plan` says when each is done (or failed), and the answer goes
//! back to the client then.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::Token;

use super::Runtime;
use crate::control::protocol::{LogLine, Request, Response, Target};
use crate::control::server::{ClientId, ControlServer, ServerEvent};
use crate::plan::{commands, preview};
use crate::state::{Command, Fact, InstanceId, Verb};

#[derive(Default)]
pub(super) struct Control {
    pub(super) server: Option<ControlServer>,
    pub(super) followers: Vec<super::follow::Follower>,
    /// Last cpu sample per process group, for cpu %.
    pub(super) cpu: HashMap<i32, (Duration, Instant)>,
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
                    self.control.followers.retain(|f| f.client != client);
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

    pub(super) fn reply(&mut self, client: ClientId, response: Response) -> bool {
        match &mut self.control.server {
            Some(server) => server.reply(self.poll.registry(), client, &response),
            None => false,
        }
    }

    /// The instances a target names in the running config.
    pub(super) fn resolve(&self, target: &Target) -> Result<Vec<InstanceId>, String> {
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
                stream,
            } => {
                self.answer_logs(client, target, lines, follow, stream);
                return;
            }
            Request::Shutdown => {
                self.reply(
                    client,
                    Response::message("stopping every app, then exiting"),
                );
                self.output.event("shutdown asked by `supervise shutdown`");
                self.shutdown(signal_hook::consts::SIGTERM);
                return;
            }
            Request::Reload { target: None } => {
                let response = self.reload_asked();
                self.reply(client, response);
                return;
            }
            Request::Signal { signal, target } => {
                let response = self.signal_target(signal.0, &target);
                self.reply(client, response);
                return;
            }
            Request::Diff { config } => {
                let response = self.diff(config.map(PathBuf::from));
                self.reply(client, response);
                return;
            }
            Request::Restart { ref target }
            | Request::Reload {
                target: Some(ref target),
            }
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

    /// `supervise reload` without a target: the file is re-read now, as on SIGHUP; the
    /// answer says whether it applied.
    fn reload_asked(&mut self) -> Response {
        let path = self.desired.eco.path.display().to_string();
        self.output.event(&format!(
            "reload asked by `supervise reload`: re-reading {path}"
        ));
        self.reload_file(true);
        match &self.observed.config_error {
            Some(e) => Response::error(format!("{path} was not applied: {e}")),
            None => Response::message(format!("re-read {path}")),
        }
    }
}
