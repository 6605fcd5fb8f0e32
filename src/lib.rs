//! supervise: a declarative process supervisor.
//!
//! The crate is split the way the README's architecture section explains:
//! a pure core (`config`, `plan`, `state`), one event loop (`runtime`) that owns all
//! runtime state, and small OS edges (`os`, `logs`).

pub mod admission;
pub mod cli;
pub mod config;
pub mod control;
pub mod http;
pub mod listen_adapter;
pub mod logs;
pub mod os;
pub mod plan;
pub mod probes;
pub mod runtime;
pub mod state;
pub mod top;
pub mod watch;
