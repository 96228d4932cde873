//! The plan: what the node should look like, computed from the verified ledger and the
//! node's configuration alone (pure, no I/O). A plan that is not trusted says why.

use ipnet::IpNet;

use super::config::NodeConfig;
use crate::ledger::model::NodeStatus;
use crate::ledger::store::{Mode, Store};
use crate::ledger::types::{Cidr, Id, Sha256Digest, TransportKey};
use crate::policy::compile::{ForwardRule, InboundRule};
use crate::policy::{PinnedPolicy, compile};
use crate::tunnel::{ExitRoute, PeerConfig, RouteIntent};

/// What the node should look like, computed from the ledger alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// `None` when trusted, else why restricted.
    pub restricted: Option<String>,
    /// The node's own overlay addresses, with the overlay prefix length.
    pub addresses: Vec<IpNet>,
    /// Peers by id.
    pub peers: Vec<(Id, PeerConfig)>,
    /// Inbound filter rules.
    pub inbound: Vec<InboundRule>,
    /// Forward filter rules.
    pub forward: Vec<ForwardRule>,
    /// Ledger epoch and root the plan comes from.
    pub epoch: u64,
    /// The ledger root.
    pub root: Option<Sha256Digest>,
    /// The pinned policy, if any.
    pub policy: Option<Sha256Digest>,
    /// The compiler's notes.
    pub notes: Vec<String>,
    /// Routes through the interface (router prefixes, exit default route, forwarding).
    pub routes: RouteIntent,
    /// Prefixes this node offers as a router (when it opted in).
    pub routes_offered: Vec<Cidr>,
    /// Prefixes used through routers: (prefix, router, rule).
    pub routes_used: Vec<(Cidr, Id, usize)>,
    /// The exit in use and the rule granting it.
    pub exit: Option<(Id, usize)>,
    /// Why internet traffic is blocked, when an exit is chosen but not usable.
    pub exit_blocked: Option<String>,
    /// Masquerade forwarded traffic.
    pub masquerade: bool,
    /// This node's transport key as the ledger holds it (none when restricted).
    pub key: Option<TransportKey>,
    /// The ledger distribution this node serves (spec §5a), when it serves.
    pub serve: Option<Serve>,
    /// Each peer's overlay host addresses (where it serves the ledger).
    pub peer_addresses: Vec<(Id, Vec<std::net::IpAddr>)>,
}

/// Serving the ledger on the overlay: the port, and who may connect to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Serve {
    /// The TCP port (`serve_port`).
    pub port: u16,
    /// The host addresses of every other active member.
    pub members: Vec<Cidr>,
}

impl Plan {
    /// A restricted plan: no peers, no addresses, a drop-all filter.
    pub fn restricted(reason: String, epoch: u64, root: Option<Sha256Digest>) -> Plan {
        Plan {
            restricted: Some(reason),
            addresses: Vec::new(),
            peers: Vec::new(),
            inbound: Vec::new(),
            forward: Vec::new(),
            epoch,
            root,
            policy: None,
            notes: Vec::new(),
            routes: RouteIntent::default(),
            routes_offered: Vec::new(),
            routes_used: Vec::new(),
            exit: None,
            exit_blocked: None,
            masquerade: false,
            key: None,
            serve: None,
            peer_addresses: Vec::new(),
        }
    }

    /// A chosen exit stays in force on a restricted plan: its blackhole, nothing through it.
    /// Internet traffic leaves in the clear only after `rn node exit off`.
    pub fn holding_exit(mut self, config: &NodeConfig) -> Plan {
        if let (Some(id), Some(_)) = (&config.exit, &self.restricted) {
            self.routes.exit = Some(ExitRoute {
                mark: config.fwmark,
                through: false,
                mesh: Vec::new(),
                allow_lan: config.exit_allow_lan,
            });
            self.exit_blocked = Some(blocked(format!(
                "this node is restricted, so exit {id} is not used"
            )));
        }
        self
    }
}

/// The status line of a chosen exit that is not usable.
fn blocked(why: String) -> String {
    format!("{why}: internet traffic blocked; rn node exit off to use the local network")
}

/// Why the chosen exit `id` is not usable at this epoch (the compiler granted no exit).
fn unusable(id: &Id, state: &crate::ledger::model::State, epoch: u64) -> String {
    blocked(match state.node(id) {
        None => format!("exit {id} is not in the ledger at epoch {epoch}"),
        Some(n) if n.status == NodeStatus::Revoked => format!("exit {id} revoked at epoch {epoch}"),
        Some(n) if n.status == NodeStatus::Quarantined => {
            format!("exit {id} quarantined at epoch {epoch}")
        }
        Some(n) if !n.exit => {
            format!("exit {id} is not an exit node at epoch {epoch} (exit: false)")
        }
        Some(_) => format!("no policy rule grants this node exit {id} at epoch {epoch}"),
    })
}

/// The plan for `config`'s node from an opened store (or the reason it could not be opened).
/// A chosen exit's policy routing is in every plan, restricted or not.
pub fn plan(config: &NodeConfig, store: Result<&Store, String>) -> Plan {
    plan_for(config, store).holding_exit(config)
}

fn plan_for(config: &NodeConfig, store: Result<&Store, String>) -> Plan {
    let store = match store {
        Ok(s) => s,
        Err(reason) => return Plan::restricted(reason, 0, None),
    };
    let state = store.state();
    let (epoch, root) = (state.epoch().get(), Some(state.root()));
    if let Mode::Restricted(r) = store.mode() {
        return Plan::restricted(format!("ledger restricted: {r}"), epoch, root);
    }
    let Some(me) = state.node(&config.node_id) else {
        return Plan::restricted(
            format!("node {} is not in the ledger (yet)", config.node_id),
            epoch,
            root,
        );
    };
    if me.status != NodeStatus::Active {
        let s = if me.status == NodeStatus::Revoked {
            "revoked"
        } else {
            "quarantined"
        };
        return Plan::restricted(
            format!("this node ({}) is {s} in the ledger", config.node_id),
            epoch,
            root,
        );
    }
    let pinned = match PinnedPolicy::load(store) {
        Ok(p) => p,
        Err(e) => {
            return Plan::restricted(format!("reading the pinned policy: {e}"), epoch, root);
        }
    };
    let intents = compile(pinned.view(), state, &config.node_id, config.exit.as_ref());
    let params = state.params();
    let addresses = me
        .addresses
        .iter()
        .filter_map(|a| {
            let overlay = params.overlay_for(a)?;
            IpNet::new(a.net().addr(), overlay.net().prefix_len()).ok()
        })
        .collect();
    let keepalive = (config.keepalive_secs > 0).then_some(config.keepalive_secs);
    let host_addresses = |id: &Id| -> Vec<std::net::IpAddr> {
        state
            .node(id)
            .map(|n| n.addresses.iter().map(|a| a.net().addr()).collect())
            .unwrap_or_default()
    };
    let peer_addresses = intents
        .peers
        .iter()
        .map(|p| (p.id.clone(), host_addresses(&p.id)))
        .collect();
    let serve = (config.serve_port != 0).then(|| Serve {
        port: config.serve_port,
        members: state
            .nodes()
            .filter(|n| n.status == NodeStatus::Active && n.id != config.node_id)
            .flat_map(|n| n.addresses.iter().copied())
            .collect(),
    });
    let peers = intents
        .peers
        .iter()
        .map(|p| {
            (
                p.id.clone(),
                PeerConfig {
                    pubkey: p.pubkey,
                    allowed: p.allowed.clone(),
                    endpoint: config.endpoints.get(&p.id).copied(),
                    keepalive,
                },
            )
        })
        .collect();
    // Forwarding only where this node opted in and the ledger grants the capability.
    let serve_routes = config.serve_routes && !me.routes.is_empty();
    let serve_exit = config.serve_exit && me.exit;
    let forward: Vec<ForwardRule> = intents
        .forward
        .into_iter()
        .filter(|f| match f.to {
            crate::policy::compile::ForwardTo::Prefixes(_) => serve_routes,
            crate::policy::compile::ForwardTo::Internet => serve_exit,
        })
        .collect();
    let mut prefixes: Vec<Cidr> = intents.routes_used.iter().map(|(p, _, _)| *p).collect();
    prefixes.sort();
    prefixes.dedup();
    let exit = intents.exit.as_ref().map(|e| (e.node.clone(), e.rule));
    // The mesh's own destinations stay out of the exit's table: the overlay, the prefixes
    // reached through routers, and the prefixes this node serves as a router itself.
    let exit_route = config.exit.as_ref().map(|_| ExitRoute {
        mark: config.fwmark,
        through: exit.is_some(),
        mesh: [params.overlay_v4, params.overlay_v6]
            .into_iter()
            .flatten()
            .chain(prefixes.iter().copied())
            .chain(me.routes.iter().copied().filter(|_| serve_routes))
            .collect(),
        allow_lan: config.exit_allow_lan,
    });
    let exit_blocked = match (&config.exit, &exit) {
        (Some(id), None) => Some(unusable(id, state, epoch)),
        _ => None,
    };
    let mut notes = intents.notes;
    if config.serve_routes && me.routes.is_empty() {
        notes.push("serve_routes is on, but the ledger grants this node no routes".into());
    }
    if config.serve_exit && !me.exit {
        notes.push("serve_exit is on, but the ledger does not give this node exit: true".into());
    }
    Plan {
        restricted: None,
        addresses,
        peers,
        inbound: intents.inbound,
        forward,
        epoch,
        root,
        policy: state.policy().copied(),
        notes,
        routes: RouteIntent {
            prefixes,
            exit: exit_route,
            forwarding: serve_routes || serve_exit,
        },
        routes_offered: if serve_routes {
            me.routes.iter().copied().collect()
        } else {
            Vec::new()
        },
        routes_used: intents.routes_used,
        exit,
        exit_blocked,
        masquerade: config.masquerade && (serve_routes || serve_exit),
        key: Some(me.pubkey),
        serve,
        peer_addresses,
    }
}
