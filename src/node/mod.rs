//! The node agent (spec §5): configuration, the pure plan, reconcile by diff, status, the
//! watch on the state directory, the agent loop and its control socket.

pub mod agent;
pub mod config;
pub mod control;
pub mod distribute;
pub mod plan;
pub mod reconcile;
pub mod status;
pub mod watch;
