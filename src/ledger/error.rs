//! Ledger errors: one variant per failed check, each carrying what was expected and found.

use super::types::{Id, Sha256Digest, Uint, UpdateId};

/// A document could not be decoded under spec §4.1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Larger than the cap for its kind; refused before parsing.
    #[error("{what} is {size} bytes, above the {cap}-byte cap")]
    Oversize {
        /// The document kind.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The cap.
        cap: usize,
    },
    /// The `kind` is not the one expected (or not a known version).
    #[error("unknown kind {found} where {expected} was expected")]
    UnknownKind {
        /// The kind this reader accepts.
        expected: &'static str,
        /// What the document says.
        found: String,
    },
    /// Not valid under the strict rules: syntax, unknown field, duplicate key, wrong type,
    /// out-of-range value.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// The document kind.
        what: &'static str,
        /// The parser's message.
        detail: String,
    },
}

impl DecodeError {
    /// The stable name of the variant (used by vectors and `--json` output).
    pub fn name(&self) -> &'static str {
        match self {
            DecodeError::Oversize { .. } => "Oversize",
            DecodeError::UnknownKind { .. } => "UnknownKind",
            DecodeError::Malformed { .. } => "Malformed",
        }
    }
}

/// Why the acceptance gate (spec §4.5), the quorum check (§4.5.1), the reducer or genesis
/// verification refused an update. Every variant is a trust failure: do not retry.
/// What made an op illegal in the state it met (the kind of [`Rejection::IllegalOp`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IllegalOpKind {
    /// It adds a node or approver whose id is taken.
    AlreadyExists,
    /// It names a node or approver the ledger does not have.
    NotFound,
    /// The record is not in a status the op applies to, or a new record is not active.
    WrongStatus,
    /// A new node's `joined_at` or `updated_at` is not the update's `created_at`.
    WrongTime,
    /// It changes nothing (the same key, the same values, no field named).
    NoChange,
    /// It would break an approver's key history: previous keys on a new approver, a key held
    /// twice, or a second new key for one approver in one update.
    KeyHistory,
    /// Params outside their ranges.
    BadParams,
}

impl IllegalOpKind {
    /// The stable name (vectors, `--json`): snake case.
    pub fn name(self) -> &'static str {
        match self {
            IllegalOpKind::AlreadyExists => "already_exists",
            IllegalOpKind::NotFound => "not_found",
            IllegalOpKind::WrongStatus => "wrong_status",
            IllegalOpKind::WrongTime => "wrong_time",
            IllegalOpKind::NoChange => "no_change",
            IllegalOpKind::KeyHistory => "key_history",
            IllegalOpKind::BadParams => "bad_params",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Step 1: the update is for another network.
    #[error("update is for network {found:?}, this ledger is {expected:?}")]
    WrongNetwork {
        /// This ledger's network.
        expected: Id,
        /// The update's network.
        found: Id,
    },
    /// Step 2: the update builds on an epoch older than the current one.
    #[error(
        "stale update: it builds on epoch {epoch_prev}, the ledger is already at epoch {current}"
    )]
    Stale {
        /// The ledger's epoch.
        current: Uint,
        /// The update's `epoch_prev`.
        epoch_prev: Uint,
    },
    /// Step 2: the update builds on an epoch this ledger has not reached.
    #[error(
        "gap: the update builds on epoch {epoch_prev}, the ledger is at epoch {current}; apply the missing updates first"
    )]
    Gap {
        /// The ledger's epoch.
        current: Uint,
        /// The update's `epoch_prev`.
        epoch_prev: Uint,
    },
    /// Step 2: `epoch_new` is not `epoch_prev + 1`.
    #[error("epoch_new {epoch_new} must be epoch_prev + 1 = {expected}")]
    EpochStep {
        /// `epoch_prev + 1`.
        expected: u64,
        /// The update's `epoch_new`.
        epoch_new: Uint,
    },
    /// Step 3: same epoch, other root, and a quorum of the current approvers signed it —
    /// a conflicting history exists (incident).
    #[error(
        "FORK: a quorum-signed update has another history: root {found} at epoch {epoch}, where this ledger has root {expected}"
    )]
    Fork {
        /// An epoch at which the two histories differ.
        epoch: Uint,
        /// This ledger's root at that epoch.
        expected: Sha256Digest,
        /// The other history's root at that epoch (the update's `prev_root`, or its `new_root`
        /// when it conflicts with a committed update of the same epoch).
        found: Sha256Digest,
    },
    /// Step 3: same epoch, other root, without a valid quorum.
    #[error("prev_root {found} does not match this ledger's root {expected} at epoch {epoch}")]
    PrevRootMismatch {
        /// The epoch.
        epoch: Uint,
        /// This ledger's root.
        expected: Sha256Digest,
        /// The update's `prev_root`.
        found: Sha256Digest,
    },
    /// Step 4: this `update_id` was already committed.
    #[error("replay: update {update_id} was already applied to this ledger")]
    Replay {
        /// The id.
        update_id: UpdateId,
    },
    /// Step 5: created in the future beyond the allowed clock skew.
    #[error(
        "future-dated: created at {}, more than the allowed {skew} s skew ahead of this clock; check the clocks",
        crate::clock::when(created_at.get(), *now)
    )]
    FutureDated {
        /// The update's `created_at`.
        created_at: Uint,
        /// The verifier's clock.
        now: u64,
        /// The allowed skew.
        skew: Uint,
    },
    /// Step 5: `expires_at` is not after `created_at`.
    #[error("expires_at {expires_at} must be after created_at {created_at}")]
    BadValidity {
        /// `created_at`.
        created_at: Uint,
        /// `expires_at`.
        expires_at: Uint,
    },
    /// Step 5: valid for longer than the network allows.
    #[error("valid for {ttl} s, longer than the network's max_update_ttl_secs {max}")]
    TtlTooLong {
        /// `expires_at − created_at`.
        ttl: u64,
        /// The network's limit.
        max: Uint,
    },
    /// Step 5: expired (and not a restrictive last update of a catch-up chain).
    #[error("expired at {}; propose it again", crate::clock::when(expires_at.get(), *now))]
    Expired {
        /// `expires_at`.
        expires_at: Uint,
        /// The verifier's clock.
        now: u64,
    },
    /// Quorum: the same approver signed twice.
    #[error("duplicate signature by approver {approver}")]
    DuplicateSigner {
        /// The approver.
        approver: Id,
    },
    /// Quorum: a signature by an id that is not an approver of this network.
    #[error("signature by unknown approver {approver}")]
    UnknownSigner {
        /// The id.
        approver: Id,
    },
    /// Quorum: a signature by a revoked approver.
    #[error("signature by revoked approver {approver}")]
    RevokedSigner {
        /// The approver.
        approver: Id,
    },
    /// Quorum: a signature that does not verify (forged, or the update changed after signing).
    #[error("invalid signature by {approver}: it does not verify over this exact update")]
    BadSignature {
        /// The approver.
        approver: Id,
    },
    /// Quorum: a proof-of-possession signature for which no op introduces a key.
    #[error("new_key signature by {approver}, but no op in this update introduces a key for it")]
    UnexpectedProof {
        /// The approver.
        approver: Id,
    },
    /// Quorum: too few distinct active approvers signed.
    #[error("{have} of {need} signatures; {}", missing_hint(missing))]
    BelowThreshold {
        /// Valid signatures by active approvers.
        have: usize,
        /// The threshold.
        need: u64,
        /// Active approvers who have not signed.
        missing: Vec<Id>,
    },
    /// Quorum: a governance update was not signed by an active owner.
    #[error(
        "an owner must sign updates that touch approvers, threshold, params or policy (owners: {})",
        join(owners)
    )]
    MissingOwner {
        /// The active owners.
        owners: Vec<Id>,
    },
    /// Quorum: a new approver key did not sign (proof of possession).
    #[error(
        "missing proof of possession: the new key of approver {approver} must sign the update (rn member sign FILE --key NEW_KEY)"
    )]
    MissingProofOfPossession {
        /// The approver whose new key did not sign.
        approver: Id,
    },
    /// Reducer: an op is not legal in the state it meets.
    #[error("illegal op #{index} ({op}): {reason}")]
    IllegalOp {
        /// Position in `ops`, from 0.
        index: usize,
        /// The op name.
        op: &'static str,
        /// What kind of illegality.
        kind: IllegalOpKind,
        /// Why, in words.
        reason: String,
    },
    /// Reducer: the approver set would leave the quorum unreachable.
    #[error("would make the quorum unreachable: {reason}")]
    QuorumUnreachable {
        /// Why.
        reason: String,
    },
    /// Reducer: the resulting state breaks an invariant of spec §4.2.
    #[error("invariant violated: {reason}")]
    InvariantViolated {
        /// Which.
        reason: String,
    },
    /// Step 8: the recomputed root is not the claimed `new_root`.
    #[error("new_root mismatch: the update claims {claimed}, the ops yield {computed}")]
    RootMismatch {
        /// The update's `new_root`.
        claimed: Sha256Digest,
        /// The recomputed root.
        computed: Sha256Digest,
    },
    /// Genesis: not every listed approver signed.
    #[error(
        "genesis is not signed by every approver it lists; missing: {}",
        join(missing)
    )]
    GenesisUnsigned {
        /// The approvers who have not signed.
        missing: Vec<Id>,
    },
    /// Genesis: the state is not a valid epoch-0 state.
    #[error("invalid genesis: {reason}")]
    BadGenesis {
        /// Why.
        reason: String,
    },
    /// The genesis root differs from the root pinned out of band.
    #[error("genesis root {found} does not match the pinned root {pinned}")]
    PinMismatch {
        /// The pin.
        pinned: Sha256Digest,
        /// The genesis' root.
        found: Sha256Digest,
    },
}

fn join(ids: &[Id]) -> String {
    ids.iter().map(Id::as_str).collect::<Vec<_>>().join(", ")
}

fn missing_hint(missing: &[Id]) -> String {
    if missing.is_empty() {
        "no other active approver can sign".to_owned()
    } else {
        format!("may still sign: {}", join(missing))
    }
}

impl Rejection {
    /// The stable name of the variant (used by vectors and `--json` output).
    pub fn name(&self) -> &'static str {
        match self {
            Rejection::WrongNetwork { .. } => "WrongNetwork",
            Rejection::Stale { .. } => "Stale",
            Rejection::Gap { .. } => "Gap",
            Rejection::EpochStep { .. } => "EpochStep",
            Rejection::Fork { .. } => "Fork",
            Rejection::PrevRootMismatch { .. } => "PrevRootMismatch",
            Rejection::Replay { .. } => "Replay",
            Rejection::FutureDated { .. } => "FutureDated",
            Rejection::BadValidity { .. } => "BadValidity",
            Rejection::TtlTooLong { .. } => "TtlTooLong",
            Rejection::Expired { .. } => "Expired",
            Rejection::DuplicateSigner { .. } => "DuplicateSigner",
            Rejection::UnknownSigner { .. } => "UnknownSigner",
            Rejection::RevokedSigner { .. } => "RevokedSigner",
            Rejection::BadSignature { .. } => "BadSignature",
            Rejection::UnexpectedProof { .. } => "UnexpectedProof",
            Rejection::BelowThreshold { .. } => "BelowThreshold",
            Rejection::MissingOwner { .. } => "MissingOwner",
            Rejection::MissingProofOfPossession { .. } => "MissingProofOfPossession",
            Rejection::IllegalOp { .. } => "IllegalOp",
            Rejection::QuorumUnreachable { .. } => "QuorumUnreachable",
            Rejection::InvariantViolated { .. } => "InvariantViolated",
            Rejection::RootMismatch { .. } => "RootMismatch",
            Rejection::GenesisUnsigned { .. } => "GenesisUnsigned",
            Rejection::BadGenesis { .. } => "BadGenesis",
            Rejection::PinMismatch { .. } => "PinMismatch",
        }
    }
}
