//! What `supervise check` prints for a valid file.

use std::fmt::Write as _;

use super::model::{Ecosystem, RestartPolicy};
use super::units::format_duration;

/// One block per app: instances, command line (shell-quoted), cwd, restart policy and
/// dependencies.
pub fn describe(eco: &Ecosystem) -> String {
    let total: u64 = eco.apps.iter().map(|a| u64::from(a.instances)).sum();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} app{}, {} instance{}",
        eco.path.display(),
        eco.apps.len(),
        if eco.apps.len() == 1 { "" } else { "s" },
        total,
        if total == 1 { "" } else { "s" },
    );
    for app in &eco.apps {
        let count = if app.instances_max {
            format!("{} (max)", app.instances)
        } else {
            app.instances.to_string()
        };
        let _ = writeln!(
            out,
            "\n{}: {} instance{}",
            app.name,
            count,
            if app.instances == 1 { "" } else { "s" }
        );
        let _ = writeln!(
            out,
            "  command:    {}",
            shell_words::join(&app.command.argv)
        );
        if app.command.argv.first().map(String::as_str) != app.command.program.to_str() {
            let _ = writeln!(out, "  program:    {}", app.command.program.display());
        }
        let _ = writeln!(out, "  cwd:        {}", app.cwd.display());
        let policy = match app.restart {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        };
        let give_up = if app.max_restarts == 0 {
            "never gives up".to_string()
        } else {
            format!("gives up after {} crashes", app.max_restarts)
        };
        if app.restart == RestartPolicy::Never {
            let _ = writeln!(out, "  restart:    never");
        } else {
            let _ = writeln!(
                out,
                "  restart:    {policy} (delay {} doubling to {}, min uptime {}, {give_up})",
                format_duration(app.restart_delay),
                format_duration(app.backoff_max),
                format_duration(app.min_uptime),
            );
        }
        let _ = writeln!(
            out,
            "  stop:       {} then SIGKILL after {}",
            app.stop_signal,
            format_duration(app.stop_timeout)
        );
        if let Some(port) = app.port {
            let last = u32::from(port) + app.instances.max(1) - 1;
            let _ = writeln!(
                out,
                "  port:       {port} + instance ({port}-{last}), as PORT"
            );
        }
        if !app.env.is_empty() {
            let keys: Vec<&str> = app.env.keys().map(String::as_str).collect();
            let _ = writeln!(out, "  env:        {}", keys.join(", "));
        }
        if !app.depends_on.is_empty() {
            let deps: Vec<String> = app
                .depends_on
                .iter()
                .map(|d| match d.condition {
                    crate::config::Condition::Ready => d.app.clone(),
                    other => format!("{} ({})", d.app, other.as_str()),
                })
                .collect();
            let _ = writeln!(out, "  depends_on: {}", deps.join(", "));
        }
    }
    out
}
