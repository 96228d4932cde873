//! On-disk formats of a state directory (spec §4.6, §4.8): log entries, snapshot, watermark,
//! bundle and audit records. Only [`super::store`] reads and writes the files.

use serde::{Deserialize, Serialize};

use super::canonical::{Document, caps, kind_marker, required};
use super::model::State;
use super::types::{Blake3Digest, Id, Sha256Digest, Uint};
use super::update::{SignedGenesis, SignedUpdate};

kind_marker!(
    /// `rn.log-entry.v1`
    LogEntryKind = "rn.log-entry.v1"
);
kind_marker!(
    /// `rn.snapshot.v1`
    SnapshotKind = "rn.snapshot.v1"
);
kind_marker!(
    /// `rn.watermark.v1`
    WatermarkKind = "rn.watermark.v1"
);
kind_marker!(
    /// `rn.bundle.v1`
    BundleKind = "rn.bundle.v1"
);
kind_marker!(
    /// `rn.audit.v1`
    AuditKind = "rn.audit.v1"
);

/// One line of `ledger.log`: `index == epoch_new`, `prev` = BLAKE3 of the previous line (or of
/// the signed genesis' canonical bytes for index 1).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    /// `rn.log-entry.v1`.
    pub kind: LogEntryKind,
    /// The epoch this entry creates.
    pub index: Uint,
    /// Hash of the previous line.
    pub prev: Blake3Digest,
    /// The committed update.
    pub signed_update: SignedUpdate,
}

impl Document for LogEntry {
    const KIND: &'static str = LogEntryKind::KIND;
    const CAP: usize = caps::UPDATE;
}

/// `ledger.snapshot`: the state at the log's head — a cache; the log is the truth.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// `rn.snapshot.v1`.
    pub kind: SnapshotKind,
    /// The state.
    pub state: State,
    /// Its root (recomputed on decoding; must match).
    pub root: Sha256Digest,
    /// The log index (epoch) it reflects.
    pub log_index: Uint,
    /// BLAKE3 of the log line at `log_index` (or of the genesis bytes at 0).
    pub log_head: Blake3Digest,
}

impl Document for Snapshot {
    const KIND: &'static str = SnapshotKind::KIND;
    const CAP: usize = caps::LOG;
}

/// `ledger.watermark`: the highest state this node ever committed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watermark {
    /// `rn.watermark.v1`.
    pub kind: WatermarkKind,
    /// The network.
    pub network_id: Id,
    /// The committed epoch.
    pub epoch: Uint,
    /// The committed root.
    pub root: Sha256Digest,
    /// BLAKE3 of the log line at `epoch`.
    pub log_head: Blake3Digest,
}

impl Document for Watermark {
    const KIND: &'static str = WatermarkKind::KIND;
    const CAP: usize = 4096;
}

/// What `rn member export` writes and `rn member apply` takes to catch a ledger up.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// `rn.bundle.v1`.
    pub kind: BundleKind,
    /// The signed genesis, when exported `--with-genesis`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "super::canonical::present"
    )]
    pub genesis: Option<SignedGenesis>,
    /// Consecutive signed updates.
    pub updates: Vec<SignedUpdate>,
    /// Policy documents the updates pin.
    pub policies: Vec<crate::policy::Policy>,
}

impl Document for Bundle {
    const KIND: &'static str = BundleKind::KIND;
    const CAP: usize = caps::LOG;
}

/// What an audit record records; written in snake case (`fork_evidence`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEvent {
    /// The ledger was created.
    Bootstrap,
    /// Updates were committed.
    Commit,
    /// An input was refused by the gate.
    Rejected,
    /// A quorum-signed update conflicting with a committed one was kept as evidence.
    ForkEvidence,
    /// The ledger entered restricted mode.
    Restricted,
    /// Opening repaired what a crash left (or dropped what did not pass the gate).
    Repaired,
    /// An operator accepted the current log after a restriction.
    Recovered,
}

impl AuditEvent {
    /// The name as written in the file.
    pub fn name(self) -> &'static str {
        match self {
            AuditEvent::Bootstrap => "bootstrap",
            AuditEvent::Commit => "commit",
            AuditEvent::Rejected => "rejected",
            AuditEvent::ForkEvidence => "fork_evidence",
            AuditEvent::Restricted => "restricted",
            AuditEvent::Repaired => "repaired",
            AuditEvent::Recovered => "recovered",
        }
    }
}

impl std::fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// One line of `audit.log`, hash-chained like the ledger log (the first record's `prev` is
/// BLAKE3 of the signed genesis' canonical bytes).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// `rn.audit.v1`.
    pub kind: AuditKind,
    /// Position in the audit log, from 1.
    pub index: Uint,
    /// Hash of the previous line.
    pub prev: Blake3Digest,
    /// Unix seconds.
    pub at: Uint,
    /// What happened.
    pub event: AuditEvent,
    /// The ledger epoch when it happened.
    pub epoch: Uint,
    /// Where the input came from (a file name, `-`, `inbox/x.json`), if any.
    #[serde(deserialize_with = "required")]
    pub source: Option<String>,
    /// The update concerned, if any.
    #[serde(deserialize_with = "required")]
    pub update: Option<Sha256Digest>,
    /// Which check failed (the error name), if any.
    #[serde(deserialize_with = "required")]
    pub check: Option<String>,
    /// Human detail.
    pub detail: String,
}

/// What a file handed to `apply` (or dropped in a node's inbox) carries: a signed update, a
/// proposal, or a bundle — decoded strictly, one reader for every path.
#[derive(Clone, Debug)]
pub struct Carried {
    /// The signed updates, in order.
    pub updates: Vec<SignedUpdate>,
    /// Policy documents that came with them.
    pub policies: Vec<crate::policy::Policy>,
    /// A bundle's genesis root, when it carries the genesis.
    pub genesis_root: Option<Sha256Digest>,
}

impl Carried {
    /// Decodes `rn.signed-update.v1`, `rn.proposal.v1` or `rn.bundle.v1`.
    pub fn decode(bytes: &[u8]) -> Result<Carried, super::DecodeError> {
        use super::canonical::{decode, peek_kind};
        use super::update::Proposal;
        let kind = peek_kind(bytes)?;
        Ok(match kind.as_str() {
            SignedUpdate::KIND_STR => Carried {
                updates: vec![decode::<SignedUpdate>(bytes)?],
                policies: Vec::new(),
                genesis_root: None,
            },
            Proposal::KIND_STR => {
                let p: Proposal = decode(bytes)?;
                Carried {
                    updates: vec![p.signed_update()],
                    policies: p.policies,
                    genesis_root: None,
                }
            }
            BundleKind::KIND => {
                let b: Bundle = decode(bytes)?;
                Carried {
                    genesis_root: b.genesis.as_ref().map(|g| g.genesis.state.root()),
                    updates: b.updates,
                    policies: b.policies,
                }
            }
            _ => {
                return Err(super::DecodeError::UnknownKind {
                    expected: SignedUpdate::KIND_STR,
                    found: format!(
                        "{kind} (apply takes rn.signed-update.v1, rn.proposal.v1 or rn.bundle.v1)"
                    ),
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::AuditEvent;

    #[test]
    fn audit_event_names_are_what_the_file_holds() {
        for e in [
            AuditEvent::Bootstrap,
            AuditEvent::Commit,
            AuditEvent::Rejected,
            AuditEvent::ForkEvidence,
            AuditEvent::Restricted,
            AuditEvent::Repaired,
            AuditEvent::Recovered,
        ] {
            let written = serde_json::to_string(&e).unwrap();
            assert_eq!(written, format!("\"{}\"", e.name()));
            assert_eq!(serde_json::from_str::<AuditEvent>(&written).unwrap(), e);
        }
    }
}
