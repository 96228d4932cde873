//! rn: a WireGuard mesh governed by a quorum-signed membership ledger.
//!
//! The binary's modules: [`ledger`] (formats, roots, quorum gate), [`keys`] (approver and node
//! keys), [`files`] (the one permission check and atomic write), and [`cli`] (commands).

pub mod cli;
pub mod clock;
pub mod fault;
pub mod files;
pub mod firewall;
pub mod journal;
pub mod keys;
pub mod ledger;
pub mod node;
pub mod policy;
pub mod text;
pub mod tunnel;
