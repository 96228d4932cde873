//! Updates, signed updates, proposals and genesis (spec §4.4, §4.6).

use serde::{Deserialize, Deserializer, Serialize};

use super::canonical::{Document, caps, kind_marker, present, required, to_jcs};
use super::model::{Approver, Node, Params, Set, State};
use super::types::{
    ApproverKey, Cidr, Id, Reason, Sha256Digest, Sig, Tag, TransportKey, Uint, UpdateId,
};

kind_marker!(
    /// `rn.update.v1`
    UpdateKind = "rn.update.v1"
);
kind_marker!(
    /// `rn.signed-update.v1`
    SignedUpdateKind = "rn.signed-update.v1"
);
kind_marker!(
    /// `rn.proposal.v1`
    ProposalKind = "rn.proposal.v1"
);
kind_marker!(
    /// `rn.genesis.v1`
    GenesisKind = "rn.genesis.v1"
);
kind_marker!(
    /// `rn.signed-genesis.v1`
    SignedGenesisKind = "rn.signed-genesis.v1"
);

/// Most ops one update may carry.
pub const MAX_OPS: usize = 4096;

/// One change to the state (spec §4.4). Applied in order, all or nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Admit a node (full record, status active).
    AddNode {
        /// The record.
        node: Node,
    },
    /// Delete a node record.
    RemoveNode {
        /// The node.
        id: Id,
    },
    /// Active or quarantined → revoked.
    RevokeNode {
        /// The node.
        id: Id,
    },
    /// Active → quarantined.
    QuarantineNode {
        /// The node.
        id: Id,
    },
    /// Revoked or quarantined → active.
    RestoreNode {
        /// The node.
        id: Id,
    },
    /// Replace a node's transport key.
    RotateNodeKey {
        /// The node.
        id: Id,
        /// The new key.
        pubkey: TransportKey,
    },
    /// Replace the named fields of a node (lists wholesale).
    SetNode {
        /// The node.
        id: Id,
        /// New tags.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        tags: Option<Set<Tag>>,
        /// New addresses.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        addresses: Option<Set<Cidr>>,
        /// New routes.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        routes: Option<Set<Cidr>>,
        /// New exit capability.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        exit: Option<bool>,
    },
    /// Add an approver (needs proof of possession of its key).
    AddApprover {
        /// The record (status active).
        approver: Approver,
    },
    /// Active → revoked.
    RevokeApprover {
        /// The approver.
        id: Id,
    },
    /// Replace an approver's key (needs proof of possession of the new key).
    RotateApproverKey {
        /// The approver.
        id: Id,
        /// The new key.
        pubkey: ApproverKey,
    },
    /// Change the signature threshold.
    SetThreshold {
        /// The new threshold.
        threshold: Uint,
    },
    /// Pin a policy document by hash, or unpin with null.
    SetPolicy {
        /// The hash, or null.
        #[serde(deserialize_with = "required")]
        policy: Option<Sha256Digest>,
    },
    /// Replace the network parameters.
    SetParams {
        /// The new params.
        params: Params,
    },
}

impl Op {
    /// The wire name of the op.
    pub fn name(&self) -> &'static str {
        match self {
            Op::AddNode { .. } => "add_node",
            Op::RemoveNode { .. } => "remove_node",
            Op::RevokeNode { .. } => "revoke_node",
            Op::QuarantineNode { .. } => "quarantine_node",
            Op::RestoreNode { .. } => "restore_node",
            Op::RotateNodeKey { .. } => "rotate_node_key",
            Op::SetNode { .. } => "set_node",
            Op::AddApprover { .. } => "add_approver",
            Op::RevokeApprover { .. } => "revoke_approver",
            Op::RotateApproverKey { .. } => "rotate_approver_key",
            Op::SetThreshold { .. } => "set_threshold",
            Op::SetPolicy { .. } => "set_policy",
            Op::SetParams { .. } => "set_params",
        }
    }

    /// Only takes access away (spec §4.4): may be applied late during catch-up (§4.7).
    pub fn is_restrictive(&self) -> bool {
        matches!(
            self,
            Op::RevokeNode { .. }
                | Op::QuarantineNode { .. }
                | Op::RemoveNode { .. }
                | Op::RevokeApprover { .. }
        )
    }

    /// Touches approvers, threshold, params or policy: needs an owner's signature (§4.5.1).
    pub fn is_governance(&self) -> bool {
        matches!(
            self,
            Op::AddApprover { .. }
                | Op::RevokeApprover { .. }
                | Op::RotateApproverKey { .. }
                | Op::SetThreshold { .. }
                | Op::SetPolicy { .. }
                | Op::SetParams { .. }
        )
    }

    /// The approver id and key this op introduces, which must prove possession.
    pub fn new_approver_key(&self) -> Option<(&Id, &ApproverKey)> {
        match self {
            Op::AddApprover { approver } => Some((&approver.id, &approver.pubkey)),
            Op::RotateApproverKey { id, pubkey } => Some((id, pubkey)),
            _ => None,
        }
    }
}

fn op_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Op>, D::Error> {
    let ops = Vec::<Op>::deserialize(d)?;
    if ops.is_empty() || ops.len() > MAX_OPS {
        return Err(serde::de::Error::custom(format_args!(
            "an update carries 1 to {MAX_OPS} ops, found {}",
            ops.len()
        )));
    }
    Ok(ops)
}

/// An update: the exact change approvers sign (spec §4.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// `rn.update.v1`.
    pub kind: UpdateKind,
    /// The network.
    pub network_id: Id,
    /// Random id, never reused.
    pub update_id: UpdateId,
    /// The epoch it builds on.
    pub epoch_prev: Uint,
    /// `epoch_prev + 1`.
    pub epoch_new: Uint,
    /// Root of the state it builds on.
    pub prev_root: Sha256Digest,
    /// Root of the state it yields.
    pub new_root: Sha256Digest,
    /// Unix seconds.
    pub created_at: Uint,
    /// Unix seconds; after this the update is expired.
    pub expires_at: Uint,
    /// Why.
    pub reason: Reason,
    /// 1 to 4096 ops.
    #[serde(deserialize_with = "op_list")]
    pub ops: Vec<Op>,
}

impl Update {
    /// The signed message: exactly `JCS(update)`.
    pub fn message(&self) -> Vec<u8> {
        to_jcs(self)
    }

    /// `sha256:` of the signed message: names this exact update.
    pub fn hash(&self) -> Sha256Digest {
        Sha256Digest::of(&self.message())
    }
}

/// One signature in a signed update, proposal or genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// Who signed.
    pub approver: Id,
    /// Ed25519 over the signed message.
    pub sig: Sig,
    /// True for a proof of possession by the key an op of this update introduces for
    /// `approver` (`add_approver`, `rotate_approver_key`); it never counts toward the
    /// threshold. Omitted when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub new_key: bool,
}

/// Inserts `sig` keeping the list sorted by (approver, new_key); replaces an entry with the
/// same (approver, new_key) and returns whether it differed.
pub fn insert_signature(list: &mut Vec<Signature>, sig: Signature) -> bool {
    let key = |s: &Signature| (s.approver.clone(), s.new_key);
    match list.binary_search_by_key(&key(&sig), key) {
        Ok(i) => {
            let changed = list[i] != sig;
            list[i] = sig;
            changed
        }
        Err(i) => {
            list.insert(i, sig);
            true
        }
    }
}

/// An update with its signatures (spec §4.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedUpdate {
    /// `rn.signed-update.v1`.
    pub kind: SignedUpdateKind,
    /// The update.
    pub update: Update,
    /// Signatures, sorted by approver.
    pub signatures: Vec<Signature>,
}

impl SignedUpdate {
    /// `rn.signed-update.v1`.
    pub const KIND_STR: &'static str = SignedUpdateKind::KIND;
}

impl Document for SignedUpdate {
    const KIND: &'static str = SignedUpdateKind::KIND;
    const CAP: usize = caps::UPDATE;
}

/// What travels to an air-gapped signer: the update, its signatures so far, and the full state
/// it builds on (spec §4.4).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    /// `rn.proposal.v1`.
    pub kind: ProposalKind,
    /// The update.
    pub update: Update,
    /// Signatures so far.
    pub signatures: Vec<Signature>,
    /// The state at `epoch_prev`.
    pub base_state: State,
    /// Policy documents a `set_policy` op pins.
    pub policies: Vec<super::carried::PinnedDoc>,
}

impl Proposal {
    /// `rn.proposal.v1`.
    pub const KIND_STR: &'static str = ProposalKind::KIND;
}

impl Document for Proposal {
    const KIND: &'static str = ProposalKind::KIND;
    const CAP: usize = caps::UPDATE;
}

impl Proposal {
    /// Checks the policy documents the proposal carries: every document a `set_policy` op
    /// pins must be present, and nothing else may be there but the base's current policy
    /// (carried so a signer can see the rule-level change).
    pub fn check_policies(&self) -> Result<(), String> {
        let pinned: Vec<Sha256Digest> = self
            .update
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::SetPolicy { policy } => *policy,
                _ => None,
            })
            .collect();
        let carried: Vec<Sha256Digest> = self.policies.iter().map(|p| p.hash()).collect();
        for h in &pinned {
            if !carried.contains(h) {
                return Err(format!(
                    "the update pins policy {h} but the proposal does not carry that document"
                ));
            }
        }
        for h in &carried {
            if !pinned.contains(h) && self.base_state.policy() != Some(h) {
                return Err(format!(
                    "the proposal carries policy {h}, which neither this update nor the base pins"
                ));
            }
        }
        Ok(())
    }

    /// The signed update this proposal carries.
    pub fn signed_update(&self) -> SignedUpdate {
        SignedUpdate {
            kind: SignedUpdateKind,
            update: self.update.clone(),
            signatures: self.signatures.clone(),
        }
    }
}

/// The epoch-0 state and its creation time (spec §4.6).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// `rn.genesis.v1`.
    pub kind: GenesisKind,
    /// The state at epoch 0.
    pub state: State,
    /// Unix seconds.
    pub created_at: Uint,
}

impl Genesis {
    /// The signed message: exactly `JCS(genesis)`.
    pub fn message(&self) -> Vec<u8> {
        to_jcs(self)
    }
}

/// A genesis with its signatures: valid once every listed approver signed.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedGenesis {
    /// `rn.signed-genesis.v1`.
    pub kind: SignedGenesisKind,
    /// The genesis.
    pub genesis: Genesis,
    /// Signatures, sorted by approver.
    pub signatures: Vec<Signature>,
}

impl SignedGenesis {
    /// `rn.signed-genesis.v1`.
    pub const KIND_STR: &'static str = SignedGenesisKind::KIND;
}

impl Document for SignedGenesis {
    const KIND: &'static str = SignedGenesisKind::KIND;
    const CAP: usize = caps::UPDATE;
}
