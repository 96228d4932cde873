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
    /// How long the last pull from a peer took, milliseconds.
    pub last_pull_ms: u64,
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
    /// How long the last reconcile took, milliseconds.
    pub last_reconcile_ms: u64,
    /// rn's version.
    pub version: String,
    /// Where the Prometheus metrics are served (`--metrics-listen`), once bound.
    pub metrics_serving: Vec<String>,
    /// The commit rn was built from ("unknown" outside a git checkout).
    pub commit: String,
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
    /// Why internet traffic is blocked: an exit is chosen but not usable, or the node is
    /// restricted with an exit chosen.
    #[serde(default)]
    pub exit_blocked: Option<String>,
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

/// The status in the Prometheus text format (0.0.4): build info, the ledger, the peers with
/// their handshake age and byte counters, reconcile and sync counters and durations. `now`
/// dates the handshake ages.
pub fn prometheus(s: &Status, now: u64) -> String {
    use std::fmt::Write as _;
    let node = &s.node_id;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, rows: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{node=\"{node}\"{labels}}} {value}");
        }
    };
    metric(
        "rn_build_info",
        "gauge",
        "rn's version and the commit it was built from.",
        &[(
            format!(",version=\"{}\",commit=\"{}\"", s.version, s.commit),
            "1".into(),
        )],
    );
    let d = &s.distribution;
    // The node's own figures: name, type, help, value.
    let node_figures: [(&str, &str, &str, u64); 13] = [
        (
            "rn_ledger_epoch",
            "gauge",
            "Ledger epoch the node enforces.",
            s.epoch,
        ),
        (
            "rn_restricted",
            "gauge",
            "1 when the node is restricted (fails closed).",
            u64::from(s.mode != NodeMode::Trusted),
        ),
        (
            "rn_exit_blocked",
            "gauge",
            "1 when an exit is chosen but not usable: internet traffic is blocked.",
            u64::from(s.exit_blocked.is_some()),
        ),
        (
            "rn_peers",
            "gauge",
            "Peers configured on the mesh interface.",
            s.peers.len() as u64,
        ),
        (
            "rn_last_apply_timestamp_seconds",
            "gauge",
            "Unix time of the last successful apply.",
            s.last_apply,
        ),
        (
            "rn_last_reconcile_milliseconds",
            "gauge",
            "Duration of the last reconcile.",
            s.last_reconcile_ms,
        ),
        (
            "rn_reconciles_total",
            "counter",
            "Reconciles since start.",
            s.reconciles,
        ),
        (
            "rn_inbox_rejections_total",
            "counter",
            "Inbox files rejected by the gate.",
            s.rejections,
        ),
        (
            "rn_drift_corrections_total",
            "counter",
            "Times the interface was changed behind rn and restored.",
            s.drift_corrections,
        ),
        (
            "rn_sync_pulls_total",
            "counter",
            "Pulls from peers since start.",
            d.pulls,
        ),
        (
            "rn_sync_last_pull_milliseconds",
            "gauge",
            "Duration of the last pull from a peer.",
            d.last_pull_ms,
        ),
        (
            "rn_sync_notifications_sent_total",
            "counter",
            "Commit notifications sent to peers.",
            d.notifications_sent,
        ),
        (
            "rn_sync_notifications_received_total",
            "counter",
            "Notifications received from peers that were ahead.",
            d.notifications_received,
        ),
    ];
    for (name, kind, help, value) in node_figures {
        metric(name, kind, help, &[(String::new(), value.to_string())]);
    }
    // One row per peer that has the figure (a peer never seen has no handshake age).
    let per_peer = |figure: &dyn Fn(&PeerStatus) -> Option<u64>| -> Vec<(String, String)> {
        s.peers
            .iter()
            .filter_map(|p| Some((format!(",peer=\"{}\"", p.id), figure(p)?.to_string())))
            .collect()
    };
    metric(
        "rn_peer_last_handshake_age_seconds",
        "gauge",
        "Seconds since the peer's last completed handshake (absent: none yet).",
        &per_peer(&|p| Some(now.saturating_sub(p.last_handshake?))),
    );
    metric(
        "rn_peer_receive_bytes_total",
        "counter",
        "Bytes received from the peer.",
        &per_peer(&|p| Some(p.rx_bytes)),
    );
    metric(
        "rn_peer_transmit_bytes_total",
        "counter",
        "Bytes sent to the peer.",
        &per_peer(&|p| Some(p.tx_bytes)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_build_info_and_per_peer_figures() {
        let s = Status {
            node_id: "web-1".into(),
            mode: NodeMode::Trusted,
            epoch: 7,
            version: "0.1.0".into(),
            commit: "abc".into(),
            peers: vec![
                PeerStatus {
                    id: "db-1".parse().unwrap(),
                    pubkey: String::new(),
                    allowed: Vec::new(),
                    endpoint: None,
                    last_handshake: Some(90),
                    rx_bytes: 1234,
                    tx_bytes: 5678,
                },
                PeerStatus {
                    id: "db-2".parse().unwrap(),
                    pubkey: String::new(),
                    allowed: Vec::new(),
                    endpoint: None,
                    last_handshake: None,
                    rx_bytes: 0,
                    tx_bytes: 0,
                },
            ],
            ..Status::default()
        };
        let text = prometheus(&s, 100);
        for line in [
            "rn_build_info{node=\"web-1\",version=\"0.1.0\",commit=\"abc\"} 1",
            "rn_ledger_epoch{node=\"web-1\"} 7",
            "rn_restricted{node=\"web-1\"} 0",
            "rn_peer_last_handshake_age_seconds{node=\"web-1\",peer=\"db-1\"} 10",
            "rn_peer_receive_bytes_total{node=\"web-1\",peer=\"db-1\"} 1234",
            "rn_peer_transmit_bytes_total{node=\"web-1\",peer=\"db-2\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        let age_of_db2 = "rn_peer_last_handshake_age_seconds{node=\"web-1\",peer=\"db-2\"}";
        assert!(
            !text.lines().any(|l| l.starts_with(age_of_db2)),
            "a peer never seen has no handshake age:\n{text}"
        );
    }
}
