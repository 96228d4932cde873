//! The node agent (spec §5): configuration, the reconcile loop, the control socket.

pub mod agent;
pub mod config;
pub mod control;
