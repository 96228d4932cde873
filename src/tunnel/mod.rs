//! Tunnel backends: the only code that knows WireGuard. The agent hands them a
//! protocol-neutral [`InterfaceIntent`] and reads back an [`Observed`] state to compare.
//!
//! - `kernel`: kernel WireGuard over netlink;
//! - `userspace`: WireGuard embedded in the agent (boringtun), no external daemon;
//! - `uapi`: an already running userspace implementation (e.g. `wireguard-go`) through its
//!   UAPI socket `/run/wireguard/<ifname>.sock`;
//! - `memory`: records the intent in a JSON file (demo without root, tests).
//!
//! All but `memory` go through `defguard_wireguard_rs`.

mod diff;
mod link;
mod memory;
mod routing;
mod wg;

use std::fmt;
use std::net::SocketAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::keys::NodeSecret;
use crate::ledger::types::{Cidr, TransportKey};

pub use diff::{Diff, PeerChange, PeerField};
pub use memory::Memory;
pub use wg::{WgBackend, WgKind, device_answers, uapi_socket};

/// One peer as the interface should have it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerConfig {
    /// The peer's public key.
    pub pubkey: TransportKey,
    /// Source prefixes accepted from it (and routed to it).
    pub allowed: Vec<Cidr>,
    /// Where to send its packets, when known (static endpoints from the node config).
    pub endpoint: Option<SocketAddr>,
    /// Persistent keepalive, seconds.
    pub keepalive: Option<u16>,
}

/// The whole interface as it should be.
pub struct InterfaceIntent<'a> {
    /// Interface name.
    pub name: &'a str,
    /// This node's private key.
    pub key: &'a NodeSecret,
    /// UDP listen port.
    pub listen_port: u16,
    /// This node's overlay addresses with the overlay's prefix length (so the whole overlay
    /// routes through the interface), e.g. `100.96.0.1/16`, sorted.
    pub addresses: Vec<ipnet::IpNet>,
    /// Peers, sorted by public key.
    pub peers: Vec<PeerConfig>,
    /// Firewall mark on the tunnel's own packets (set while an exit is chosen, so they are
    /// not routed back into the tunnel).
    pub fwmark: Option<u32>,
    /// The interface's MTU.
    pub mtu: u32,
}

/// Routes through the mesh interface beyond the overlay itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteIntent {
    /// Prefixes reached through subnet routers.
    pub prefixes: Vec<Cidr>,
    /// The policy routing of a chosen exit: in force from `rn node exit set` to
    /// `rn node exit off`, whether the exit is usable or not.
    pub exit: Option<ExitRoute>,
    /// Forward packets (this node serves routes or is an exit).
    pub forwarding: bool,
}

/// Internet traffic through a chosen exit, or nowhere: policy routing on a firewall mark like
/// `wg-quick`. Packets not carrying the mark use table `mark`, which holds a blackhole default
/// route and, while the exit is usable, a default route through the interface ahead of it; the
/// tunnel's own packets carry the mark and use the main table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRoute {
    /// The firewall mark, also the routing table's number.
    pub mark: u32,
    /// The exit is usable: internet traffic goes through the interface (else it is dropped).
    pub through: bool,
    /// Destinations looked up in the main table first, its default route ignored: the overlay
    /// ranges and the prefixes routed through the mesh.
    pub mesh: Vec<Cidr>,
    /// Also every other route of the main table more specific than its default: the host's
    /// local networks stay reachable outside the tunnel (`--allow-lan`).
    pub allow_lan: bool,
}

impl RouteIntent {
    /// What of `self` (installed) may stay while `want` is being applied: everything `want`
    /// drops or narrows is gone from it, nothing is added. Applied before the peers change, so
    /// no route points at a peer that is gone and nothing falls back to the underlay.
    pub fn shrunk_to(&self, want: &RouteIntent) -> RouteIntent {
        let exit = match (&self.exit, &want.exit) {
            (Some(old), Some(new)) if old.mark == new.mark => Some(ExitRoute {
                mark: old.mark,
                through: old.through && new.through,
                mesh: old
                    .mesh
                    .iter()
                    .filter(|p| new.mesh.contains(p))
                    .copied()
                    .collect(),
                allow_lan: old.allow_lan && new.allow_lan,
            }),
            // Another mark: the old block stays, closed, until the new one is in place.
            (Some(old), Some(_)) => Some(ExitRoute {
                through: false,
                ..old.clone()
            }),
            _ => None,
        };
        RouteIntent {
            prefixes: self
                .prefixes
                .iter()
                .filter(|p| want.prefixes.contains(p))
                .copied()
                .collect(),
            exit,
            forwarding: self.forwarding && want.forwarding,
        }
    }
}

/// What the interface really holds, read back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    /// False when the interface does not exist (everything else is then empty).
    pub present: bool,
    /// The link is administratively up.
    pub up: bool,
    /// The public half of the private key the interface holds, if any.
    pub public_key: Option<TransportKey>,
    /// Listen port.
    pub listen_port: u16,
    /// Firewall mark on the tunnel's own packets (none when unset or 0).
    pub fwmark: Option<u32>,
    /// MTU, when the link reads back.
    pub mtu: Option<u32>,
    /// The interface's own global-scope addresses, with their prefix lengths, sorted.
    pub addresses: Vec<IpNet>,
    /// Peers, sorted by public key.
    pub peers: Vec<ObservedPeer>,
}

/// One peer read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedPeer {
    /// Public key.
    pub pubkey: TransportKey,
    /// Allowed prefixes, sorted.
    pub allowed: Vec<Cidr>,
    /// Endpoint, if any.
    pub endpoint: Option<SocketAddr>,
    /// Persistent keepalive, seconds (none when off).
    pub keepalive: Option<u16>,
    /// Last completed handshake (unix seconds), if any.
    pub last_handshake: Option<u64>,
    /// Bytes received from the peer.
    pub rx_bytes: u64,
    /// Bytes sent to the peer.
    pub tx_bytes: u64,
}

impl From<&PeerConfig> for ObservedPeer {
    /// What a backend that kept `p` exactly reports (no handshake yet).
    fn from(p: &PeerConfig) -> ObservedPeer {
        let mut allowed = p.allowed.clone();
        allowed.sort();
        allowed.dedup();
        ObservedPeer {
            pubkey: p.pubkey,
            allowed,
            endpoint: p.endpoint,
            keepalive: p.keepalive.filter(|&k| k > 0),
            last_handshake: None,
            rx_bytes: 0,
            tx_bytes: 0,
        }
    }
}

impl Observed {
    /// What a backend that applied `intent` exactly reports (no handshakes yet).
    pub fn from_intent(intent: &InterfaceIntent<'_>) -> Observed {
        let mut peers: Vec<ObservedPeer> = intent.peers.iter().map(ObservedPeer::from).collect();
        peers.sort_by_key(|p| p.pubkey);
        let mut addresses = intent.addresses.clone();
        addresses.sort();
        Observed {
            present: true,
            up: true,
            public_key: Some(intent.key.public()),
            listen_port: intent.listen_port,
            fwmark: intent.fwmark.filter(|&m| m != 0),
            mtu: Some(intent.mtu),
            addresses,
            peers,
        }
    }
}

/// How an embedded device stopped by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceStop {
    /// It took SIGTERM or SIGINT, which it reads too (and can read before rn does): the stop
    /// the operator asked for.
    Signal,
    /// Its UAPI socket was removed, or it failed: a stop nobody asked for.
    Failed,
}

/// A backend failure, with the backend's words.
#[derive(Debug, thiserror::Error)]
#[error("tunnel backend {backend}: {detail}")]
pub struct TunnelError {
    /// Which backend.
    pub backend: &'static str,
    /// What failed.
    pub detail: String,
}

/// Drives one interface.
pub trait TunnelBackend: Send {
    /// The backend's name.
    fn name(&self) -> &'static str;
    /// Changes exactly what `diff` names so that the interface holds `intent`: nothing else
    /// is sent, so untouched peers keep their sessions. `diff` is [`Diff::between`] the
    /// interface as last read back and `intent`.
    fn apply(&mut self, intent: &InterfaceIntent<'_>, diff: &Diff) -> Result<(), TunnelError>;
    /// Reads the interface back (an interface that does not exist reads as not present).
    fn observe(&self) -> Result<Observed, TunnelError>;
    /// Removes the interface (or, for an attached daemon, every peer).
    fn shutdown(&mut self) -> Result<(), TunnelError>;
    /// Makes the routes through the interface exactly `routes` (removing stale ones).
    fn apply_routes(&mut self, routes: &RouteIntent) -> Result<(), TunnelError>;
    /// Whether the policy routing of a chosen exit is still what was installed (read back).
    fn routes_hold(&self) -> bool {
        true
    }
    /// Makes the next [`TunnelBackend::apply_routes`] install every route again, the exit's
    /// policy routing included (it drifted).
    fn forget_routes(&mut self) {}
    /// Makes the stop that follows leave a chosen exit's block (blackhole and rules) in place:
    /// the device failed, which is not the operator lifting it.
    fn keep_exit_on_stop(&mut self) {}
    /// False when the interface is visibly gone (deleted from under rn): a cheap check, no
    /// read-back.
    fn present(&self) -> bool {
        true
    }
    /// How a device this backend runs inside the process stopped by itself, if it did (it no
    /// longer answers): the agent then stops too.
    fn device_stopped(&self) -> Option<DeviceStop> {
        None
    }
}

/// Reads the interface back, applies what differs from `intent`, and returns that diff
/// (empty when the interface already held it).
pub fn sync(
    backend: &mut dyn TunnelBackend,
    intent: &InterfaceIntent<'_>,
) -> Result<Diff, TunnelError> {
    let diff = Diff::between(&backend.observe()?, intent);
    if !diff.is_empty() {
        backend.apply(intent, &diff)?;
    }
    Ok(diff)
}

/// Which backend a node uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Kernel WireGuard if the module is there, else the embedded userspace one.
    Auto,
    /// Kernel WireGuard over netlink.
    Kernel,
    /// Embedded userspace WireGuard.
    Userspace,
    /// An existing userspace daemon's UAPI socket.
    Uapi,
    /// A JSON file (no network; demo and tests).
    Memory,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Auto => "auto",
            BackendKind::Kernel => "kernel",
            BackendKind::Userspace => "userspace",
            BackendKind::Uapi => "uapi",
            BackendKind::Memory => "memory",
        })
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(BackendKind::Auto),
            "kernel" => Ok(BackendKind::Kernel),
            "userspace" => Ok(BackendKind::Userspace),
            "uapi" => Ok(BackendKind::Uapi),
            "memory" => Ok(BackendKind::Memory),
            _ => Err(format!(
                "backend {s:?} must be auto, kernel, userspace, uapi or memory"
            )),
        }
    }
}

/// Opens the backend for `interface`. `auto` picks kernel when the module is loaded, else
/// userspace — never `memory`.
pub fn open(
    kind: BackendKind,
    interface: &str,
    memory_file: &std::path::Path,
) -> Result<Box<dyn TunnelBackend>, TunnelError> {
    let kernel_module = std::path::Path::new("/sys/module/wireguard").exists();
    Ok(match kind {
        BackendKind::Memory => Box::new(Memory::new(memory_file)),
        BackendKind::Kernel => Box::new(WgBackend::new(WgKind::Kernel, interface)?),
        BackendKind::Auto if kernel_module => Box::new(WgBackend::new(WgKind::Kernel, interface)?),
        BackendKind::Userspace | BackendKind::Auto => {
            Box::new(WgBackend::new(WgKind::Userspace, interface)?)
        }
        BackendKind::Uapi => Box::new(WgBackend::new(WgKind::Uapi, interface)?),
    })
}
