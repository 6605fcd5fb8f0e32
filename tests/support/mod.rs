//! The integration-test harness: runs the real `supervise` binary on an ecosystem file in
//! a temporary directory, with `supervise-testapp` children, and watches what it prints.
//!
//! Every wait is a poll (or a condition variable) against a generous deadline, never a
//! sleep: the machine running the tests may be small and busy. On `Drop` the harness
//! freezes supervise, walks `/proc` for every descendant (supervise is a child subreaper,
//! so double-forked processes stay under it) plus every test process that names the test's
//! directory on its command line, and SIGKILLs them all, so nothing outlives a test, even a
//! failed one. A failed test prints supervise's output and the ecosystem file.
//!
//! One module per concern: `harness` (the temporary directory and the supervise process),
//! `output` (what it prints, and the waits on it), `pids` (the test app's pid files),
//! `cleanup` (nothing outlives a test), `client` (`supervise status`... as a client),
//! `ecosystem` (a builder for ecosystem files), `http` (requests to served ports),
//! `procfs` (processes), `text` (delays, timestamps), `wait` (deadlines).

#![allow(dead_code)]

mod cleanup;
mod client;
mod ecosystem;
mod events;
mod harness;
mod http;
mod output;
mod pids;
mod procfs;
mod text;
mod wait;

pub use client::*;
pub use ecosystem::*;
pub use events::*;
pub use harness::*;
pub use http::*;
pub use output::*;
pub use procfs::*;
pub use text::*;
pub use wait::*;

pub fn supervise_bin() -> &'static str {
    env!("CARGO_BIN_EXE_supervise")
}

pub fn testapp() -> &'static str {
    env!("CARGO_BIN_EXE_supervise-testapp")
}

/// A command line as a TOML (and YAML flow) array of strings, the test app first.
pub fn app_cmd(args: &[&str]) -> String {
    let mut argv = vec![testapp().to_string()];
    argv.extend(args.iter().map(|s| s.to_string()));
    serde_json::to_string(&argv).unwrap()
}

/// A string as a TOML basic string (also a YAML double-quoted string).
pub fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}
