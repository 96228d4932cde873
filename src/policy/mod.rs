//! The policy engine: default-deny rules over ledger identities (spec §4.9), pinned by the
//! ledger's `set_policy`. It evaluates queries and compiles one node's intents; it knows
//! nothing of any tunnel or firewall.

pub mod compile;
pub mod evaluate;
pub mod model;
pub mod pinned;

pub use compile::{Intents, compile};
pub use evaluate::{Decision, DenyReason, PolicyView, Query, Target, evaluate};
pub use model::{Policy, PolicyError, Proto, Via};
pub use pinned::{PinnedPolicy, read_carried, read_documents};
