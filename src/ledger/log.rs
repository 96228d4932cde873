//! On-disk formats of a state directory (spec §4.6, §4.8): log entries, snapshot, watermark,
//! and audit records. Only [`super::store`] reads and writes the files.

use serde::{Deserialize, Serialize};

use super::canonical::{Document, caps, kind_marker, required};
use super::model::State;
use super::types::{Blake3Digest, Id, Sha256Digest, Uint};
use super::update::SignedUpdate;

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
