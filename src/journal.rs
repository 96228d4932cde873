//! The signer's equivocation journal (DESIGN §6): beside each approver key, a record of every
//! `(network, epoch_new, prev_root, update hash)` it signed, so the key never signs two
//! different updates that build on the same state.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::{self, FileError};
use crate::ledger::canonical::{decode_value, kind_marker, to_jcs};
use crate::ledger::types::{Id, Sha256Digest, Uint};

kind_marker!(
    /// `rn.journal-entry.v1`
    JournalKind = "rn.journal-entry.v1"
);

/// One signature the key made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    kind: JournalKind,
    /// The network.
    pub network_id: Id,
    /// The epoch the update creates.
    pub epoch_new: Uint,
    /// The state it builds on.
    pub prev_root: Sha256Digest,
    /// `sha256(JCS(update))`.
    pub update: Sha256Digest,
    /// When it was signed (unix seconds).
    pub signed_at: Uint,
}

/// Refusal to sign: the key already signed another update on the same base.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Equivocation refused.
    #[error(
        "refusing to sign: this key already signed update {earlier} for network {network} at epoch {epoch} on the same prev_root {prev_root}; signing a different update on the same base would let two conflicting histories reach quorum"
    )]
    Equivocation {
        /// The network.
        network: Id,
        /// The epoch.
        epoch: Uint,
        /// The shared base.
        prev_root: Sha256Digest,
        /// The update signed before.
        earlier: Sha256Digest,
    },
    /// The journal is unreadable: refuse rather than sign blind.
    #[error(
        "{path}: unreadable signing journal ({detail}); it guards against equivocation, so repair or move it aside knowingly"
    )]
    Corrupt {
        /// The path.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// File errors.
    #[error(transparent)]
    File(#[from] FileError),
}

/// The journal of one key.
pub struct Journal {
    path: PathBuf,
    entries: Vec<Entry>,
}

impl Journal {
    /// The journal path for a key file: `KEY.journal`.
    pub fn path_for(key: &Path) -> PathBuf {
        PathBuf::from(format!("{}.journal", key.display()))
    }

    /// Opens (or starts) the journal beside `key`.
    pub fn open(key: &Path) -> Result<Self, JournalError> {
        let path = Self::path_for(key);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(Journal {
                path,
                entries: Vec::new(),
            });
        }
        files::check_private(&path, false)?;
        let bytes = files::read_capped(&path, 64 << 20)?;
        let mut entries = Vec::new();
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.is_empty() {
                continue;
            }
            let e: Entry =
                decode_value("journal entry", line).map_err(|e| JournalError::Corrupt {
                    path: path.clone(),
                    detail: format!("line {}: {e}", i + 1),
                })?;
            entries.push(e);
        }
        Ok(Journal { path, entries })
    }

    /// Checks that signing `update` is consistent with every earlier signature.
    pub fn check(
        &self,
        network: &Id,
        prev_root: &Sha256Digest,
        update: &Sha256Digest,
    ) -> Result<(), JournalError> {
        match self
            .entries
            .iter()
            .find(|e| e.network_id == *network && e.prev_root == *prev_root && e.update != *update)
        {
            Some(e) => Err(JournalError::Equivocation {
                network: network.clone(),
                epoch: e.epoch_new,
                prev_root: *prev_root,
                earlier: e.update,
            }),
            None => Ok(()),
        }
    }

    /// Records a signature durably (before the signature is released).
    pub fn record(
        &mut self,
        network: &Id,
        epoch_new: Uint,
        prev_root: &Sha256Digest,
        update: &Sha256Digest,
        now: Uint,
    ) -> Result<(), JournalError> {
        self.check(network, prev_root, update)?;
        if self
            .entries
            .iter()
            .any(|e| e.network_id == *network && e.update == *update)
        {
            return Ok(());
        }
        self.entries.push(Entry {
            kind: JournalKind,
            network_id: network.clone(),
            epoch_new,
            prev_root: *prev_root,
            update: *update,
            signed_at: now,
        });
        let mut out = Vec::new();
        for e in &self.entries {
            out.extend_from_slice(&to_jcs(e));
            out.push(b'\n');
        }
        files::write_atomic(&self.path, &out, 0o600, true)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_second_update_on_the_same_base() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        let net: Id = "acme".parse().unwrap();
        let base = Sha256Digest::of(b"base");
        let (u1, u2) = (Sha256Digest::of(b"u1"), Sha256Digest::of(b"u2"));
        let one = Uint::new(1).unwrap();
        let mut j = Journal::open(&key).unwrap();
        j.record(&net, one, &base, &u1, one).unwrap();
        j.record(&net, one, &base, &u1, one).unwrap();
        let j = Journal::open(&key).unwrap();
        assert!(matches!(
            j.check(&net, &base, &u2),
            Err(JournalError::Equivocation { earlier, .. }) if earlier == u1
        ));
        let other: Id = "other".parse().unwrap();
        j.check(&other, &base, &u2).unwrap();
    }
}
