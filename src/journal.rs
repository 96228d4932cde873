//! The signer's equivocation journal (DESIGN §6): for each approver key, a record of every
//! `(network, epoch_new, prev_root, update hash)` it signed, so the key never signs two
//! different updates that build on the same state.
//!
//! The journal belongs to the key, not to the key file: it lives in one per-user place, named
//! by the key's fingerprint (`$XDG_STATE_HOME/rn/journals/`, else
//! `$HOME/.local/state/rn/journals/`), so every copy of a key file on this account shares it.
//! A journal left beside a key file by an earlier rn (`KEY.journal`) is still read.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::files::{self, FileError};
use crate::ledger::canonical::{decode_value, kind_marker, to_jcs};
use crate::ledger::types::{ApproverKey, Id, Sha256Digest, Uint};
use ssh_key::public::Ed25519PublicKey;
use ssh_key::{HashAlg, PublicKey};

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
    /// No per-user place to keep journals.
    #[error(
        "no place for the signing journal: neither XDG_STATE_HOME nor HOME is set to an absolute path; set one"
    )]
    NoHome,
    /// Another `rn member sign` with this key is running.
    #[error(
        "{path}: another rn member sign is using this key's journal; wait for it to finish (a copy of the key shares the journal)"
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
    },
    /// File errors.
    #[error(transparent)]
    File(#[from] FileError),
}

/// The journal of one key, locked against other signers of the same key while open.
pub struct Journal {
    path: PathBuf,
    entries: Vec<Entry>,
    _lock: File,
}

impl Journal {
    /// Where this user's journals live: `$XDG_STATE_HOME/rn/journals`, else
    /// `$HOME/.local/state/rn/journals` (only absolute values count, as the XDG spec says).
    pub fn dir() -> Result<PathBuf, JournalError> {
        let absolute = |var: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        let state = absolute("XDG_STATE_HOME")
            .or_else(|| absolute("HOME").map(|h| h.join(".local/state")))
            .ok_or(JournalError::NoHome)?;
        Ok(state.join("rn").join("journals"))
    }

    /// The journal of the key with this fingerprint in `dir`: the fingerprint's SHA-256 in hex
    /// (the digest `ssh-keygen -lf` shows in base64), then `.journal`.
    pub fn path_in(dir: &Path, key: &ApproverKey) -> PathBuf {
        let fp = PublicKey::from(Ed25519PublicKey(*key.as_bytes())).fingerprint(HashAlg::Sha256);
        dir.join(format!(
            "{}.journal",
            crate::ledger::types::hex(fp.as_bytes())
        ))
    }

    /// The journal an earlier rn kept beside a key file: `KEY.journal`.
    pub fn legacy_path(key_file: &Path) -> PathBuf {
        PathBuf::from(format!("{}.journal", key_file.display()))
    }

    /// Opens (or starts) the journal of `key` in this user's journal directory, taking its lock;
    /// entries in a journal beside `key_file` are read too.
    pub fn open(key_file: Option<&Path>, key: &ApproverKey) -> Result<Self, JournalError> {
        Self::open_in(&Self::dir()?, key_file, key)
    }

    /// [`Journal::open`] with the journal directory given.
    pub fn open_in(
        dir: &Path,
        key_file: Option<&Path>,
        key: &ApproverKey,
    ) -> Result<Self, JournalError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| FileError::Io {
                path: dir.to_owned(),
                error: e,
            })?;
        files::check_private(dir, true)?;
        let path = Self::path_in(dir, key);
        let lock_path = path.with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&lock_path)
            .map_err(|e| FileError::Io {
                path: lock_path.clone(),
                error: e,
            })?;
        files::check_private(&lock_path, false)?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            // Another signer holds it: retry. Any other failure is an I/O error, not "busy".
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(JournalError::Busy { path: lock_path });
            }
            Err(e) => {
                return Err(FileError::Io {
                    path: lock_path,
                    error: e.into(),
                }
                .into());
            }
        }
        let mut entries = read_entries(&path)?;
        // A key held by an agent has no file, so no journal beside one.
        if let Some(key_file) = key_file {
            for e in read_entries(&Self::legacy_path(key_file))? {
                if !entries.contains(&e) {
                    entries.push(e);
                }
            }
        }
        Ok(Journal {
            path,
            entries,
            _lock: lock,
        })
    }

    /// Where this journal is written.
    pub fn path(&self) -> &Path {
        &self.path
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

/// The entries of one journal file; none if it does not exist.
fn read_entries(path: &Path) -> Result<Vec<Entry>, JournalError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(Vec::new());
    }
    files::check_private(path, false)?;
    let bytes = files::read_capped(path, 64 << 20)?;
    let mut entries = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let e: Entry = decode_value("journal entry", line).map_err(|e| JournalError::Corrupt {
            path: path.to_owned(),
            detail: format!("line {}: {e}", i + 1),
        })?;
        entries.push(e);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_key() -> ApproverKey {
        crate::keys::ApproverSecret::from_seed(&[7; 32]).public()
    }

    #[test]
    fn refuses_a_second_update_on_the_same_base() {
        let dir = tempfile::tempdir().unwrap();
        let journals = dir.path().join("journals");
        let key = dir.path().join("k");
        let net: Id = "acme".parse().unwrap();
        let base = Sha256Digest::of(b"base");
        let (u1, u2) = (Sha256Digest::of(b"u1"), Sha256Digest::of(b"u2"));
        let one = Uint::new(1).unwrap();
        let mut j = Journal::open_in(&journals, Some(&key), &a_key()).unwrap();
        j.record(&net, one, &base, &u1, one).unwrap();
        j.record(&net, one, &base, &u1, one).unwrap();
        // A second signer of the same key waits its turn.
        assert!(matches!(
            Journal::open_in(&journals, Some(&key), &a_key()),
            Err(JournalError::Busy { .. })
        ));
        drop(j);
        // A copy of the key file elsewhere shares the journal.
        let copy = dir.path().join("copy-of-k");
        let j = Journal::open_in(&journals, Some(&copy), &a_key()).unwrap();
        assert!(matches!(
            j.check(&net, &base, &u2),
            Err(JournalError::Equivocation { earlier, .. }) if earlier == u1
        ));
        let other: Id = "other".parse().unwrap();
        j.check(&other, &base, &u2).unwrap();
    }

    #[test]
    fn a_journal_beside_the_key_file_still_counts() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        let net: Id = "acme".parse().unwrap();
        let base = Sha256Digest::of(b"base");
        let one = Uint::new(1).unwrap();
        let old = Entry {
            kind: JournalKind,
            network_id: net.clone(),
            epoch_new: one,
            prev_root: base,
            update: Sha256Digest::of(b"u1"),
            signed_at: one,
        };
        let mut line = to_jcs(&old);
        line.push(b'\n');
        files::write_atomic(&Journal::legacy_path(&key), &line, 0o600, false).unwrap();
        let j = Journal::open_in(&dir.path().join("journals"), Some(&key), &a_key()).unwrap();
        assert!(matches!(
            j.check(&net, &base, &Sha256Digest::of(b"u2")),
            Err(JournalError::Equivocation { .. })
        ));
    }
}
