//! Evaluation: may this node reach that node, prefix or the internet, on this protocol and
//! port? Default deny; membership first (spec §4.9).

use std::fmt;

use super::model::{Dest, Policy, Proto, Selector, Via};
use crate::ledger::model::{Node, NodeStatus, State};
use crate::ledger::types::{Cidr, Id, Sha256Digest};

/// The policy a node evaluates with, as its ledger and policy store stand.
#[derive(Clone, Copy, Debug)]
pub enum PolicyView<'a> {
    /// The ledger pins no policy: nothing is allowed.
    None,
    /// The ledger pins a policy this node does not hold (or holds with another hash).
    Missing(&'a Sha256Digest),
    /// The pinned policy, held and hash-checked.
    Held(&'a Policy),
}

/// What is being asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A node of the mesh.
    Node(Id),
    /// An address or prefix behind a subnet router.
    Prefix(Cidr),
    /// The internet, through an exit node.
    Internet,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Node(id) => write!(f, "node {id}"),
            Target::Prefix(c) => write!(f, "{c}"),
            Target::Internet => f.write_str("internet"),
        }
    }
}

/// One question for [`evaluate`].
#[derive(Clone, Debug)]
pub struct Query {
    /// The sending node.
    pub from: Id,
    /// Where to.
    pub to: Target,
    /// Protocol (`any` asks whether every protocol is allowed).
    pub proto: Proto,
    /// Port (none asks whether every port is allowed).
    pub port: Option<u16>,
}

/// Why traffic is denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DenyReason {
    /// The ledger pins no policy.
    NoPolicy,
    /// The ledger pins a policy this node does not hold.
    PolicyNotHeld(Sha256Digest),
    /// A node the ledger does not know.
    UnknownNode(Id),
    /// A node that is revoked or quarantined.
    NotActive(Id, NodeStatus),
    /// A router or exit grant exists but no active node has the ledger capability.
    CapabilityMissing(String),
    /// No rule allows it.
    NoRule,
    /// The question itself does not make sense.
    BadQuery(String),
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DenyReason::NoPolicy => f.write_str("no policy is pinned by the ledger (default deny)"),
            DenyReason::PolicyNotHeld(h) => write!(
                f,
                "the ledger pins policy {h}, which this node does not hold"
            ),
            DenyReason::UnknownNode(id) => write!(f, "node {id} is unknown to the ledger"),
            DenyReason::NotActive(id, s) => write!(
                f,
                "node {id} is {}",
                match s {
                    NodeStatus::Active => "active",
                    NodeStatus::Revoked => "revoked",
                    NodeStatus::Quarantined => "quarantined",
                }
            ),
            DenyReason::CapabilityMissing(why) => write!(f, "capability missing: {why}"),
            DenyReason::NoRule => f.write_str("no rule allows it"),
            DenyReason::BadQuery(why) => f.write_str(why),
        }
    }
}

impl DenyReason {
    /// Stable name for `--json`.
    pub fn name(&self) -> &'static str {
        match self {
            DenyReason::NoPolicy => "no_policy",
            DenyReason::PolicyNotHeld(_) => "policy_not_held",
            DenyReason::UnknownNode(_) => "unknown_node",
            DenyReason::NotActive(_, NodeStatus::Revoked) => "node_revoked",
            DenyReason::NotActive(..) => "node_quarantined",
            DenyReason::CapabilityMissing(_) => "capability_missing",
            DenyReason::NoRule => "no_rule",
            DenyReason::BadQuery(_) => "bad_query",
        }
    }
}

/// The answer: allowed by a rule, or denied with a reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by the rule at this index.
    Allow {
        /// 0-based rule index.
        rule: usize,
    },
    /// Denied.
    Deny(DenyReason),
}

/// Does `sel` select `node`? Only active nodes are ever selected.
pub fn selects(sel: &Selector, node: &Node) -> bool {
    node.status == NodeStatus::Active
        && match sel {
            Selector::All => true,
            Selector::Node(id) => node.id == *id,
            Selector::Tag(t) => node.tags.contains(t),
            Selector::Owner(o) => node.owner == *o,
        }
}

fn active<'a>(state: &'a State, id: &Id) -> Result<&'a Node, DenyReason> {
    let n = state
        .node(id)
        .ok_or_else(|| DenyReason::UnknownNode(id.clone()))?;
    if n.status != NodeStatus::Active {
        return Err(DenyReason::NotActive(id.clone(), n.status));
    }
    Ok(n)
}

/// Decides one query. Membership comes first: an unknown, revoked or quarantined node is
/// denied whatever the rules say; then the first rule whose context, selectors, protocol and
/// port all match allows it; a router or exit grant also needs the ledger capability.
pub fn evaluate(view: PolicyView<'_>, state: &State, q: &Query) -> Decision {
    match decide(view, state, q) {
        Ok(rule) => Decision::Allow { rule },
        Err(r) => Decision::Deny(r),
    }
}

fn decide(view: PolicyView<'_>, state: &State, q: &Query) -> Result<usize, DenyReason> {
    // Membership first, then the policy.
    let from = active(state, &q.from)?;
    if let Target::Node(to) = &q.to {
        active(state, to)?;
    }
    let policy = match view {
        PolicyView::None => return Err(DenyReason::NoPolicy),
        PolicyView::Missing(h) => return Err(DenyReason::PolicyNotHeld(*h)),
        PolicyView::Held(p) => p,
    };
    if let Target::Node(to) = &q.to
        && active(state, to)?.id == from.id
    {
        return Err(DenyReason::BadQuery(
            "a node does not reach itself through the mesh".into(),
        ));
    }
    let mut capability = None;
    for (i, rule) in policy.rules.iter().enumerate() {
        if !rule.src.iter().any(|s| selects(s, from)) || !rule.allows(q.proto, q.port) {
            continue;
        }
        match (&q.to, rule.via) {
            (Target::Node(to), None) => {
                let to = active(state, to)?;
                if rule
                    .dst
                    .iter()
                    .any(|d| matches!(d, Dest::Nodes(s) if selects(s, to)))
                {
                    return Ok(i);
                }
            }
            (Target::Prefix(x), Some(Via::Router)) => {
                let granted = rule
                    .dst
                    .iter()
                    .any(|d| matches!(d, Dest::Prefix(p) if p.net().contains(&x.net())));
                if !granted {
                    continue;
                }
                let served = state.nodes().any(|n| {
                    n.status == NodeStatus::Active
                        && n.id != from.id
                        && n.routes.iter().any(|r| r.net().contains(&x.net()))
                });
                if served {
                    return Ok(i);
                }
                capability = Some(format!("no active node's ledger routes cover {x}"));
            }
            (Target::Internet, Some(Via::Exit)) => {
                let exit = state
                    .nodes()
                    .any(|n| n.status == NodeStatus::Active && n.id != from.id && n.exit);
                if exit {
                    return Ok(i);
                }
                capability = Some("no active node has exit: true in the ledger".into());
            }
            _ => {}
        }
    }
    Err(capability.map_or(DenyReason::NoRule, DenyReason::CapabilityMissing))
}
