//! Inclusion proofs (spec §4.1): a node's record, its audit path in the node tree and the state
//! header — enough to check against a state root with SHA-256 and an RFC 8785 encoder alone,
//! without the rest of the state.

use serde::{Deserialize, Serialize};

use super::canonical::{Document, caps, kind_marker, required};
use super::merkle;
use super::model::{Node, Params, State, StateKind, check_node_shape};
use super::root::{self, ListDigest};
use super::types::{Id, Sha256Digest, Uint};

kind_marker!(
    /// `rn.node-proof.v1`
    NodeProofKind = "rn.node-proof.v1"
);

/// The state header (spec §4): the state with `approvers` and `nodes` each replaced by their
/// count and digest. Its `SHA-256(JCS(…))` is the state root.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateHeader {
    /// `rn.state.v1`.
    pub kind: StateKind,
    /// The network.
    pub network_id: Id,
    /// The epoch.
    pub epoch: Uint,
    /// The parameters.
    pub params: Params,
    /// The signature threshold.
    pub threshold: Uint,
    /// Count and digest of the approvers.
    pub approvers: ListDigest,
    /// Count and digest of the nodes: the node tree's size and root.
    pub nodes: ListDigest,
    /// The pinned policy hash, or `null`.
    #[serde(deserialize_with = "required")]
    pub policy: Option<Sha256Digest>,
}

impl StateHeader {
    /// The state root this header hashes to.
    pub fn root(&self) -> Sha256Digest {
        Sha256Digest(root::leaf(self))
    }
}

/// A node record with its audit path to the state root.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeProof {
    /// `rn.node-proof.v1`.
    pub kind: NodeProofKind,
    /// The state root the proof leads to.
    pub root: Sha256Digest,
    /// The state header that hashes to `root`.
    pub header: StateHeader,
    /// The node's record as the state holds it.
    pub node: Node,
    /// The record's position among the nodes in id order, counting from 0.
    pub index: Uint,
    /// The audit path of RFC 9162 §2.1.3.1, nearest the leaf first.
    pub path: Vec<Sha256Digest>,
}

impl Document for NodeProof {
    const KIND: &'static str = NodeProofKind::KIND;
    const CAP: usize = caps::UPDATE;
}

/// Why a proof does not prove what it claims.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError {
    /// The header does not hash to the root the proof names.
    #[error("the proof's header hashes to {computed}, not to the root it names ({named})")]
    HeaderMismatch {
        /// What the header hashes to.
        computed: Sha256Digest,
        /// The proof's `root`.
        named: Sha256Digest,
    },
    /// The proof is for another root than the one asked about.
    #[error("the proof is for state root {proof}, not {wanted}")]
    OtherRoot {
        /// The proof's root.
        proof: Sha256Digest,
        /// The root it was checked against.
        wanted: Sha256Digest,
    },
    /// The record and path do not lead to the header's node digest.
    #[error(
        "node {id}'s record and audit path do not lead to the node digest {digest} of the header"
    )]
    PathMismatch {
        /// The node the proof is about.
        id: Id,
        /// The header's node digest.
        digest: Sha256Digest,
    },
    /// The record breaks the rules a state's records follow.
    #[error("node {id}'s record is not one a state can hold: {detail}")]
    BadRecord {
        /// The node.
        id: Id,
        /// What is wrong.
        detail: String,
    },
}

impl NodeProof {
    /// The proof that `id` is in `state`, or `None` if it is not.
    pub fn of(state: &State, id: &Id) -> Option<NodeProof> {
        let index = state.node_tree.position(id)?;
        let h = state.header_digests();
        Some(NodeProof {
            kind: NodeProofKind,
            root: state.root(),
            header: StateHeader {
                kind: StateKind,
                network_id: h.network_id.clone(),
                epoch: h.epoch,
                params: h.params.clone(),
                threshold: h.threshold,
                approvers: h.approvers,
                nodes: h.nodes,
                policy: h.policy.copied(),
            },
            node: state.node(id)?.clone(),
            index: Uint::new(index as u64).ok()?,
            path: state
                .node_tree
                .path(index)
                .into_iter()
                .map(Sha256Digest)
                .collect(),
        })
    }

    /// Checks the proof against `root`: the header hashes to it, and the record's leaf with
    /// the audit path leads to the header's node digest (RFC 9162 §2.1.3.2).
    pub fn verify(&self, root: &Sha256Digest) -> Result<(), ProofError> {
        let computed = self.header.root();
        if computed != self.root {
            return Err(ProofError::HeaderMismatch {
                computed,
                named: self.root,
            });
        }
        if self.root != *root {
            return Err(ProofError::OtherRoot {
                proof: self.root,
                wanted: *root,
            });
        }
        check_node_shape(&self.node, &self.header.params).map_err(|detail| {
            ProofError::BadRecord {
                id: self.node.id.clone(),
                detail,
            }
        })?;
        let leaf = merkle::leaf_hash(&root::leaf(&self.node));
        let path: Vec<merkle::Hash> = self.path.iter().map(|h| h.0).collect();
        let size = self.header.nodes.count as u64;
        match merkle::root_from_path(&leaf, self.index.get(), size, &path) {
            Some(r) if r == self.header.nodes.digest.0 => Ok(()),
            _ => Err(ProofError::PathMismatch {
                id: self.node.id.clone(),
                digest: self.header.nodes.digest,
            }),
        }
    }
}
