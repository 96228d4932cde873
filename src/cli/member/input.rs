//! Reading the documents `rn member` commands take: signed genesis, proposal, signed update.

use std::path::Path;

use anyhow::Context as _;

use crate::files;
use crate::ledger::canonical::{self, caps};
use crate::ledger::update::{Proposal, SignedGenesis, SignedUpdate};
use crate::ledger::{DecodeError, State, verify_genesis};

/// One decoded input document.
pub enum Doc {
    /// `rn.signed-genesis.v1`.
    Genesis(Box<SignedGenesis>),
    /// `rn.proposal.v1`.
    Proposal(Box<Proposal>),
    /// `rn.signed-update.v1`.
    Signed(Box<SignedUpdate>),
}

/// Reads and strictly decodes `path` ("-" is standard input) as one of the accepted kinds.
pub fn read(path: &Path, accepted: &[&'static str]) -> anyhow::Result<Doc> {
    let bytes = files::read_capped(path, caps::UPDATE)?;
    let shown = path.display();
    let kind = canonical::peek_kind(&bytes).with_context(|| format!("reading {shown}"))?;
    if !accepted.contains(&kind.as_str()) {
        return Err(DecodeError::UnknownKind {
            expected: accepted.first().copied().unwrap_or("document"),
            found: format!("{kind} (this command takes {})", accepted.join(", ")),
        })
        .with_context(|| format!("reading {shown}"));
    }
    let doc = match kind.as_str() {
        crate::ledger::log::SnapshotKind::KIND => {
            return Err(super::super::usage(format!(
                "{shown}: a snapshot is only a base (--base); this command takes {}",
                accepted.join(", ")
            )));
        }
        SignedGenesis::KIND_STR => Doc::Genesis(Box::new(canonical::decode(&bytes)?)),
        Proposal::KIND_STR => Doc::Proposal(Box::new(canonical::decode(&bytes)?)),
        _ => Doc::Signed(Box::new(canonical::decode(&bytes)?)),
    };
    Ok(doc)
}

/// Kinds a base may be.
pub const BASE_KINDS: &[&str] = &[
    SignedGenesis::KIND_STR,
    Proposal::KIND_STR,
    crate::ledger::log::SnapshotKind::KIND,
];

/// The state to build on, from `--base`: a fully signed genesis (its epoch-0 state), a
/// snapshot (its state, root recomputed) or a proposal (the state after it, recomputed
/// through the gate).
pub fn base_state(path: &Path, now: u64) -> anyhow::Result<State> {
    let shown = path.display();
    let bytes = files::read_capped(path, caps::LOG)?;
    if canonical::peek_kind(&bytes).ok().as_deref() == Some(crate::ledger::log::SnapshotKind::KIND)
    {
        let snap: crate::ledger::log::Snapshot =
            canonical::decode(&bytes).with_context(|| format!("base {shown}"))?;
        if snap.state.root() != snap.root {
            return Err(DecodeError::Malformed {
                what: "snapshot",
                detail: format!(
                    "its state hashes to {}, not the {} it claims",
                    snap.state.root(),
                    snap.root
                ),
            })
            .with_context(|| format!("base {shown}"));
        }
        return Ok(snap.state);
    }
    match read(path, BASE_KINDS)? {
        Doc::Genesis(g) => Ok(verify_genesis(&g, None)
            .with_context(|| format!("base {shown}"))?
            .state()
            .clone()),
        Doc::Proposal(p) => p
            .resulting_state(now)
            .with_context(|| format!("base {shown}")),
        Doc::Signed(_) => Err(super::super::usage(format!(
            "{shown}: a signed update carries no base state; pass its proposal or the genesis"
        ))),
    }
}
