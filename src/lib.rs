//! rn: a WireGuard mesh governed by a quorum-signed membership ledger.
//!
//! The layers, each importing only from those below it (checked by the `boundary` gate):
//!
//! - [`cli`]: the commands, their output and exit codes;
//! - [`node`]: the agent that turns the ledger and policy into an interface and a filter;
//! - [`tunnel`] and [`firewall`]: the WireGuard backends and nftables;
//! - [`sync`]: distribution — the static layout a ledger is mirrored and served in;
//! - [`policy`]: the default-deny rules over ledger identities;
//! - [`ledger`]: formats, roots, the quorum gate and the state directory; [`keys`],
//!   [`agent`] and [`journal`] (approver and node keys, keys held by an ssh-agent, the
//!   signer's equivocation journal);
//! - the ground floor: [`files`] (the one permission check and atomic write), [`clock`],
//!   [`text`] (hex, escaping untrusted text) and [`fault`] (crash points for tests).

pub mod agent;
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
pub mod sync;
pub mod text;
pub mod tunnel;
