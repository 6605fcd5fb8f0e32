//! The control socket: `supervise status`, `logs`, `restart`, `reload`, `stop`,
//! `start` and `signal` from another terminal to the running supervisor (SPEC §4).
//!
//! * [`protocol`]: the versioned JSON-lines messages, shared by both sides;
//! * [`server`]: the listening side, driven by the runtime's mio loop, never blocking:
//!   admitting clients and dispatching their requests; [`conn`] frames and buffers one
//!   connection, [`socket`] owns the socket file and checks who connects;
//! * [`client`]: the CLI side (socket lookup, one request, `logs --follow`);
//! * [`table`]: the `status` table.

pub mod client;
mod conn;
pub mod protocol;
pub mod server;
pub mod socket;
pub mod table;

pub use protocol::{
    InstanceStatus, LogLine, Request, Response, SignalName, StatusReport, Target, PROTOCOL_VERSION,
};
pub use server::{ClientId, ControlServer, ServerEvent};
