//! The two-level state root (spec §4).
//!
//! ```text
//! leaf(record)    = SHA-256(JCS(record))
//! digest(records) = MTH(leaf_1 … leaf_n)      RFC 9162 §2.1, records in id order
//! state_root      = "sha256:" + hex(SHA-256(JCS(header)))
//! ```
//! where the header is the state object with `approvers` and `nodes` each replaced by
//! `{"count": n, "digest": "sha256:<hex>"}`.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::canonical::to_jcs;
use super::merkle;
use super::model::{Params, StateKind};
use super::types::{Id, Sha256Digest, Uint};

/// `SHA-256(JCS(record))`.
pub fn leaf<T: Serialize + ?Sized>(record: &T) -> [u8; 32] {
    Sha256::digest(to_jcs(record)).into()
}

/// Count and digest of one record list, as it appears in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListDigest {
    /// Number of records.
    pub count: usize,
    /// `MTH(leaf_1 … leaf_n)`.
    pub digest: Sha256Digest,
}

/// Digests record leaves given in id order, from scratch.
pub fn digest_records(leaves: impl Iterator<Item = [u8; 32]>) -> ListDigest {
    let hashes: Vec<merkle::Hash> = leaves.map(|l| merkle::leaf_hash(&l)).collect();
    ListDigest {
        count: hashes.len(),
        digest: Sha256Digest(merkle::root_of(&hashes)),
    }
}

/// The node list's tree (leaf hashes in id order, every complete subtree cached): a change
/// re-hashes only the paths it touches.
pub(crate) type NodeTree = merkle::Tree<Id>;

/// The header digest of a node tree.
pub(crate) fn tree_digest(tree: &NodeTree) -> ListDigest {
    ListDigest {
        count: tree.len(),
        digest: Sha256Digest(tree.root()),
    }
}

/// The header object that the root hashes.
#[derive(Serialize)]
pub struct Header<'a> {
    pub(crate) kind: StateKind,
    pub(crate) network_id: &'a Id,
    pub(crate) epoch: Uint,
    pub(crate) params: &'a Params,
    pub(crate) threshold: Uint,
    pub(crate) approvers: ListDigest,
    pub(crate) nodes: ListDigest,
    pub(crate) policy: Option<&'a Sha256Digest>,
}

/// `SHA-256(JCS(header))`.
pub fn state_root(header: &Header<'_>) -> Sha256Digest {
    Sha256Digest(leaf(header))
}
