//! The two-level state root (spec §4.3).
//!
//! ```text
//! leaf(record)    = SHA-256(JCS(record))
//! digest(records) = SHA-256(leaf_1 ‖ … ‖ leaf_n)        (id order; n = 0 → SHA-256(""))
//! state_root      = "sha256:" + hex(SHA-256(JCS(header)))
//! ```
//! where the header is the state object with `approvers` and `nodes` each replaced by
//! `{"count": n, "digest": "sha256:<hex>"}`.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::canonical::to_jcs;
use super::model::{NodeEntry, Params, StateKind};
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

/// Leaves between two hasher checkpoints (32 leaves = 1 KiB = 16 SHA-256 blocks).
const CHECKPOINT_EVERY: usize = 32;

/// The node-list digest of a state, with the SHA-256 state saved every few leaves so that a
/// change re-hashes only the leaves from the checkpoint before the first changed id onwards.
/// The result is exactly `digest(records)` of spec §4.3; the checkpoints are a cache.
#[derive(Clone)]
pub(crate) struct NodeDigest {
    /// `(id of the first leaf not yet absorbed, hasher state)`, in id order.
    checkpoints: Vec<(Id, Sha256)>,
    pub(crate) digest: ListDigest,
}

impl std::fmt::Debug for NodeDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeDigest")
            .field("digest", &self.digest)
            .field("checkpoints", &self.checkpoints.len())
            .finish()
    }
}

impl NodeDigest {
    /// Hashes every leaf of `nodes`.
    pub(crate) fn build(nodes: &BTreeMap<Id, NodeEntry>) -> Self {
        let mut h = Sha256::new();
        let mut checkpoints = Vec::with_capacity(nodes.len() / CHECKPOINT_EVERY + 1);
        for (i, (id, e)) in nodes.iter().enumerate() {
            if i.is_multiple_of(CHECKPOINT_EVERY) && i > 0 {
                checkpoints.push((id.clone(), h.clone()));
            }
            h.update(e.leaf);
        }
        NodeDigest {
            checkpoints,
            digest: ListDigest {
                count: nodes.len(),
                digest: Sha256Digest(h.finalize().into()),
            },
        }
    }

    /// Brings the cache up to date after the records from `first` onwards changed: keeps the
    /// checkpoints before it and re-hashes the rest.
    pub(crate) fn update_from(&mut self, nodes: &BTreeMap<Id, NodeEntry>, first: &Id) {
        let at = self.checkpoints.partition_point(|(id, _)| id <= first);
        self.checkpoints.truncate(at);
        let (mut h, lower) = match self.checkpoints.last() {
            Some((id, h)) => (h.clone(), Bound::Included(id.clone())),
            None => (Sha256::new(), Bound::Unbounded),
        };
        let mut count = at * CHECKPOINT_EVERY;
        let mut run = Run::default();
        for (id, e) in nodes.range::<Id, _>((lower.as_ref(), Bound::Unbounded)) {
            if count.is_multiple_of(CHECKPOINT_EVERY) && count > at * CHECKPOINT_EVERY {
                run.flush(&mut h);
                self.checkpoints.push((id.clone(), h.clone()));
            }
            run.push(&mut h, &e.leaf);
            count += 1;
        }
        run.flush(&mut h);
        self.digest = ListDigest {
            count,
            digest: Sha256Digest(h.finalize().into()),
        };
    }

    /// The node-list digest of `base` overlaid with `changed` (`None` = removed): hashing
    /// resumes at the last checkpoint before the first changed id. Leaves are gathered into
    /// runs so SHA-256 compresses many blocks per call.
    pub(crate) fn with_changes(
        &self,
        base: &BTreeMap<Id, NodeEntry>,
        changed: &BTreeMap<Id, Option<NodeEntry>>,
    ) -> ListDigest {
        let Some(first) = changed.keys().next() else {
            return self.digest;
        };
        let at = self.checkpoints.partition_point(|(id, _)| id <= first);
        let (mut h, mut lower) = match at.checked_sub(1).map(|i| &self.checkpoints[i]) {
            Some((id, h)) => (h.clone(), Bound::Included(id)),
            None => (Sha256::new(), Bound::Unbounded),
        };
        let mut run = Run::default();
        let mut count = at * CHECKPOINT_EVERY;
        for (id, entry) in changed {
            for (_, e) in base.range::<Id, _>((lower, Bound::Excluded(id))) {
                run.push(&mut h, &e.leaf);
                count += 1;
            }
            if let Some(e) = entry {
                run.push(&mut h, &e.leaf);
                count += 1;
            }
            lower = Bound::Excluded(id);
        }
        for (_, e) in base.range::<Id, _>((lower, Bound::Unbounded)) {
            run.push(&mut h, &e.leaf);
            count += 1;
        }
        run.flush(&mut h);
        ListDigest {
            count,
            digest: Sha256Digest(h.finalize().into()),
        }
    }
}

/// A buffer of leaves fed to SHA-256 in 4 KiB runs.
struct Run {
    buf: [u8; 4096],
    len: usize,
}

impl Default for Run {
    fn default() -> Self {
        Run {
            buf: [0; 4096],
            len: 0,
        }
    }
}

impl Run {
    fn push(&mut self, h: &mut Sha256, leaf: &[u8; 32]) {
        if self.len == self.buf.len() {
            self.flush(h);
        }
        self.buf[self.len..self.len + 32].copy_from_slice(leaf);
        self.len += 32;
    }

    fn flush(&mut self, h: &mut Sha256) {
        h.update(&self.buf[..self.len]);
        self.len = 0;
    }
}
