//! What the agent reports: the status the control socket serves, the metrics file, and the
//! structured log lines.

use serde::Serialize;

use crate::ledger::types::{Cidr, Id};

/// One peer as `rn node status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct PeerStatus {
    /// Node id.
    pub id: Id,
    /// Public key.
    pub pubkey: String,
    /// Allowed prefixes.
    pub allowed: Vec<Cidr>,
    /// Endpoint.
    pub endpoint: Option<String>,
    /// Last handshake, unix seconds.
    pub last_handshake: Option<u64>,
    /// Bytes received from the peer.
    pub rx_bytes: u64,
    /// Bytes sent to the peer.
    pub tx_bytes: u64,
}

/// Whether the node enforces the ledger's plan (`trusted`) or carries no traffic
/// (`restricted`); `starting` until its first reconcile. Written in lowercase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeMode {
    /// Before the first reconcile.
    #[default]
    Starting,
    /// Enforcing the plan.
    Trusted,
    /// No peers, drop-all filter.
    Restricted,
}

/// One mirror as `rn node status` shows it: its URL and how the last catch-up from it went.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MirrorStatus {
    /// The base URL.
    pub url: String,
    /// Unix time of the last attempt.
    pub last_attempt: Option<u64>,
    /// What it gave: `up to date at epoch N`, `applied K update(s), epoch A -> B`, or the
    /// error.
    pub last_result: Option<String>,
    /// Unix time before which it is not asked again (after a failure), if any.
    pub backoff_until: Option<u64>,
}

/// An endpoint learned from a peer's `rn/v1/endpoints`.
#[derive(Clone, Debug, Serialize)]
pub struct LearnedEndpoint {
    /// The peer it is for.
    pub peer: Id,
    /// The endpoint.
    pub endpoint: String,
    /// The overlay address of the peer that gave it.
    pub from: String,
    /// Unix time it was learned.
    pub learned_at: u64,
}

/// How the ledger travels between this node and its peers (spec §5a).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Distribution {
    /// The TCP port served on (0: not serving).
    pub serve_port: u16,
    /// Peers pulled from each interval and notified at a time.
    pub fanout: u16,
    /// The addresses served on now.
    pub serving: Vec<String>,
    /// Pulls from peers since start.
    pub pulls: u64,
    /// The last pull from a peer and what it gave.
    pub last_pull: Option<String>,
    /// Notifications sent since start.
    pub notifications_sent: u64,
    /// Of those, the ones whose receiver was behind.
    pub notified_behind: u64,
    /// Notifications received from peers that were ahead.
    pub notifications_received: u64,
    /// Peers not asked now, after a failure or a refused answer.
    pub backed_off: Vec<String>,
    /// Endpoints learned from peers.
    pub learned_endpoints: Vec<LearnedEndpoint>,
}

/// What the control socket reports.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    /// The node.
    pub node_id: String,
    /// Starting, trusted or restricted.
    pub mode: NodeMode,
    /// Why restricted.
    pub reason: Option<String>,
    /// Ledger epoch.
    pub epoch: u64,
    /// Ledger root.
    pub root: Option<String>,
    /// Pinned policy.
    pub policy: Option<String>,
    /// Interface.
    pub interface: String,
    /// This node's public key, as the interface is given it.
    pub key: Option<String>,
    /// Tunnel backend.
    pub backend: String,
    /// Firewall backend.
    pub firewall: String,
    /// Peers.
    pub peers: Vec<PeerStatus>,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Unix time of the last successful apply.
    pub last_apply: u64,
    /// Inbox files rejected since start.
    pub rejections: u64,
    /// Reconciles since start.
    pub reconciles: u64,
    /// Drift corrections since start.
    pub drift_corrections: u64,
    /// Seconds between catch-ups from the mirrors and peers.
    pub sync_interval: u64,
    /// The mirrors and how the last catch-up from each went.
    pub mirrors: Vec<MirrorStatus>,
    /// Serving, pulling from and notifying peers.
    pub distribution: Distribution,
    /// Compiler notes.
    pub notes: Vec<String>,
    /// Prefixes this node offers as a subnet router.
    pub routes_offered: Vec<String>,
    /// Prefixes reached through routers, with the router and the granting rule.
    pub routes_used: Vec<String>,
    /// The exit in use and why.
    pub exit: Option<String>,
}

/// Structured logs on stderr.
#[derive(Clone, Copy)]
pub struct Log {
    json: bool,
}

impl Log {
    /// Text or JSON lines.
    pub fn new(json: bool) -> Self {
        Log { json }
    }

    /// One event.
    pub fn event(&self, level: &str, msg: &str) {
        let now = crate::clock::now();
        // Inbox file names and the like are written by others: one event stays one line.
        let msg = crate::text::escape_untrusted(msg, false);
        if self.json {
            eprintln!(
                "{}",
                serde_json::json!({"ts": now, "level": level, "msg": msg})
            );
        } else {
            eprintln!("{} {level:<5} {msg}", crate::clock::utc(now));
        }
    }
}
