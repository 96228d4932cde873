//! The proposal editor (spec §4.4): a builder that turns a base state and the ops an operator
//! asks for into an `rn.proposal.v1` — `base → ops → ttl → reason → build`.
//!
//! It fills in what rn decides (an update id, times, the lowest free overlay address for a
//! node added without one, the roots), reads batch files with the relaxations of §4.4, and
//! refuses a proposal the gate would refuse, with the reducer's reason. The command line is a
//! thin shell over it.

use std::collections::HashSet;
use std::net::IpAddr;

use super::canonical::decode_value;
use super::carried::PinnedDoc;
use super::error::{DecodeError, Rejection};
use super::model::{Approver, ApproverStatus, Node, NodeStatus, Role, Set, State};
use super::reduce::reduce;
use super::types::{
    ApproverKey, Cidr, Id, Owner, Reason, Sha256Digest, Tag, TransportKey, Uint, UpdateId,
};
use super::update::{MAX_OPS, Op, Proposal, ProposalKind, Update, UpdateKind};

/// The validity a proposal gets when none is asked for: one hour.
pub const DEFAULT_TTL_SECS: u64 = 3600;

/// Why a proposal cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// What was asked cannot make a proposal (no op, too many, a TTL out of range, no free
    /// address).
    #[error("{0}")]
    Invalid(String),
    /// A batch file does not decode: as a whole (`op` is `None`) or its op number `op` (from 1).
    #[error("{}{error}", op.map(|n| format!("op #{n}: ")).unwrap_or_default())]
    Batch {
        /// The op, from 1, when one op is at fault.
        op: Option<usize>,
        /// Why.
        #[source]
        error: DecodeError,
    },
    /// The gate would refuse the update on its base (the reducer's reason).
    #[error("the proposal would be rejected: {0}")]
    Rejected(#[source] Rejection),
    /// The documents carried do not match what the update pins.
    #[error("{0}")]
    Documents(String),
    /// No randomness for the update id.
    #[error("no randomness for the update id: {0}")]
    Random(String),
}

/// Builds one proposal against one base state.
#[derive(Debug)]
pub struct ProposalBuilder {
    base: State,
    created_at: Uint,
    ops: Vec<Op>,
    /// Indices of `add_node` ops whose address rn assigns.
    unaddressed: Vec<usize>,
    ttl: u64,
    reason: Reason,
    documents: Vec<PinnedDoc>,
    current: Option<PinnedDoc>,
}

impl ProposalBuilder {
    /// Starts a proposal on `base`, created at `created_at` (unix seconds).
    pub fn new(base: State, created_at: Uint) -> ProposalBuilder {
        ProposalBuilder {
            base,
            created_at,
            ops: Vec::new(),
            unaddressed: Vec::new(),
            ttl: DEFAULT_TTL_SECS,
            reason: Reason::default(),
            documents: Vec::new(),
            current: None,
        }
    }

    /// The state the proposal builds on.
    pub fn base(&self) -> &State {
        &self.base
    }

    /// The update's `created_at`.
    pub fn created_at(&self) -> Uint {
        self.created_at
    }

    /// Adds an op as given.
    pub fn op(&mut self, op: Op) -> &mut Self {
        self.ops.push(op);
        self
    }

    /// Adds an `add_node` for `node`, which must have no addresses: the lowest free host of
    /// the overlay is assigned at [`ProposalBuilder::build`].
    pub fn add_node_unaddressed(&mut self, node: Node) -> &mut Self {
        self.unaddressed.push(self.ops.len());
        self.ops.push(Op::AddNode { node });
        self
    }

    /// A `set_policy` pinning `doc`, which the proposal carries so signers can read it.
    pub fn set_policy(&mut self, doc: PinnedDoc) -> &mut Self {
        self.ops.push(Op::SetPolicy {
            policy: Some(doc.hash()),
        });
        self.documents.push(doc);
        self
    }

    /// Carries the document the base pins (when the proposer holds it), so a signer can see a
    /// policy change rule by rule. Ignored unless the base pins exactly this document.
    pub fn carry_current(&mut self, doc: PinnedDoc) -> &mut Self {
        if self.base.policy() == Some(&doc.hash()) {
            self.current = Some(doc);
        }
        self
    }

    /// Adds the ops of a batch file: a JSON array of ops in the wire format of spec §4.4,
    /// decoded as strictly as any rn document, except that an `add_node`'s record may leave
    /// out `status` (active), `joined_at`/`updated_at` (the update's time), `tags`/`routes`
    /// (none), `exit` (false) and `addresses` (assigned), and an `add_approver`'s record
    /// `status` (active) and `previous_keys` (none). Returns how many ops it added.
    pub fn batch(&mut self, bytes: &[u8]) -> Result<usize, BuildError> {
        let what = "batch file";
        let items: Vec<Box<serde_json::value::RawValue>> =
            decode_value(what, bytes).map_err(|error| BuildError::Batch { op: None, error })?;
        for (i, item) in items.iter().enumerate() {
            let at_op = |error| BuildError::Batch {
                op: Some(i + 1),
                error,
            };
            self.batch_op(what, item.get().as_bytes()).map_err(at_op)?;
        }
        Ok(items.len())
    }

    fn batch_op(&mut self, what: &'static str, raw: &[u8]) -> Result<(), DecodeError> {
        let name: OpName = serde_json::from_slice(raw).map_err(|e| DecodeError::Malformed {
            what,
            detail: format!("an op is an object with an \"op\" name: {e}"),
        })?;
        match name.op.as_str() {
            "add_approver" => {
                let a = decode_value::<DraftAddApprover>(what, raw)?.approver;
                self.op(Op::AddApprover {
                    approver: Approver {
                        id: a.id,
                        pubkey: a.pubkey,
                        previous_keys: a.previous_keys.unwrap_or_default(),
                        role: a.role,
                        status: a.status.unwrap_or(ApproverStatus::Active),
                    },
                });
            }
            "add_node" => {
                let n = decode_value::<DraftAddNode>(what, raw)?.node;
                let at = self.created_at;
                let node = Node {
                    id: n.id,
                    pubkey: n.pubkey,
                    owner: n.owner,
                    status: n.status.unwrap_or(NodeStatus::Active),
                    tags: n.tags,
                    addresses: n.addresses.clone().unwrap_or_default(),
                    routes: n.routes,
                    exit: n.exit,
                    joined_at: n.joined_at.unwrap_or(at),
                    updated_at: n.updated_at.unwrap_or(at),
                };
                match n.addresses {
                    None => self.add_node_unaddressed(node),
                    Some(_) => self.op(Op::AddNode { node }),
                };
            }
            _ => {
                self.op(decode_value::<Op>(what, raw)?);
            }
        }
        Ok(())
    }

    /// How long the proposal stays valid, in seconds: from 1 to the network's
    /// `max_update_ttl_secs`.
    pub fn ttl(&mut self, secs: u64) -> Result<&mut Self, BuildError> {
        let max = self.base.params().max_update_ttl_secs.get();
        if secs == 0 || secs > max {
            return Err(BuildError::Invalid(format!(
                "a proposal's validity must be between 1 s and the network's max_update_ttl of {max} s, not {secs} s"
            )));
        }
        self.ttl = secs;
        Ok(self)
    }

    /// Why (shown to signers and kept in the log).
    pub fn reason(&mut self, reason: Reason) -> &mut Self {
        self.reason = reason;
        self
    }

    /// Assigns addresses, fills in the update, and checks it as the gate would (every check
    /// but the signatures): a proposal the gate would refuse is not built.
    pub fn build(mut self) -> Result<Proposal, BuildError> {
        if self.ops.is_empty() {
            return Err(BuildError::Invalid(
                "a proposal needs at least one op".into(),
            ));
        }
        if self.ops.len() > MAX_OPS {
            return Err(BuildError::Invalid(format!(
                "{} ops; one update carries at most {MAX_OPS}",
                self.ops.len()
            )));
        }
        assign_addresses(&mut self.ops, &self.unaddressed, &self.base)?;
        let invalid = |e: super::types::ValueError| BuildError::Invalid(e.to_string());
        let base = self.base;
        let mut update = Update {
            kind: UpdateKind,
            network_id: base.network_id().clone(),
            update_id: UpdateId::random().map_err(|e| BuildError::Random(e.to_string()))?,
            epoch_prev: base.epoch(),
            epoch_new: base.epoch().next().map_err(invalid)?,
            prev_root: base.root(),
            new_root: Sha256Digest([0; 32]),
            created_at: self.created_at,
            expires_at: Uint::new(self.created_at.get() + self.ttl).map_err(invalid)?,
            reason: self.reason,
            ops: self.ops,
        };
        // Illegal proposals are refused now, with the reducer's reason.
        update.new_root = reduce(&base, &update).map_err(BuildError::Rejected)?.root();
        // The documents the update pins, then the current one (a signer's diff).
        let mut documents = self.documents;
        documents.extend(self.current);
        documents.dedup_by_key(|d| d.hash());
        let proposal = Proposal {
            kind: ProposalKind,
            update,
            signatures: Vec::new(),
            base_state: base,
            policies: documents,
        };
        proposal.check_policies().map_err(BuildError::Documents)?;
        Ok(proposal)
    }
}

/// Gives each unaddressed `add_node` the lowest free host address of the overlay (IPv4 when
/// set, else IPv6), skipping addresses held in the base or named anywhere in this update.
fn assign_addresses(ops: &mut [Op], unaddressed: &[usize], base: &State) -> Result<(), BuildError> {
    if unaddressed.is_empty() {
        return Ok(());
    }
    let params = base.params();
    let range = params
        .overlay_v4
        .or(params.overlay_v6)
        .ok_or_else(|| {
            BuildError::Invalid("the network has no overlay range to assign addresses from".into())
        })?
        .net();
    let mut taken: HashSet<IpAddr> = base
        .nodes()
        .flat_map(|n| n.addresses.iter().map(|a| a.net().addr()))
        .collect();
    for op in ops.iter() {
        let addrs = match op {
            Op::AddNode { node } => Some(&node.addresses),
            Op::SetNode { addresses, .. } => addresses.as_ref(),
            _ => None,
        };
        taken.extend(
            addrs
                .into_iter()
                .flat_map(|s| s.iter().map(|a| a.net().addr())),
        );
    }
    // Skip the network address, and for IPv4 the broadcast address.
    let mut hosts = range.hosts().filter(|a| *a != range.network());
    for &index in unaddressed {
        let addr = hosts.by_ref().find(|a| !taken.contains(a)).ok_or_else(|| {
            BuildError::Invalid(format!("the overlay {range} has no free address left"))
        })?;
        taken.insert(addr);
        let cidr =
            Cidr::new(ipnet::IpNet::from(addr)).map_err(|e| BuildError::Invalid(e.to_string()))?;
        if let Some(Op::AddNode { node }) = ops.get_mut(index) {
            node.addresses = Set::new(vec![cidr])
                .map_err(|_| BuildError::Invalid("address assigned twice".into()))?;
        }
    }
    Ok(())
}

/// An `add_node` record in a batch file, where everything rn can fill in may be left out.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftNode {
    id: Id,
    pubkey: TransportKey,
    owner: Owner,
    #[serde(default, deserialize_with = "super::canonical::present")]
    status: Option<NodeStatus>,
    #[serde(default)]
    tags: Set<Tag>,
    #[serde(default, deserialize_with = "super::canonical::present")]
    addresses: Option<Set<Cidr>>,
    #[serde(default)]
    routes: Set<Cidr>,
    #[serde(default)]
    exit: bool,
    #[serde(default, deserialize_with = "super::canonical::present")]
    joined_at: Option<Uint>,
    #[serde(default, deserialize_with = "super::canonical::present")]
    updated_at: Option<Uint>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftAddNode {
    op: String,
    node: DraftNode,
}

/// An `add_approver` record in a batch file: `status` (active) and `previous_keys` (none) may
/// be left out.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftApprover {
    id: Id,
    pubkey: ApproverKey,
    #[serde(default, deserialize_with = "super::canonical::present")]
    previous_keys: Option<Set<ApproverKey>>,
    role: Role,
    #[serde(default, deserialize_with = "super::canonical::present")]
    status: Option<ApproverStatus>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DraftAddApprover {
    op: String,
    approver: DraftApprover,
}

/// Only routes an op to its decoder, which then reads the whole op strictly.
#[derive(serde::Deserialize)]
struct OpName {
    op: String,
}
