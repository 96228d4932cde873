//! Recovery judgement (spec §15.9): why a ledger is restricted, what opening it repaired, and
//! the watermark and snapshot that let it tell an interrupted commit from a rollback.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use super::{SNAPSHOT, StoreError, WATERMARK, canonical_line, io_err};
use crate::fault;
use crate::files;
use crate::ledger::canonical::decode;
use crate::ledger::error::Rejection;
use crate::ledger::log::{Snapshot, SnapshotKind, Watermark, WatermarkKind};
use crate::ledger::model::State;
use crate::ledger::types::{Blake3Digest, Sha256Digest};

/// Why a ledger is restricted: its trust state is in doubt, so it grants nothing and commits
/// nothing until an operator investigates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restriction {
    /// A complete line of `ledger.log` does not verify.
    LogTampered {
        /// 1-based line number.
        line: usize,
        /// What failed.
        detail: String,
    },
    /// The log is behind the highest state this ledger ever committed.
    Rollback {
        /// Epoch the log reaches.
        log_epoch: u64,
        /// Epoch the watermark records.
        watermark_epoch: u64,
    },
    /// The watermark is missing beside a bootstrapped ledger.
    MissingWatermark,
    /// The watermark is unreadable or disagrees with the log at its epoch.
    WatermarkMismatch {
        /// What disagrees.
        detail: String,
    },
    /// The snapshot claims more than the log holds.
    SnapshotAhead {
        /// The snapshot's log index.
        snapshot_index: u64,
        /// Epoch the log reaches.
        log_epoch: u64,
    },
}

impl Restriction {
    /// Stable name for `--json` and the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            Restriction::LogTampered { .. } => "LogTampered",
            Restriction::Rollback { .. } => "Rollback",
            Restriction::MissingWatermark => "MissingWatermark",
            Restriction::WatermarkMismatch { .. } => "WatermarkMismatch",
            Restriction::SnapshotAhead { .. } => "SnapshotAhead",
        }
    }
}

impl fmt::Display for Restriction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Restriction::LogTampered { line, detail } => {
                write!(f, "ledger.log line {line} does not verify: {detail}")
            }
            Restriction::Rollback {
                log_epoch,
                watermark_epoch,
            } => write!(
                f,
                "rollback: the log reaches epoch {log_epoch} but this ledger already committed epoch {watermark_epoch}"
            ),
            Restriction::MissingWatermark => {
                write!(
                    f,
                    "ledger.watermark is missing beside a bootstrapped ledger"
                )
            }
            Restriction::WatermarkMismatch { detail } => {
                write!(f, "ledger.watermark disagrees with the log: {detail}")
            }
            Restriction::SnapshotAhead {
                snapshot_index,
                log_epoch,
            } => write!(
                f,
                "ledger.snapshot claims epoch {snapshot_index}, beyond the log's epoch {log_epoch}"
            ),
        }
    }
}

/// Trusted, or restricted with a reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Verified from the genesis; may commit and grant.
    Trusted,
    /// In doubt: grants nothing, commits nothing.
    Restricted(Restriction),
}

/// What opening a state directory repaired; each is audited (`repaired`) in the words of its
/// `Display`.
#[derive(Clone, Debug, PartialEq)]
pub enum Repair {
    /// The mirror beside the directory was missing and was written.
    CreatedMirror,
    /// Lines beyond the watermark passed the gate: the commit was finished.
    FinishedCommit {
        /// The epoch the watermarks were brought to.
        epoch: u64,
    },
    /// A torn final line beyond the watermark was cut off.
    TruncatedTornLine,
    /// Lines beyond the watermark would not pass the gate now and were cut off.
    DroppedBeyondWatermark {
        /// How many lines.
        lines: usize,
        /// The watermark's epoch, where the ledger stays.
        watermark_epoch: u64,
        /// The epoch of the update that failed.
        epoch: u64,
        /// Why it failed.
        rejection: Box<Rejection>,
    },
    /// The snapshot did not match the log and was written again from it.
    RewroteSnapshot,
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repair::CreatedMirror => {
                f.write_str("created the watermark mirror beside the directory")
            }
            Repair::FinishedCommit { epoch } => write!(
                f,
                "finished an interrupted commit (watermarks brought to epoch {epoch})"
            ),
            Repair::TruncatedTornLine => {
                f.write_str("truncated a torn final line of ledger.log beyond the watermark")
            }
            Repair::DroppedBeyondWatermark {
                lines,
                watermark_epoch,
                epoch,
                rejection,
            } => write!(
                f,
                "dropped {lines} line(s) of ledger.log beyond the watermark (epoch {watermark_epoch}): the update for epoch {epoch} would not pass the gate now ({}: {rejection})",
                rejection.name()
            ),
            Repair::RewroteSnapshot => f.write_str("rewrote ledger.snapshot from the log"),
        }
    }
}

/// The watermark mirror beside the state directory: `DIR.watermark`.
pub fn mirror_path(dir: &Path) -> PathBuf {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let s = dir.as_os_str().to_string_lossy();
    PathBuf::from(format!("{}.watermark", s.trim_end_matches('/')))
}

/// A watermark against the verified log at `state`: `None` if consistent (equal, or behind
/// with a head that is the log's line at its epoch: an interrupted commit). `at_epoch` gives the
/// log's root and line hash at an epoch up to the state's.
pub(super) fn judge_watermark(
    bytes: &[u8],
    which: &str,
    state: &State,
    at_epoch: impl Fn(u64) -> (Sha256Digest, Blake3Digest),
) -> Option<Restriction> {
    let log_epoch = state.epoch().get();
    let wm = match decode::<Watermark>(bytes) {
        Err(e) => {
            return Some(Restriction::WatermarkMismatch {
                detail: format!("{which} is unreadable: {e}"),
            });
        }
        Ok(wm) => wm,
    };
    if wm.network_id != *state.network_id() {
        return Some(Restriction::WatermarkMismatch {
            detail: format!("{which} names network {}", wm.network_id),
        });
    }
    let at = wm.epoch.get();
    if at > log_epoch {
        return Some(Restriction::Rollback {
            log_epoch,
            watermark_epoch: at,
        });
    }
    let (root, head) = at_epoch(at);
    if wm.root != root || wm.log_head != head {
        return Some(Restriction::WatermarkMismatch {
            detail: format!(
                "{which} records root {} and head {} at epoch {at}; the log has {root} and {head}",
                wm.root, wm.log_head
            ),
        });
    }
    None
}

/// Writes the snapshot and the watermark (in the directory, then its mirror) for the head
/// at `state`, whose log line hash is `head`.
pub(super) fn write_head_files(
    dir: &Path,
    state: &State,
    head: Blake3Digest,
) -> Result<(), StoreError> {
    fault::fail("snapshot_write").map_err(io_err(&dir.join(SNAPSHOT)))?;
    let snapshot = Snapshot {
        kind: SnapshotKind,
        state: state.clone(),
        root: state.root(),
        log_index: state.epoch(),
        log_head: head,
    };
    files::write_atomic_with(
        &dir.join(SNAPSHOT),
        &canonical_line(&snapshot),
        0o600,
        true,
        || fault::point("mid_snapshot"),
    )?;
    fault::point("after_snapshot");
    let watermark = Watermark {
        kind: WatermarkKind,
        network_id: state.network_id().clone(),
        epoch: state.epoch(),
        root: state.root(),
        log_head: head,
    };
    let line = canonical_line(&watermark);
    files::write_atomic_with(&dir.join(WATERMARK), &line, 0o600, true, || {
        fault::point("mid_watermark")
    })?;
    fault::point("after_watermark");
    files::write_atomic(&mirror_path(dir), &line, 0o600, true)?;
    Ok(())
}
