//! The ledger state (spec §4.2): approvers, nodes, threshold, params and the pinned policy.
//!
//! A [`State`] can only be built through checks: decoding validates every invariant, and the
//! only way to change one is [`State::apply`] with a [`Transition`](super::reduce::Transition)
//! the reducer produced. It caches each node record's leaf hash and the node list's Merkle tree,
//! so a one-op update re-hashes one record and its path in the tree (spec §4).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::canonical::{kind_marker, required};
use super::merkle;
use super::root;
use super::types::{ApproverKey, Cidr, Id, Owner, Sha256Digest, Tag, TransportKey, Uint};

kind_marker!(
    /// `rn.state.v1`
    StateKind = "rn.state.v1"
);

/// A set kept sorted and free of duplicates. Decoding takes exactly that form: a duplicate or
/// an entry out of order is refused, so the list read is the list signed (spec §3.4).
#[derive(Clone, PartialEq, Eq)]
pub struct Set<T>(Vec<T>);

impl<T> Default for Set<T> {
    fn default() -> Self {
        Set(Vec::new())
    }
}

impl<T: Ord> Set<T> {
    /// Sorts, refusing duplicates (the duplicate is returned).
    pub fn new(mut items: Vec<T>) -> Result<Self, T> {
        items.sort();
        for i in 1..items.len() {
            if items[i - 1] == items[i] {
                return Err(items.swap_remove(i));
            }
        }
        Ok(Set(items))
    }

    /// The items, sorted.
    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Membership.
    pub fn contains(&self, item: &T) -> bool {
        self.0.binary_search(item).is_ok()
    }
}

impl<T: fmt::Debug> fmt::Debug for Set<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(&self.0).finish()
    }
}

impl<T: Serialize> Serialize for Set<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de> + Ord + fmt::Display> Deserialize<'de> for Set<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<T>::deserialize(d)?;
        check_order(&items, |t| t).map_err(serde::de::Error::custom)?;
        Ok(Set(items))
    }
}

/// Refuses a list that is not strictly ascending by `key`: names the duplicate, or the pair
/// out of order.
pub(crate) fn check_order<T, K: Ord + fmt::Display + ?Sized>(
    items: &[T],
    key: impl Fn(&T) -> &K,
) -> Result<(), String> {
    for pair in items.windows(2) {
        let (a, b) = (key(&pair[0]), key(&pair[1]));
        match a.cmp(b) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => return Err(format!("duplicate entry {a}")),
            std::cmp::Ordering::Greater => {
                return Err(format!("entries out of order: {b} must come before {a}"));
            }
        }
    }
    Ok(())
}

/// Node status (spec §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// May hold peers, subject to policy.
    Active,
    /// Cut off; may be restored by quorum.
    Revoked,
    /// Temporarily cut off.
    Quarantined,
}

/// Approver role: owners can sign governance changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Signs anything; required for governance updates.
    Owner,
    /// Counts toward the threshold.
    Guardian,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Owner => "owner",
            Role::Guardian => "guardian",
        })
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "owner" => Ok(Role::Owner),
            "guardian" => Ok(Role::Guardian),
            _ => Err(format!("role {s:?} must be owner or guardian")),
        }
    }
}

/// Approver status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApproverStatus {
    /// Signatures count.
    Active,
    /// Signatures reject the update.
    Revoked,
}

/// One approver record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approver {
    /// Unique id.
    pub id: Id,
    /// Ed25519 public key (unique across approvers).
    pub pubkey: ApproverKey,
    /// Every key this approver held before `pubkey`, sorted. No key — current or previous, of
    /// any approver — is ever given to an approver again (spec §3.5).
    pub previous_keys: Set<ApproverKey>,
    /// Owner or guardian.
    pub role: Role,
    /// Active or revoked.
    pub status: ApproverStatus,
}

impl Approver {
    /// Active owner?
    pub fn is_active_owner(&self) -> bool {
        self.status == ApproverStatus::Active && self.role == Role::Owner
    }
}

/// One node record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Unique id.
    pub id: Id,
    /// Transport public key (unique across nodes).
    pub pubkey: TransportKey,
    /// Who answers for the node.
    pub owner: Owner,
    /// Active, revoked or quarantined.
    pub status: NodeStatus,
    /// Tags for policy selectors.
    pub tags: Set<Tag>,
    /// Overlay host addresses (unique across nodes, inside the overlay).
    pub addresses: Set<Cidr>,
    /// Prefixes it may serve as a subnet router.
    pub routes: Set<Cidr>,
    /// May serve as an exit node.
    pub exit: bool,
    /// `created_at` of the update that added it.
    pub joined_at: Uint,
    /// `created_at` of the last update that changed it.
    pub updated_at: Uint,
}

/// Network parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// IPv4 overlay range, or null.
    #[serde(deserialize_with = "required")]
    pub overlay_v4: Option<Cidr>,
    /// IPv6 overlay range, or null.
    #[serde(deserialize_with = "required")]
    pub overlay_v6: Option<Cidr>,
    /// Longest validity an update may claim (60 s – 30 days).
    pub max_update_ttl_secs: Uint,
    /// Tolerated clock difference for future-dated updates (≤ 600 s).
    pub clock_skew_secs: Uint,
}

/// Range of `max_update_ttl_secs`.
pub const TTL_RANGE: std::ops::RangeInclusive<u64> = 60..=30 * 86_400;
/// Largest `clock_skew_secs`.
pub const MAX_SKEW: u64 = 600;

impl Params {
    /// Checks ranges and overlay families. The error says which field is wrong.
    pub fn check(&self) -> Result<(), String> {
        if !TTL_RANGE.contains(&self.max_update_ttl_secs.get()) {
            return Err(format!(
                "max_update_ttl_secs {} is outside 60 s - 30 days",
                self.max_update_ttl_secs
            ));
        }
        if self.clock_skew_secs.get() > MAX_SKEW {
            return Err(format!(
                "clock_skew_secs {} is above {MAX_SKEW}",
                self.clock_skew_secs
            ));
        }
        match (&self.overlay_v4, &self.overlay_v6) {
            (None, None) => return Err("at least one overlay range must be set".into()),
            (Some(v4), _) if !v4.is_v4() || v4.is_host() => {
                return Err(format!("overlay_v4 {v4} is not an IPv4 range"));
            }
            (_, Some(v6)) if v6.is_v4() || v6.is_host() => {
                return Err(format!("overlay_v6 {v6} is not an IPv6 range"));
            }
            _ => {}
        }
        Ok(())
    }

    /// The overlay range of `addr`'s family, if set.
    pub fn overlay_for(&self, addr: &Cidr) -> Option<&Cidr> {
        if addr.is_v4() {
            self.overlay_v4.as_ref()
        } else {
            self.overlay_v6.as_ref()
        }
    }
}

/// A node record with its cached leaf hash.
#[derive(Clone, Debug)]
pub(crate) struct NodeEntry {
    pub(crate) node: Node,
    pub(crate) leaf: [u8; 32],
}

impl NodeEntry {
    pub(crate) fn new(node: Node) -> Self {
        let leaf = root::leaf(&node);
        NodeEntry { node, leaf }
    }
}

/// The ledger state at one epoch.
#[derive(Clone)]
pub struct State {
    pub(crate) network_id: Id,
    pub(crate) epoch: Uint,
    pub(crate) params: Params,
    pub(crate) threshold: Uint,
    pub(crate) approvers: BTreeMap<Id, Approver>,
    pub(crate) nodes: BTreeMap<Id, NodeEntry>,
    pub(crate) policy: Option<Sha256Digest>,
    /// Cached: which node holds each address, and each transport key.
    pub(crate) address_index: HashMap<Cidr, Id>,
    pub(crate) key_index: HashMap<TransportKey, Id>,
    /// Cached: the approver-list digest, and the node list's Merkle tree (spec §4).
    pub(crate) approvers_digest: root::ListDigest,
    pub(crate) node_tree: root::NodeTree,
    pub(crate) root: Sha256Digest,
}

impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        self.root == other.root
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("network_id", &self.network_id)
            .field("epoch", &self.epoch)
            .field("approvers", &self.approvers.len())
            .field("nodes", &self.nodes.len())
            .field("root", &self.root)
            .finish()
    }
}

impl State {
    /// Builds and checks a state from its parts (spec §4.2 invariants).
    pub fn new(
        network_id: Id,
        epoch: Uint,
        params: Params,
        threshold: Uint,
        approvers: Vec<Approver>,
        nodes: Vec<Node>,
        policy: Option<Sha256Digest>,
    ) -> Result<State, String> {
        let mut amap = BTreeMap::new();
        for a in approvers {
            let id = a.id.clone();
            if amap.insert(id.clone(), a).is_some() {
                return Err(format!("duplicate approver id {id}"));
            }
        }
        let mut nmap = BTreeMap::new();
        for n in nodes {
            let id = n.id.clone();
            if nmap.insert(id.clone(), NodeEntry::new(n)).is_some() {
                return Err(format!("duplicate node id {id}"));
            }
        }
        let mut state = State {
            network_id,
            epoch,
            params,
            threshold,
            approvers: amap,
            nodes: nmap,
            policy,
            address_index: HashMap::new(),
            key_index: HashMap::new(),
            approvers_digest: root::digest_records(std::iter::empty()),
            node_tree: root::NodeTree::build([]),
            root: Sha256Digest([0; 32]),
        };
        state.params.check()?;
        check_approver_keys(&state.approvers)?;
        check_quorum_reachable(&state.approvers, state.threshold)?;
        for entry in state.nodes.values() {
            check_node_shape(&entry.node, &state.params)?;
            let id = &entry.node.id;
            for a in entry.node.addresses.iter() {
                if let Some(other) = state.address_index.insert(*a, id.clone()) {
                    return Err(format!("address {a} is held by both {other} and {id}"));
                }
            }
            if let Some(other) = state.key_index.insert(entry.node.pubkey, id.clone()) {
                return Err(format!(
                    "transport key {} is held by both {other} and {id}",
                    entry.node.pubkey
                ));
            }
        }
        state.refresh_digests();
        Ok(state)
    }

    /// The network id.
    pub fn network_id(&self) -> &Id {
        &self.network_id
    }

    /// The epoch (0 for genesis).
    pub fn epoch(&self) -> Uint {
        self.epoch
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The signature threshold.
    pub fn threshold(&self) -> Uint {
        self.threshold
    }

    /// The pinned policy hash.
    pub fn policy(&self) -> Option<&Sha256Digest> {
        self.policy.as_ref()
    }

    /// The state root (spec §4.3), cached.
    pub fn root(&self) -> Sha256Digest {
        self.root
    }

    /// Approvers in id order.
    pub fn approvers(&self) -> impl ExactSizeIterator<Item = &Approver> {
        self.approvers.values()
    }

    /// One approver.
    pub fn approver(&self, id: &Id) -> Option<&Approver> {
        self.approvers.get(id)
    }

    /// Nodes in id order.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &Node> {
        self.nodes.values().map(|e| &e.node)
    }

    /// One node.
    pub fn node(&self, id: &Id) -> Option<&Node> {
        self.nodes.get(id).map(|e| &e.node)
    }

    /// The node holding an overlay address.
    pub fn node_with_address(&self, addr: &Cidr) -> Option<&Id> {
        self.address_index.get(addr)
    }

    /// Count of active approvers.
    pub fn active_approvers(&self) -> usize {
        count_active(&self.approvers)
    }

    /// The canonical header bytes the root hashes (spec §4.3), for auditors.
    pub fn header_bytes(&self) -> Vec<u8> {
        super::canonical::to_jcs(&self.header_digests())
    }

    /// Each node's leaf hash, in id order.
    pub fn node_leaves(&self) -> impl Iterator<Item = (&Id, [u8; 32])> {
        self.nodes.iter().map(|(id, e)| (id, e.leaf))
    }

    /// Each approver's leaf hash, in id order.
    pub fn approver_leaves(&self) -> impl Iterator<Item = (&Id, [u8; 32])> {
        self.approvers.iter().map(|(id, a)| (id, root::leaf(a)))
    }

    pub(crate) fn header_digests(&self) -> root::Header<'_> {
        root::Header {
            kind: StateKind,
            network_id: &self.network_id,
            epoch: self.epoch,
            params: &self.params,
            threshold: self.threshold,
            approvers: self.approvers_digest,
            nodes: root::tree_digest(&self.node_tree),
            policy: self.policy.as_ref(),
        }
    }

    /// Recomputes the cached digests and the root from the records (construction and commit).
    pub(crate) fn refresh_digests(&mut self) {
        self.approvers_digest = root::digest_records(self.approvers.values().map(root::leaf));
        self.node_tree = root::NodeTree::build(
            self.nodes
                .iter()
                .map(|(id, e)| (id.clone(), merkle::leaf_hash(&e.leaf))),
        );
        self.root = root::state_root(&self.header_digests());
    }
}

pub(crate) fn count_active(approvers: &BTreeMap<Id, Approver>) -> usize {
    approvers
        .values()
        .filter(|a| a.status == ApproverStatus::Active)
        .count()
}

/// A key is never reused (spec §3.5): every key any approver holds or has held — current or
/// previous, active or revoked — appears once in the whole list.
pub(crate) fn check_approver_keys(approvers: &BTreeMap<Id, Approver>) -> Result<(), String> {
    let mut keys = HashMap::new();
    for a in approvers.values() {
        let held = std::iter::once((a.pubkey, "current"))
            .chain(a.previous_keys.iter().map(|k| (*k, "previous")));
        for (key, how) in held {
            if let Some((other, other_how)) = keys.insert(key, (&a.id, how)) {
                return Err(if *other == a.id {
                    format!(
                        "key {key} was approver {}'s key before: a key is never reused",
                        a.id
                    )
                } else {
                    format!(
                        "key {key} is {how} key of approver {} and {other_how} key of approver {other}: a key is never reused",
                        a.id
                    )
                });
            }
        }
    }
    Ok(())
}

/// The quorum stays reachable: 1 ≤ threshold ≤ active approvers, and an active owner remains
/// (spec §4.2, §4.4).
pub(crate) fn check_quorum_reachable(
    approvers: &BTreeMap<Id, Approver>,
    threshold: Uint,
) -> Result<(), String> {
    let active = count_active(approvers) as u64;
    if threshold.get() == 0 {
        return Err("threshold must be at least 1".into());
    }
    if threshold.get() > active {
        return Err(format!(
            "threshold {threshold} is above the {active} active approvers"
        ));
    }
    if !approvers.values().any(Approver::is_active_owner) {
        return Err("no active owner would remain".into());
    }
    Ok(())
}

/// Per-node invariants that need no other node: addresses are hosts inside the overlay,
/// routes do not overlap the overlay.
pub(crate) fn check_node_shape(node: &Node, params: &Params) -> Result<(), String> {
    for a in node.addresses.iter() {
        if !a.is_host() {
            return Err(format!(
                "address {a} of {} is not a host prefix (/32 or /128)",
                node.id
            ));
        }
        match params.overlay_for(a) {
            Some(range) if range.net().contains(&a.net()) => {}
            Some(range) => {
                return Err(format!(
                    "address {a} of {} is outside the overlay {range}",
                    node.id
                ));
            }
            None => {
                return Err(format!(
                    "address {a} of {} has no overlay range of its family",
                    node.id
                ));
            }
        }
    }
    for r in node.routes.iter() {
        let overlay = [params.overlay_v4, params.overlay_v6];
        if let Some(range) = overlay
            .iter()
            .flatten()
            .find(|o| o.net().contains(&r.net()) || r.net().contains(&o.net()))
        {
            return Err(format!(
                "route {r} of {} overlaps the overlay {range}",
                node.id
            ));
        }
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateWire {
    kind: StateKind,
    network_id: Id,
    epoch: Uint,
    params: Params,
    threshold: Uint,
    approvers: Vec<Approver>,
    nodes: Vec<Node>,
    #[serde(deserialize_with = "required")]
    policy: Option<Sha256Digest>,
}

#[derive(Serialize)]
struct StateRef<'a> {
    kind: StateKind,
    network_id: &'a Id,
    epoch: Uint,
    params: &'a Params,
    threshold: Uint,
    approvers: Vec<&'a Approver>,
    nodes: Vec<&'a Node>,
    policy: Option<&'a Sha256Digest>,
}

impl Serialize for State {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StateRef {
            kind: StateKind,
            network_id: &self.network_id,
            epoch: self.epoch,
            params: &self.params,
            threshold: self.threshold,
            approvers: self.approvers.values().collect(),
            nodes: self.nodes().collect(),
            policy: self.policy.as_ref(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for State {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = StateWire::deserialize(d)?;
        let invalid = |e: String| serde::de::Error::custom(format_args!("invalid state: {e}"));
        check_order(&w.approvers, |a| &a.id).map_err(|e| invalid(format!("approvers: {e}")))?;
        check_order(&w.nodes, |n| &n.id).map_err(|e| invalid(format!("nodes: {e}")))?;
        State::new(
            w.network_id,
            w.epoch,
            w.params,
            w.threshold,
            w.approvers,
            w.nodes,
            w.policy,
        )
        .map_err(|e| serde::de::Error::custom(format_args!("invalid state: {e}")))
    }
}
