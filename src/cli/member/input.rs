//! Reading the documents `rn member` commands take: signed genesis, proposal, signed update,
//! snapshot (as a base only).

use std::path::Path;

use anyhow::Context as _;

use crate::files;
use crate::ledger::canonical::{self, caps};
use crate::ledger::log::{Snapshot, SnapshotKind};
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
    /// `rn.snapshot.v1`.
    Snapshot(Box<Snapshot>),
}

/// Reads `path` once ("-" is standard input) and strictly decodes it as one of the accepted
/// kinds.
pub fn read(path: &Path, accepted: &[&'static str]) -> anyhow::Result<Doc> {
    let cap = if accepted.contains(&SnapshotKind::KIND) {
        caps::LOG
    } else {
        caps::UPDATE
    };
    let bytes = files::read_capped(path, cap)?;
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
        SnapshotKind::KIND => Doc::Snapshot(Box::new(canonical::decode(&bytes)?)),
        SignedGenesis::KIND_STR => Doc::Genesis(Box::new(canonical::decode(&bytes)?)),
        Proposal::KIND_STR => {
            let p: Proposal = canonical::decode(&bytes)?;
            crate::policy::read_documents(Proposal::KIND_STR, &p.policies)?;
            Doc::Proposal(Box::new(p))
        }
        _ => Doc::Signed(Box::new(canonical::decode(&bytes)?)),
    };
    Ok(doc)
}

/// Kinds a base may be.
pub const BASE_KINDS: &[&str] = &[
    SignedGenesis::KIND_STR,
    Proposal::KIND_STR,
    SnapshotKind::KIND,
];

/// A base state and the policy documents that came with it.
pub struct Base {
    /// The state to build on.
    pub state: State,
    /// Policy documents known with it (a proposal's `policies`, a ledger's held policy).
    pub policies: Vec<crate::policy::Policy>,
}

/// The state to build on, from `--base`: a fully signed genesis (its epoch-0 state), a
/// snapshot (its state, whose recomputed root must be the one it claims) or a proposal (the
/// state after it, recomputed through the gate).
pub fn base_state(path: &Path, now: u64) -> anyhow::Result<State> {
    Ok(base(path, now)?.state)
}

/// [`base_state`] with the policy documents the base file carries.
pub fn base(path: &Path, now: u64) -> anyhow::Result<Base> {
    let shown = path.display();
    let state_only = |state| Base {
        state,
        policies: Vec::new(),
    };
    match read(path, BASE_KINDS)? {
        Doc::Genesis(g) => Ok(state_only(
            verify_genesis(&g, None)
                .with_context(|| format!("base {shown}"))?
                .state()
                .clone(),
        )),
        Doc::Proposal(p) => Ok(Base {
            state: crate::ledger::gate::proposal_result(&p, now)
                .with_context(|| format!("base {shown}"))?,
            policies: crate::policy::read_documents(Proposal::KIND_STR, &p.policies)?,
        }),
        Doc::Snapshot(s) if s.state.root() != s.root => Err(DecodeError::Malformed {
            what: "snapshot",
            detail: format!(
                "its state hashes to {}, not the {} it claims",
                s.state.root(),
                s.root
            ),
        })
        .with_context(|| format!("base {shown}")),
        Doc::Snapshot(s) => Ok(state_only(s.state)),
        Doc::Signed(_) => Err(super::super::usage(format!(
            "{shown}: a signed update carries no base state; pass its proposal or the genesis"
        ))),
    }
}
