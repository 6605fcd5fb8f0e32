//! Integration tests: the real `supervise` binary on temporary ecosystem files, with real
//! `supervise-testapp` children. One test binary (one link, shared helpers), as ripgrep
//! does; the modules live in `tests/it/` so Cargo does not build each as its own binary.

mod support;

#[path = "it/check.rs"]
mod check;
#[path = "it/cli.rs"]
mod cli;
#[path = "it/cluster.rs"]
mod cluster;
#[path = "it/control.rs"]
mod control;
#[path = "it/control_pressure.rs"]
mod control_pressure;
#[path = "it/control_pressure_fds.rs"]
mod control_pressure_fds;
#[path = "it/depends.rs"]
mod depends;
#[path = "it/diff.rs"]
mod diff;
#[path = "it/docs.rs"]
mod docs;
#[path = "it/drain.rs"]
mod drain;
#[path = "it/examples.rs"]
mod examples;
#[path = "it/fuzz.rs"]
mod fuzz;
#[path = "it/guards.rs"]
mod guards;
#[path = "it/http.rs"]
mod http;
#[path = "it/http_pressure.rs"]
mod http_pressure;
#[path = "it/log_files.rs"]
mod log_files;
#[path = "it/log_pressure.rs"]
mod log_pressure;
#[path = "it/logs.rs"]
mod logs;
#[path = "it/node.rs"]
mod node;
#[path = "it/notify_parent.rs"]
mod notify_parent;
#[path = "it/os_edges.rs"]
mod os_edges;
#[path = "it/per_instance.rs"]
mod per_instance;
#[path = "it/pid1.rs"]
mod pid1;
#[path = "it/reload.rs"]
mod reload;
#[path = "it/restart.rs"]
mod restart;
#[path = "it/rollout.rs"]
mod rollout;
#[path = "it/run.rs"]
mod run;
#[path = "it/safer_rollout.rs"]
mod safer_rollout;
#[path = "it/schedule.rs"]
mod schedule;
#[path = "it/shutdown.rs"]
mod shutdown;
#[path = "it/static_binary.rs"]
mod static_binary;
#[path = "it/stress.rs"]
mod stress;
#[path = "it/top.rs"]
mod top;
