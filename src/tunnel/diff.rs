//! The difference between an interface as read back and as it should be, as data.
//!
//! Like `wg syncconf`, rn never re-sends what the interface already holds: a peer that is the
//! same on both sides is not part of the diff and so is never touched, its session and
//! counters untouched. The port, the key and the mark appear only when they differ. A peer
//! with no static endpoint keeps whatever endpoint it learned from its packets.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use ipnet::IpNet;

use super::{InterfaceIntent, Observed, ObservedPeer, PeerConfig};
use crate::ledger::types::TransportKey;

/// What of one existing peer differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerField {
    /// The allowed prefixes.
    AllowedIps,
    /// The static endpoint.
    Endpoint,
    /// The persistent keepalive.
    Keepalive,
}

/// One peer that exists on the interface but differs from the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerChange {
    /// The peer as it should be.
    pub peer: PeerConfig,
    /// What differs.
    pub fields: Vec<PeerField>,
    /// The endpoint the interface holds for it (learned from its packets, or set before).
    pub learned: Option<SocketAddr>,
}

/// Everything that must change for the interface to hold the plan; empty when it does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// The interface does not exist: create it (all of the plan is then in the diff).
    pub create: bool,
    /// The interface holds another private key (or none).
    pub private_key: bool,
    /// The listen port to set, when it differs.
    pub listen_port: Option<u16>,
    /// The firewall mark to set, when it differs (0 clears it).
    pub fwmark: Option<u32>,
    /// The MTU to set, when it differs.
    pub mtu: Option<u32>,
    /// The link is down: bring it up.
    pub set_up: bool,
    /// Addresses to add.
    pub add_addresses: Vec<IpNet>,
    /// Addresses to remove.
    pub remove_addresses: Vec<IpNet>,
    /// Peers to add, sorted by key.
    pub added: Vec<PeerConfig>,
    /// Peers to change, sorted by key.
    pub changed: Vec<PeerChange>,
    /// Peers to remove, sorted.
    pub removed: Vec<TransportKey>,
    /// Peers to remove whose allowed prefixes pass to a peer being added or changed (a node
    /// re-keyed): removed only after that peer is in place, so its traffic never meets a gap.
    pub handed_over: Vec<TransportKey>,
}

fn sorted(p: &PeerConfig) -> Vec<crate::ledger::types::Cidr> {
    let mut v = p.allowed.clone();
    v.sort();
    v.dedup();
    v
}

impl PeerChange {
    fn between(want: &PeerConfig, have: &ObservedPeer) -> Option<PeerChange> {
        let mut fields = Vec::new();
        if sorted(want) != have.allowed {
            fields.push(PeerField::AllowedIps);
        }
        // Endpoints are not compared: WireGuard moves a peer's endpoint to wherever its
        // packets come from (roaming), so a difference is no drift. A static endpoint is
        // sent when the plan changes it ([`Diff::send_endpoints`]).
        if want.keepalive.filter(|&k| k > 0) != have.keepalive {
            fields.push(PeerField::Keepalive);
        }
        (!fields.is_empty()).then(|| PeerChange {
            peer: want.clone(),
            fields,
            learned: have.endpoint,
        })
    }
}

impl Diff {
    /// What must change for `have` to become `want`.
    pub fn between(have: &Observed, want: &InterfaceIntent<'_>) -> Diff {
        if !have.present {
            let mut added = want.peers.clone();
            added.sort_by_key(|p| p.pubkey);
            return Diff {
                create: true,
                private_key: true,
                listen_port: Some(want.listen_port),
                fwmark: want.fwmark,
                mtu: Some(want.mtu),
                add_addresses: want.addresses.clone(),
                added,
                ..Diff::default()
            };
        }
        let mut d = Diff {
            private_key: have.public_key != Some(want.key.public()),
            listen_port: (have.listen_port != want.listen_port).then_some(want.listen_port),
            fwmark: (have.fwmark != want.fwmark.filter(|&m| m != 0))
                .then(|| want.fwmark.unwrap_or(0)),
            mtu: (have.mtu != Some(want.mtu)).then_some(want.mtu),
            set_up: !have.up,
            add_addresses: want
                .addresses
                .iter()
                .filter(|a| !have.addresses.contains(a))
                .copied()
                .collect(),
            remove_addresses: have
                .addresses
                .iter()
                .filter(|a| !want.addresses.contains(a))
                .copied()
                .collect(),
            ..Diff::default()
        };
        let have_peers: HashMap<&TransportKey, &ObservedPeer> =
            have.peers.iter().map(|o| (&o.pubkey, o)).collect();
        for p in &want.peers {
            match have_peers.get(&p.pubkey) {
                None => d.added.push(p.clone()),
                Some(o) => d.changed.extend(PeerChange::between(p, o)),
            }
        }
        let wanted: HashSet<&TransportKey> = want.peers.iter().map(|p| &p.pubkey).collect();
        let incoming: HashSet<&crate::ledger::types::Cidr> = d
            .added
            .iter()
            .chain(d.changed.iter().map(|c| &c.peer))
            .flat_map(|p| &p.allowed)
            .collect();
        for o in have.peers.iter().filter(|o| !wanted.contains(&o.pubkey)) {
            if o.allowed.iter().any(|a| incoming.contains(a)) {
                d.handed_over.push(o.pubkey);
            } else {
                d.removed.push(o.pubkey);
            }
        }
        d.added.sort_by_key(|p| p.pubkey);
        d.changed.sort_by_key(|c| c.peer.pubkey);
        d.removed.sort();
        d.handed_over.sort();
        d
    }

    /// Also sends the static endpoints of `peers` (the plan changed them since it was last
    /// applied) to those of them the interface already holds.
    pub fn send_endpoints(&mut self, have: &Observed, peers: &[PeerConfig]) {
        for p in peers.iter().filter(|p| p.endpoint.is_some()) {
            if let Some(c) = self.changed.iter_mut().find(|c| c.peer.pubkey == p.pubkey) {
                if !c.fields.contains(&PeerField::Endpoint) {
                    c.fields.push(PeerField::Endpoint);
                }
            } else if let Some(o) = have.peers.iter().find(|o| o.pubkey == p.pubkey)
                && o.endpoint != p.endpoint
            {
                self.changed.push(PeerChange {
                    peer: p.clone(),
                    fields: vec![PeerField::Endpoint],
                    learned: o.endpoint,
                });
            }
        }
        self.changed.sort_by_key(|c| c.peer.pubkey);
    }

    /// True when the interface already holds the plan.
    pub fn is_empty(&self) -> bool {
        *self == Diff::default()
    }

    /// True when something beyond the peers changes (key, port, mark: a device-wide setting).
    pub fn device_settings(&self) -> bool {
        self.create || self.private_key || self.listen_port.is_some() || self.fwmark.is_some()
    }

    /// The diff in words, one item per change (for logs and errors).
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.create {
            out.push("interface missing".to_owned());
            return out;
        }
        if self.private_key {
            out.push("private key differs".to_owned());
        }
        if let Some(p) = self.listen_port {
            out.push(format!("listen port (want {p})"));
        }
        if let Some(m) = self.fwmark {
            out.push(format!("fwmark (want {m})"));
        }
        if let Some(m) = self.mtu {
            out.push(format!("mtu (want {m})"));
        }
        if self.set_up {
            out.push("link down".to_owned());
        }
        for a in &self.add_addresses {
            out.push(format!("address {a} missing"));
        }
        for a in &self.remove_addresses {
            out.push(format!("unexpected address {a}"));
        }
        for p in &self.added {
            out.push(format!("peer {} missing", p.pubkey));
        }
        for c in &self.changed {
            let what: Vec<&str> = c
                .fields
                .iter()
                .map(|f| match f {
                    PeerField::AllowedIps => "allowed ips",
                    PeerField::Endpoint => "endpoint",
                    PeerField::Keepalive => "keepalive",
                })
                .collect();
            out.push(format!(
                "peer {} differs in {}",
                c.peer.pubkey,
                what.join(", ")
            ));
        }
        for k in self.removed.iter().chain(&self.handed_over) {
            out.push(format!("unexpected peer {k}"));
        }
        out
    }

    /// A short count of the diff: `+2 ~1 -0 peer(s)` and the device-wide items.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "+{} ~{} -{} peer(s)",
            self.added.len(),
            self.changed.len(),
            self.removed.len() + self.handed_over.len()
        );
        if self.create {
            s.push_str(", interface created");
            return s;
        }
        let addresses = !(self.add_addresses.is_empty() && self.remove_addresses.is_empty());
        for (changed, what) in [
            (self.private_key, "key"),
            (self.listen_port.is_some(), "port"),
            (self.fwmark.is_some(), "fwmark"),
            (self.mtu.is_some(), "mtu"),
            (self.set_up, "link up"),
            (addresses, "addresses"),
        ] {
            if changed {
                s.push_str(", ");
                s.push_str(what);
            }
        }
        s
    }
}
