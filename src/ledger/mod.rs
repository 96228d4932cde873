//! The membership ledger: formats, roots, reducer, quorum and the acceptance gate (spec §4).
//!
//! Knows nothing of any tunnel: it speaks of nodes, transport public keys and addresses.

pub mod canonical;
pub mod carried;
pub mod editor;
pub mod error;
pub mod gate;
pub mod log;
pub mod merkle;
pub mod model;
pub mod proof;
pub mod quorum;
pub mod reduce;
pub mod root;
pub mod store;
pub mod types;
pub mod update;

pub use error::{DecodeError, IllegalOpKind, Rejection};
pub use gate::{
    Freshness, Inspection, VerifiedGenesis, VerifiedUpdate, accept, inspect, verify_genesis,
};
pub use model::State;
pub use update::{Op, Proposal, SignedGenesis, SignedUpdate, Update};
