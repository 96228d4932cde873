//! The two-level state root (spec §4.3).
//!
//! ```text
//! leaf(record)    = SHA-256(JCS(record))
//! digest(records) = SHA-256(leaf_1 ‖ … ‖ leaf_n)        (id order; n = 0 → SHA-256(""))
//! state_root      = "sha256:" + hex(SHA-256(JCS(header)))
//! ```
//! where the header is the state object with `approvers` and `nodes` each replaced by
//! `{"count": n, "digest": "sha256:<hex>"}`.

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::canonical::to_jcs;
use super::model::{Params, StateKind};
use super::types::{Id, Sha256Digest, Uint};

/// `SHA-256(JCS(record))`.
pub fn leaf<T: Serialize + ?Sized>(record: &T) -> [u8; 32] {
    Sha256::digest(to_jcs(record)).into()
}

/// Count and digest of one record list, as it appears in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ListDigest {
    /// Number of records.
    pub count: usize,
    /// `SHA-256(leaf_1 ‖ … ‖ leaf_n)`.
    pub digest: Sha256Digest,
}

/// Digests leaves given in id order.
pub fn digest_records(leaves: impl Iterator<Item = [u8; 32]>) -> ListDigest {
    let mut h = Sha256::new();
    let mut count = 0;
    for l in leaves {
        h.update(l);
        count += 1;
    }
    ListDigest {
        count,
        digest: Sha256Digest(h.finalize().into()),
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
