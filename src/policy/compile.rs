//! Compilation for one node: the protocol-neutral intents its tunnel and firewall apply
//! (spec §4.9) — peers with their allowed source prefixes, inbound filter rules, and, on
//! routers and exits, forward rules. Output is sorted, so it can be diffed and hashed.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::Serialize;

use super::evaluate::{PolicyView, selects};
use super::model::{Dest, PortRange, Proto, Selector, Via};
use crate::ledger::model::{Node, NodeStatus, State};
use crate::ledger::types::{Cidr, Id, TransportKey};

/// One peer this node should have, and the source prefixes accepted from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerIntent {
    /// The peer's node id.
    pub id: Id,
    /// Its transport public key.
    pub pubkey: TransportKey,
    /// Its addresses, plus granted prefixes it routes, plus the default routes if it is this
    /// node's chosen exit.
    pub allowed: Vec<Cidr>,
}

/// Traffic from the mesh to this node that is accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InboundRule {
    /// The policy rule it comes from.
    pub rule: usize,
    /// Source addresses.
    pub from: Vec<Cidr>,
    /// Protocol.
    pub proto: Proto,
    /// Destination ports (empty: all).
    pub ports: Vec<PortRange>,
}

/// Where forwarded traffic may go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardTo {
    /// Prefixes this node routes.
    Prefixes(Vec<Cidr>),
    /// The internet (this node is an exit).
    Internet,
}

/// Traffic from the mesh that this router or exit forwards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ForwardRule {
    /// The policy rule it comes from.
    pub rule: usize,
    /// Source addresses (the granted clients).
    pub from: Vec<Cidr>,
    /// Destination.
    pub to: ForwardTo,
    /// Protocol.
    pub proto: Proto,
    /// Destination ports (empty: all).
    pub ports: Vec<PortRange>,
}

/// The exit this node uses, when its chosen exit is granted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExitUse {
    /// The exit node.
    pub node: Id,
    /// The rule granting it.
    pub rule: usize,
}

/// Everything one node enforces.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Intents {
    /// Peers, by id.
    pub peers: Vec<PeerIntent>,
    /// Inbound filter rules.
    pub inbound: Vec<InboundRule>,
    /// Forward rules (routers and exits only).
    pub forward: Vec<ForwardRule>,
    /// Prefixes this node reaches through routers: (prefix, router, rule).
    pub routes_used: Vec<(Cidr, Id, usize)>,
    /// The exit in use, if the chosen exit is granted.
    pub exit: Option<ExitUse>,
    /// Why the intents are empty or the chosen exit unused, when they are.
    pub notes: Vec<String>,
}

/// A set of active nodes as a bitmap over their position in the state.
#[derive(Clone)]
struct NodeSet(Vec<u64>);

impl NodeSet {
    fn new(n: usize) -> Self {
        NodeSet(vec![0; n.div_ceil(64)])
    }
    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn remove(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn union(&mut self, o: &NodeSet) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            *a |= b;
        }
    }
    fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            (0..64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }
    fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
}

/// The active nodes of a state, indexed for selector resolution.
struct Index<'a> {
    nodes: Vec<&'a Node>,
    all: NodeSet,
    by_tag: BTreeMap<&'a str, NodeSet>,
    by_owner: BTreeMap<&'a str, NodeSet>,
    by_id: BTreeMap<&'a Id, usize>,
}

impl<'a> Index<'a> {
    fn new(state: &'a State) -> Self {
        let nodes: Vec<&Node> = state
            .nodes()
            .filter(|n| n.status == NodeStatus::Active)
            .collect();
        let n = nodes.len();
        let mut all = NodeSet::new(n);
        let mut by_tag: BTreeMap<&str, NodeSet> = BTreeMap::new();
        let mut by_owner: BTreeMap<&str, NodeSet> = BTreeMap::new();
        let mut by_id = BTreeMap::new();
        for (i, node) in nodes.iter().enumerate() {
            all.insert(i);
            by_id.insert(&node.id, i);
            for t in node.tags.iter() {
                by_tag
                    .entry(t.as_str())
                    .or_insert_with(|| NodeSet::new(n))
                    .insert(i);
            }
            by_owner
                .entry(node.owner.as_str())
                .or_insert_with(|| NodeSet::new(n))
                .insert(i);
        }
        Index {
            nodes,
            all,
            by_tag,
            by_owner,
            by_id,
        }
    }

    fn resolve(&self, sels: &[Selector]) -> NodeSet {
        let mut out = NodeSet::new(self.nodes.len());
        for s in sels {
            match s {
                Selector::All => out.union(&self.all),
                Selector::Node(id) => {
                    if let Some(&i) = self.by_id.get(id) {
                        out.insert(i);
                    }
                }
                Selector::Tag(t) => {
                    if let Some(set) = self.by_tag.get(t.as_str()) {
                        out.union(set);
                    }
                }
                Selector::Owner(o) => {
                    if let Some(set) = self.by_owner.get(o.as_str()) {
                        out.union(set);
                    }
                }
            }
        }
        out
    }

    fn addresses(&self, set: &NodeSet) -> Vec<Cidr> {
        let mut v: Vec<Cidr> = set
            .iter()
            .flat_map(|i| self.nodes[i].addresses.iter().copied())
            .collect();
        v.sort();
        v
    }
}

/// The overlap of two prefixes (the smaller one), if any.
fn overlap(a: &Cidr, b: &Cidr) -> Option<Cidr> {
    let (x, y): (IpNet, IpNet) = (a.net(), b.net());
    if x.contains(&y) {
        Some(*b)
    } else if y.contains(&x) {
        Some(*a)
    } else {
        None
    }
}

fn default_routes() -> [Cidr; 2] {
    [
        Cidr::new("0.0.0.0/0".parse().expect("valid prefix")).expect("no host bits"),
        Cidr::new("::/0".parse().expect("valid prefix")).expect("no host bits"),
    ]
}

/// Compiles the intents of node `me`. `exit` is the exit node `me` chose (its config), used
/// only when a rule grants `me` the exit context and that node has `exit: true`.
pub fn compile(view: PolicyView<'_>, state: &State, me: &Id, exit: Option<&Id>) -> Intents {
    let mut out = Intents::default();
    let policy = match view {
        PolicyView::Held(p) => p,
        PolicyView::None => {
            out.notes
                .push("no policy pinned: nothing is allowed".into());
            return out;
        }
        PolicyView::Missing(h) => {
            out.notes.push(format!(
                "the pinned policy {h} is not held: nothing is allowed"
            ));
            return out;
        }
    };
    let Some(node) = state.node(me) else {
        out.notes.push(format!("node {me} is not in the ledger"));
        return out;
    };
    if node.status != NodeStatus::Active {
        out.notes.push(format!("node {me} is not active"));
        return out;
    }
    let idx = Index::new(state);
    let Some(&my) = idx.by_id.get(me) else {
        return out;
    };
    let n = idx.nodes.len();
    let mut peers = NodeSet::new(n);
    let mut extra: BTreeMap<usize, Vec<Cidr>> = BTreeMap::new();
    // A tunnel routes each prefix to one peer: the first router (by id) that covers it.
    let mut routed: BTreeMap<Cidr, usize> = BTreeMap::new();
    let ports = |r: &super::model::Rule| r.ports.clone().unwrap_or_default();

    for (ri, rule) in policy.rules.iter().enumerate() {
        let src_has_me = rule.src.iter().any(|s| selects(s, node));
        match rule.via {
            None => {
                let dst_sels: Vec<Selector> = rule
                    .dst
                    .iter()
                    .filter_map(|d| match d {
                        Dest::Nodes(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                if src_has_me {
                    let mut d = idx.resolve(&dst_sels);
                    d.remove(my);
                    peers.union(&d);
                }
                if dst_sels.iter().any(|s| selects(s, node)) {
                    let mut s = idx.resolve(&rule.src);
                    s.remove(my);
                    if !s.is_empty() {
                        peers.union(&s);
                        out.inbound.push(InboundRule {
                            rule: ri,
                            from: idx.addresses(&s),
                            proto: rule.proto,
                            ports: ports(rule),
                        });
                    }
                }
            }
            Some(Via::Router) => {
                let granted: Vec<Cidr> = rule
                    .dst
                    .iter()
                    .filter_map(|d| match d {
                        Dest::Prefix(c) => Some(*c),
                        _ => None,
                    })
                    .collect();
                if src_has_me {
                    for (pi, p) in idx.nodes.iter().enumerate() {
                        if pi == my {
                            continue;
                        }
                        for g in &granted {
                            for r in p.routes.iter() {
                                if let Some(o) = overlap(g, r) {
                                    if *routed.entry(o).or_insert(pi) != pi {
                                        continue;
                                    }
                                    peers.insert(pi);
                                    extra.entry(pi).or_default().push(o);
                                    out.routes_used.push((o, p.id.clone(), ri));
                                }
                            }
                        }
                    }
                }
                // This node routes: forward for the granted clients.
                let served: Vec<Cidr> = granted
                    .iter()
                    .flat_map(|g| node.routes.iter().filter_map(move |r| overlap(g, r)))
                    .collect();
                if !served.is_empty() {
                    let mut clients = idx.resolve(&rule.src);
                    clients.remove(my);
                    if !clients.is_empty() {
                        peers.union(&clients);
                        let mut to = served;
                        to.sort();
                        to.dedup();
                        out.forward.push(ForwardRule {
                            rule: ri,
                            from: idx.addresses(&clients),
                            to: ForwardTo::Prefixes(to),
                            proto: rule.proto,
                            ports: ports(rule),
                        });
                    }
                }
            }
            Some(Via::Exit) => {
                if src_has_me {
                    for (pi, p) in idx.nodes.iter().enumerate() {
                        if pi != my && p.exit {
                            peers.insert(pi);
                            if out.exit.is_none() && exit == Some(&p.id) {
                                out.exit = Some(ExitUse {
                                    node: p.id.clone(),
                                    rule: ri,
                                });
                                extra.entry(pi).or_default().extend(default_routes());
                            }
                        }
                    }
                }
                if node.exit {
                    let mut clients = idx.resolve(&rule.src);
                    clients.remove(my);
                    if !clients.is_empty() {
                        peers.union(&clients);
                        out.forward.push(ForwardRule {
                            rule: ri,
                            from: idx.addresses(&clients),
                            to: ForwardTo::Internet,
                            proto: rule.proto,
                            ports: ports(rule),
                        });
                    }
                }
            }
        }
    }
    if let Some(e) = exit
        && out.exit.is_none()
    {
        out.notes.push(format!(
            "chosen exit {e} is not granted (no exit rule for this node, or {e} is not an active exit node)"
        ));
    }
    for i in peers.iter() {
        let p = idx.nodes[i];
        let mut allowed: Vec<Cidr> = p.addresses.iter().copied().collect();
        if let Some(more) = extra.get(&i) {
            allowed.extend(more.iter().copied());
        }
        allowed.sort();
        allowed.dedup();
        out.peers.push(PeerIntent {
            id: p.id.clone(),
            pubkey: p.pubkey,
            allowed,
        });
    }
    out.routes_used.sort();
    out.routes_used.dedup();
    out
}
