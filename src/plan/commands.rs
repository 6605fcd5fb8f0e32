//! When a control command is done: `stop` when nothing of its instances is left,
//! `start` when they run and are ready, `restart` and `reload` when they run a run that
//! began after the command and are ready. A command that cannot succeed (an instance
//! that crashed since the command, an errored instance, a rolled-back update) is
//! answered with the failure at once; one that
//! takes longer than its instances' stop and ready timeouts is answered as not done.

use std::time::{Duration, Instant};

use super::{is_ready, Action, Desired, Plan};
use crate::config::units::format_duration;
use crate::state::{Command, Instance, InstanceId, Next, Observed, Verb};

/// Extra time a command may take beyond its instances' stop and ready timeouts.
pub const COMMAND_SLACK: Duration = Duration::from_secs(10);

/// The latest time to answer a command on these instances received at `now`.
pub fn deadline(desired: &Desired, targets: &[InstanceId], now: Instant) -> Instant {
    let patience = targets
        .iter()
        .filter_map(|id| desired.app(&id.app))
        .map(|a| a.stop_timeout + a.ready_timeout)
        .max()
        .unwrap_or_default();
    now + patience + COMMAND_SLACK
}

pub(super) fn plan_commands(desired: &Desired, observed: &Observed, now: Instant, plan: &mut Plan) {
    for command in &observed.commands {
        let result = match verdict(desired, observed, command, now, plan) {
            Some(result) => result,
            None if now < command.deadline => {
                plan.wake(command.deadline);
                continue;
            }
            None => Err(format!(
                "{} {}: not done after {}",
                command.verb.as_str(),
                names(&command.targets),
                format_duration(command.deadline - command.since)
            )),
        };
        plan.actions.push(Action::Answer {
            ticket: command.ticket,
            asker: command.asker,
            result,
        });
    }
}

/// The command's answer once its effect is seen, or `None` while it is under way.
pub fn verdict(
    desired: &Desired,
    observed: &Observed,
    command: &Command,
    now: Instant,
    plan: &mut Plan,
) -> Option<Result<String, String>> {
    for id in &command.targets {
        let inst = observed.instances.get(id);
        let spec = desired.app(&id.app);
        if command.verb == Verb::Stop {
            if inst.is_some_and(Instance::alive) {
                return None;
            }
            continue;
        }
        let inst = inst?;
        // A rolled-back update says so first: its new instance's exit is part of it.
        if let Some(spec) = spec {
            let generation = desired.generation(spec);
            let rolled_back = observed.failed_generation.get(&id.app) == Some(&generation)
                && inst.generation != generation;
            if rolled_back {
                let why = observed
                    .rollback_why
                    .get(&id.app)
                    .map_or("did not get ready", String::as_str);
                return Some(Err(format!(
                    "{id}: the new instance {why}; rolled back, the old one keeps running"
                )));
            }
        }
        match inst.ended().map(|e| &e.next) {
            Some(Next::Errored) => return Some(Err(format!("{id} errored"))),
            Some(Next::Finished(status))
                if inst
                    .last_exit
                    .as_ref()
                    .is_some_and(|(_, at)| *at >= command.since) =>
            {
                return Some(Ok(format!("{id} ran and exited with {status}")));
            }
            // A run of ours crashed since the command (not one we stopped): the command
            // fails with its exit, whatever the policy does next.
            Some(Next::Restart(_)) if command.verb != Verb::Stop => {
                // During a rolling update the old instance still serves: the plan
                // rolls back, and that is the answer.
                let updating = observed
                    .outgoing
                    .values()
                    .any(|o| &o.id == id && o.alive() && o.stop().is_none());
                let crashed = inst.ended().is_some_and(|e| e.stop.is_none()) && !updating;
                if let Some((status, at)) = &inst.last_exit {
                    if crashed && *at >= command.since {
                        return Some(Err(format!("{id} exited with {status}")));
                    }
                }
            }
            _ => {}
        }
        let fresh =
            command.verb == Verb::Start || inst.started_at().is_some_and(|t| t >= command.since);
        if !(fresh && is_ready(spec, inst, now, plan)) {
            return None;
        }
    }
    let done = match command.verb {
        Verb::Stop => "stopped",
        Verb::Start => "started",
        Verb::Restart => "restarted",
        Verb::Reload => "reloaded",
    };
    Some(Ok(format!("{} {done}", names(&command.targets))))
}

/// Instance names for a reply, the first few.
pub fn names(ids: &[InstanceId]) -> String {
    const SHOWN: usize = 8;
    let mut text: Vec<String> = ids.iter().take(SHOWN).map(ToString::to_string).collect();
    if ids.len() > SHOWN {
        text.push(format!("and {} more", ids.len() - SHOWN));
    }
    text.join(", ")
}
