//! The reducer: a pure function of a state and an update's ops (spec §4.4 op semantics).
//!
//! It never reads a clock and never mutates its input. It returns a [`Transition`] — only the
//! records that change plus the new scalar fields and the recomputed root — so one op on a
//! 10,000-node state re-hashes one record and its path in the node tree, not the whole state.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use super::error::{IllegalOpKind, Rejection};
use super::merkle;
use super::model::StateKind;
use super::model::{
    Approver, ApproverStatus, Node, NodeEntry, NodeStatus, Params, Set, State, check_approver_keys,
    check_node_shape, check_quorum_reachable,
};
use super::root::{self, Header};
use super::types::{ApproverKey, Cidr, Id, Sha256Digest, TransportKey, Uint};
use super::update::{Op, Update};

/// The effect of one update on one state: changed node records (`None` = removed), the full
/// approver set, the new scalars and the resulting root.
#[derive(Clone, Debug)]
pub struct Transition {
    pub(crate) prev_root: Sha256Digest,
    pub(crate) epoch: Uint,
    pub(crate) nodes: BTreeMap<Id, Option<NodeEntry>>,
    /// The new approver set, or `None` when no op changed it.
    pub(crate) approvers: Option<BTreeMap<Id, Approver>>,
    pub(crate) threshold: Uint,
    pub(crate) params: Params,
    pub(crate) policy: Option<Sha256Digest>,
    pub(crate) approvers_digest: root::ListDigest,
    pub(crate) nodes_digest: root::ListDigest,
    pub(crate) root: Sha256Digest,
}

impl Transition {
    /// The root of the resulting state.
    pub fn root(&self) -> Sha256Digest {
        self.root
    }
}

struct Draft<'a> {
    base: &'a State,
    nodes: BTreeMap<Id, Option<Node>>,
    /// Copied on the first op that changes an approver.
    approvers: Cow<'a, BTreeMap<Id, Approver>>,
    threshold: Uint,
    params: Params,
    policy: Option<Sha256Digest>,
    params_changed: bool,
}

impl<'a> Draft<'a> {
    fn node(&self, id: &Id) -> Option<&Node> {
        match self.nodes.get(id) {
            Some(changed) => changed.as_ref(),
            None => self.base.node(id),
        }
    }

    fn node_mut(&mut self, id: &Id) -> Option<&mut Node> {
        if !self.nodes.contains_key(id) {
            let current = self.base.node(id)?.clone();
            self.nodes.insert(id.clone(), Some(current));
        }
        self.nodes.get_mut(id).and_then(Option::as_mut)
    }
}

/// Applies `update.ops` in order to `state`. Checks each op's legality, then every invariant of
/// spec §4.2 on the result, and computes the new root. Does not check signatures, epochs or
/// time: that is the gate's job.
pub fn reduce(state: &State, update: &Update) -> Result<Transition, Rejection> {
    let mut d = Draft {
        base: state,
        nodes: BTreeMap::new(),
        approvers: Cow::Borrowed(&state.approvers),
        threshold: state.threshold,
        params: state.params.clone(),
        policy: state.policy,
        params_changed: false,
    };
    let at = update.created_at;
    // Each approver gets at most one new key per update: one proof of possession proves one
    // key (spec §4.5.1).
    let mut keyed = std::collections::HashSet::new();
    for (index, op) in update.ops.iter().enumerate() {
        if let Some((id, _)) = op.new_approver_key()
            && !keyed.insert(id)
        {
            return Err(Rejection::IllegalOp {
                index,
                op: op.name(),
                kind: IllegalOpKind::KeyHistory,
                reason: format!("approver {id} already gets a new key in this update"),
            });
        }
    }
    for (index, op) in update.ops.iter().enumerate() {
        apply_op(&mut d, op, at).map_err(|(kind, reason)| Rejection::IllegalOp {
            index,
            op: op.name(),
            kind,
            reason,
        })?;
    }
    finish(d, update.epoch_new)
}

/// Why an op is illegal: its kind and the words.
type Illegal = (IllegalOpKind, String);

fn no_node(id: &Id) -> Illegal {
    (IllegalOpKind::NotFound, format!("no node {id}"))
}

fn no_approver(id: &Id) -> Illegal {
    (IllegalOpKind::NotFound, format!("no approver {id}"))
}

fn apply_op(d: &mut Draft<'_>, op: &Op, at: Uint) -> Result<(), Illegal> {
    use IllegalOpKind::*;
    match op {
        Op::AddNode { node } => {
            if d.node(&node.id).is_some() {
                return Err((AlreadyExists, format!("node {} already exists", node.id)));
            }
            if node.status != NodeStatus::Active {
                return Err((WrongStatus, "a new node must be active".into()));
            }
            if node.joined_at != at || node.updated_at != at {
                return Err((
                    WrongTime,
                    format!("joined_at and updated_at must equal the update's created_at {at}"),
                ));
            }
            d.nodes.insert(node.id.clone(), Some(node.clone()));
        }
        Op::RemoveNode { id } => {
            if d.node(id).is_none() {
                return Err(no_node(id));
            }
            d.nodes.insert(id.clone(), None);
        }
        Op::RevokeNode { id } => move_status(
            d,
            id,
            at,
            &[NodeStatus::Active, NodeStatus::Quarantined],
            NodeStatus::Revoked,
        )?,
        Op::QuarantineNode { id } => {
            move_status(d, id, at, &[NodeStatus::Active], NodeStatus::Quarantined)?
        }
        Op::RestoreNode { id } => move_status(
            d,
            id,
            at,
            &[NodeStatus::Revoked, NodeStatus::Quarantined],
            NodeStatus::Active,
        )?,
        Op::RotateNodeKey { id, pubkey } => {
            let node = d.node_mut(id).ok_or_else(|| no_node(id))?;
            if node.pubkey == *pubkey {
                return Err((NoChange, format!("node {id} already has this key")));
            }
            node.pubkey = *pubkey;
            node.updated_at = at;
        }
        Op::SetNode {
            id,
            tags,
            addresses,
            routes,
            exit,
        } => {
            if tags.is_none() && addresses.is_none() && routes.is_none() && exit.is_none() {
                return Err((NoChange, "set_node must name at least one field".into()));
            }
            let node = d.node_mut(id).ok_or_else(|| no_node(id))?;
            let unchanged = tags.as_ref().is_none_or(|t| *t == node.tags)
                && addresses.as_ref().is_none_or(|a| *a == node.addresses)
                && routes.as_ref().is_none_or(|r| *r == node.routes)
                && exit.is_none_or(|e| e == node.exit);
            if unchanged {
                return Err((NoChange, format!("set_node changes nothing on node {id}")));
            }
            if let Some(t) = tags {
                node.tags = t.clone();
            }
            if let Some(a) = addresses {
                node.addresses = a.clone();
            }
            if let Some(r) = routes {
                node.routes = r.clone();
            }
            if let Some(e) = exit {
                node.exit = *e;
            }
            node.updated_at = at;
        }
        Op::AddApprover { approver } => {
            if d.approvers.contains_key(&approver.id) {
                return Err((
                    AlreadyExists,
                    format!("approver {} already exists", approver.id),
                ));
            }
            if approver.status != ApproverStatus::Active {
                return Err((WrongStatus, "a new approver must be active".into()));
            }
            if !approver.previous_keys.is_empty() {
                return Err((KeyHistory, "a new approver has no previous keys".into()));
            }
            d.approvers
                .to_mut()
                .insert(approver.id.clone(), approver.clone());
        }
        Op::RevokeApprover { id } => {
            let a = d
                .approvers
                .to_mut()
                .get_mut(id)
                .ok_or_else(|| no_approver(id))?;
            if a.status != ApproverStatus::Active {
                return Err((WrongStatus, format!("approver {id} is already revoked")));
            }
            a.status = ApproverStatus::Revoked;
        }
        Op::RotateApproverKey { id, pubkey } => {
            let a = d
                .approvers
                .to_mut()
                .get_mut(id)
                .ok_or_else(|| no_approver(id))?;
            if a.status != ApproverStatus::Active {
                return Err((WrongStatus, format!("approver {id} is revoked")));
            }
            if a.pubkey == *pubkey {
                return Err((NoChange, format!("approver {id} already has this key")));
            }
            // Reuse of any key, this approver's own retired ones included, is refused by the
            // invariant check after the ops (InvariantViolated).
            let mut previous: Vec<ApproverKey> = a.previous_keys.iter().copied().collect();
            previous.push(a.pubkey);
            a.previous_keys = Set::new(previous)
                .map_err(|k| (KeyHistory, format!("approver {id} holds key {k} twice")))?;
            a.pubkey = *pubkey;
        }
        Op::SetThreshold { threshold } => {
            if *threshold == d.threshold {
                return Err((NoChange, format!("threshold is already {threshold}")));
            }
            d.threshold = *threshold;
        }
        Op::SetPolicy { policy } => {
            if *policy == d.policy {
                return Err((NoChange, "this policy is already pinned".into()));
            }
            d.policy = *policy;
        }
        Op::SetParams { params } => {
            params.check().map_err(|reason| (BadParams, reason))?;
            if *params == d.params {
                return Err((NoChange, "these params are already set".into()));
            }
            d.params = params.clone();
            d.params_changed = true;
        }
    }
    Ok(())
}

fn move_status(
    d: &mut Draft<'_>,
    id: &Id,
    at: Uint,
    from: &[NodeStatus],
    to: NodeStatus,
) -> Result<(), Illegal> {
    let node = d.node_mut(id).ok_or_else(|| no_node(id))?;
    if !from.contains(&node.status) {
        return Err((
            IllegalOpKind::WrongStatus,
            format!(
                "node {id} is {}; this op needs it {}",
                status_word(node.status),
                from.iter()
                    .map(|s| status_word(*s))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        ));
    }
    node.status = to;
    node.updated_at = at;
    Ok(())
}

fn status_word(s: NodeStatus) -> &'static str {
    match s {
        NodeStatus::Active => "active",
        NodeStatus::Revoked => "revoked",
        NodeStatus::Quarantined => "quarantined",
    }
}

/// Checks the §4.2 invariants on the draft and builds the transition.
fn finish(d: Draft<'_>, epoch: Uint) -> Result<Transition, Rejection> {
    let invariant = |reason: String| Rejection::InvariantViolated { reason };
    // The base state meets the approver invariants; only a change can break them.
    let approvers_changed = matches!(d.approvers, Cow::Owned(_));
    if approvers_changed || d.threshold != d.base.threshold {
        check_quorum_reachable(&d.approvers, d.threshold)
            .map_err(|reason| Rejection::QuorumUnreachable { reason })?;
        check_approver_keys(&d.approvers).map_err(invariant)?;
    }

    // Node shape: only changed nodes, unless the overlay itself changed.
    let changed = d.nodes.values().flatten();
    if d.params_changed {
        for n in d.base.nodes().filter(|n| !d.nodes.contains_key(&n.id)) {
            check_node_shape(n, &d.params).map_err(invariant)?;
        }
    }
    for n in changed.clone() {
        check_node_shape(n, &d.params).map_err(invariant)?;
    }

    // Uniqueness of addresses and transport keys: a changed node may clash with an unchanged
    // node (found through the base indexes) or with another changed node.
    let unchanged_holder = |holder: Option<&Id>, me: &Id| -> Option<Id> {
        holder
            .filter(|h| *h != me && !d.nodes.contains_key(*h))
            .cloned()
    };
    let mut addrs: HashMap<Cidr, &Id> = HashMap::new();
    let mut keys: HashMap<TransportKey, &Id> = HashMap::new();
    for n in changed {
        for a in n.addresses.iter() {
            let other = unchanged_holder(d.base.address_index.get(a), &n.id)
                .or_else(|| addrs.insert(*a, &n.id).cloned());
            if let Some(other) = other {
                return Err(invariant(format!(
                    "address {a} would be held by both {other} and {}",
                    n.id
                )));
            }
        }
        let other = unchanged_holder(d.base.key_index.get(&n.pubkey), &n.id)
            .or_else(|| keys.insert(n.pubkey, &n.id).cloned());
        if let Some(other) = other {
            return Err(invariant(format!(
                "transport key {} would be held by both {other} and {}",
                n.pubkey, n.id
            )));
        }
    }

    let nodes: BTreeMap<Id, Option<NodeEntry>> = d
        .nodes
        .into_iter()
        .map(|(id, n)| (id, n.map(NodeEntry::new)))
        .collect();
    let (count, digest) = d.base.node_tree.root_with(&tree_changes(&nodes));
    let node_digest = root::ListDigest {
        count,
        digest: Sha256Digest(digest),
    };
    let approvers = match d.approvers {
        Cow::Owned(a) if a != d.base.approvers => Some(a),
        _ => None,
    };
    let approvers_digest = match &approvers {
        None => d.base.approvers_digest,
        Some(a) => root::digest_records(a.values().map(root::leaf)),
    };
    let header = Header {
        kind: StateKind,
        network_id: &d.base.network_id,
        epoch,
        params: &d.params,
        threshold: d.threshold,
        approvers: approvers_digest,
        nodes: node_digest,
        policy: d.policy.as_ref(),
    };
    let new_root = root::state_root(&header);
    Ok(Transition {
        prev_root: d.base.root,
        epoch,
        nodes,
        approvers,
        threshold: d.threshold,
        params: d.params,
        policy: d.policy,
        approvers_digest,
        nodes_digest: node_digest,
        root: new_root,
    })
}

/// The node tree's changes: each changed id with its new leaf hash, or `None` if removed.
fn tree_changes(nodes: &BTreeMap<Id, Option<NodeEntry>>) -> Vec<merkle::Change<'_, Id>> {
    nodes
        .iter()
        .map(|(id, e)| (id, e.as_ref().map(|e| merkle::leaf_hash(&e.leaf))))
        .collect()
}

impl State {
    /// Applies a transition made from this exact state (crate-internal: committed paths go
    /// through the gate's `VerifiedUpdate`).
    pub(crate) fn apply(&mut self, t: Transition) {
        assert_eq!(
            t.prev_root, self.root,
            "a transition applies only to the state it was computed from"
        );
        self.node_tree.apply(&tree_changes(&t.nodes));
        assert_eq!(
            root::tree_digest(&self.node_tree),
            t.nodes_digest,
            "the committed node list hashes to what the gate verified"
        );
        // Two passes: an address or key may move between two changed nodes.
        for id in t.nodes.keys() {
            if let Some(old) = self.nodes.remove(id) {
                for a in old.node.addresses.iter() {
                    self.address_index.remove(a);
                }
                self.key_index.remove(&old.node.pubkey);
            }
        }
        for (id, entry) in t.nodes {
            if let Some(new) = entry {
                for a in new.node.addresses.iter() {
                    self.address_index.insert(*a, id.clone());
                }
                self.key_index.insert(new.node.pubkey, id.clone());
                self.nodes.insert(id, new);
            }
        }
        self.epoch = t.epoch;
        if let Some(approvers) = t.approvers {
            self.approvers = approvers;
        }
        self.threshold = t.threshold;
        self.params = t.params;
        self.policy = t.policy;
        self.approvers_digest = t.approvers_digest;
        self.root = t.root;
    }

    /// The state after `t`, leaving `self` as it is (previews: propose, sign, verify).
    pub fn preview(&self, t: &Transition) -> State {
        let mut s = self.clone();
        s.apply(t.clone());
        s
    }
}
